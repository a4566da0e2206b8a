#!/usr/bin/env bash
# How long a broker holding DATA in PARTITIONS partitions takes to start
# serving again, after a clean stop (SIGTERM) and after SIGKILL.
#
#   bash benches/restart.sh [DIR] [MESSAGES] [PARTITIONS]   # defaults: target/bench-data, 10485760 x 1 KiB (10 GiB), 100
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/bench-data}; messages=${2:-10485760}; partitions=${3:-100}
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
data="$dir/restart-broker"
cargo build --release -p ringlog-bench -p ringlog-server
rm -rf "$data"
start() { # label: starts the broker, says how long it took to serve
  local t0; t0=$(date +%s.%N)
  target/release/ringlog-server --data-dir "$data" --listen 127.0.0.1:29595 --metrics-listen off --shards 2 > "$dir/restart.log" 2>&1 &
  broker=$!
  until grep -q "ringlog-server listening" "$dir/restart.log" 2>/dev/null; do
    kill -0 $broker 2>/dev/null || { cat "$dir/restart.log" >&2; exit 1; }
    sleep 0.01
  done
  echo "$1: $(python3 -c "print(f'{$(date +%s.%N) - $t0:.3f}')") s"
}
start "first start"
target/release/ringlog-bench produce --broker 127.0.0.1:29595 --topic restart --partitions "$partitions" \
  --producers 2 --message-size 1024 --batch-size 1048576 --fsync never --messages "$messages" | grep -E "^produce:|verified"
echo "stored: $(du -sh "$data" | cut -f1) in $partitions partitions"
kill -TERM $broker; wait $broker || true
sync
start "start after a clean stop"
kill -KILL $broker; wait $broker 2>/dev/null || true
start "start after SIGKILL"
kill -TERM $broker; wait $broker || true
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null && echo "page cache dropped"
start "start after a clean stop, cold page cache"
kill -KILL $broker; wait $broker 2>/dev/null || true
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null && echo "page cache dropped"
start "start after SIGKILL, cold page cache"
kill -TERM $broker; wait $broker || true
rm -rf "$data"
