#!/usr/bin/env bash
# The first and the second cold read of the same data, for each write mode:
# 1 GB produced (1 KiB messages, 1 MiB batches, 2 producers, 2 partitions),
# the page cache dropped, one consumer reads it all; dropped again, read
# again. Both reads are cold; on a VM whose free memory is handed back to
# the host, the first fills page-cache pages that were free for long, the
# second reuses pages just freed (benches/RESULTS.md). Broker CPU seconds
# from /proc per read.
#
#   bash benches/cold-read.sh [ROUNDS] [DIR]     # figures: benches/results/cold-read/
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; dir=${2:-target/bench-data}
out=benches/results/cold-read
mkdir -p "$dir" "$out"
dir=$(cd "$dir" && pwd)/cold-read
ticks=$(getconf CLK_TCK)
cargo build --release -p ringlog-bench -p ringlog-server
results="$out/runs.txt"
echo "# mode round read MB/s broker_cpu_s" > "$results"
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "cannot drop the page cache"; }
for round in $(seq "$rounds"); do
  for mode in direct buffered; do
    rm -rf "$dir"
    target/release/ringlog-server --data-dir "$dir" --listen 127.0.0.1:29397 \
      --metrics-listen off --shards 2 --write-mode "$mode" >> "$out/server.log" 2>&1 &
    broker=$!
    sleep 1
    target/release/ringlog-bench produce --broker 127.0.0.1:29397 --topic t --message-size 1024 \
      --producers 2 --partitions 2 --acks 1 --batch-size 1048576 --fsync never --messages 1000000 > /dev/null
    for read in first second; do
      drop
      before=$(awk '{print $14 + $15}' "/proc/$broker/stat")
      mbs=$(target/release/ringlog-bench consume --broker 127.0.0.1:29397 --topic t --consumers 1 \
        | awk '/^consume:/ {print $4}')
      after=$(awk '{print $14 + $15}' "/proc/$broker/stat")
      echo "$mode $round $read $mbs $(python3 -c "print(($after - $before) / $ticks)")" | tee -a "$results"
    done
    kill -TERM "$broker"; wait "$broker" || true
    rm -rf "$dir"
  done
done
rm -f "$out/server.log"
