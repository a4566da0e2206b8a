#!/usr/bin/env bash
# The fetch path's two ways on the same data, interleaved so that a VM's
# drift hits both alike: 1 GB (1 KiB messages, 1 MiB batches, 2 partitions)
# produced once, then RUNS rounds of a cold-cache consume through a broker
# that sends answers of 64 KiB or more with sendfile (--sendfile-min-bytes
# 65536) and one that reads and checks every answer (the default), each with the consumer checking
# every byte and headers only. Broker CPU seconds from /proc per run.
#
#   bash benches/fetch-ab.sh [RUNS] [DIR]     # figures: benches/results/fetch/
#   WARM=1 bash benches/fetch-ab.sh ...        # the page cache kept: reads from memory
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-4}; dir=${2:-target/bench-data}
out=benches/results/fetch
mkdir -p "$dir" "$out"
dir=$(cd "$dir" && pwd)/fetch-ab
ticks=$(getconf CLK_TCK)
cargo build --release -p ringlog-bench -p ringlog-server
rm -rf "$dir"
start() { # extra broker flags
  target/release/ringlog-server --data-dir "$dir" --listen 127.0.0.1:29394 \
    --metrics-listen off --shards 2 "$@" >> "$out/server.log" 2>&1 &
  broker=$!
  sleep 1
}
stop() { kill -TERM "$broker"; wait "$broker" || true; }
cpu() { awk '{print $14 + $15}' "/proc/$broker/stat"; }
start
target/release/ringlog-bench produce --broker 127.0.0.1:29394 --topic ab --partitions 2 \
  --producers 2 --message-size 1024 --batch-size 1048576 --messages 1000000 | grep '^produce:'
stop
warm=${WARM:-0}
results="$out/$([ "$warm" = 1 ] && echo warm || echo cold).txt"
echo "# path check round MB/s broker_cpu_s" > "$results"
for round in $(seq "$runs"); do
  for path in sendfile read; do
    if [ "$path" = sendfile ]; then start --sendfile-min-bytes 65536; else start; fi
    for check in all headers; do
      flag=(); [ "$check" = headers ] && flag=(--skip-content-check)
      sync
      if [ "$warm" != 1 ]; then
        echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "cannot drop the page cache"
      fi
      before=$(cpu)
      mbs=$(target/release/ringlog-bench consume --broker 127.0.0.1:29394 --topic ab \
        --consumers 1 "${flag[@]}" | awk '/^consume:/ {print $4}')
      echo "$path $check $round $mbs $(python3 -c "print(($(cpu) - $before) / $ticks)")" | tee -a "$results"
    done
    stop
  done
done
rm -rf "$dir"
python3 - "$results" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1]) if not l.startswith("#")]
for path in ("sendfile", "read"):
    for check in ("all", "headers"):
        r = [(float(m), float(c)) for p, k, _, m, c in rows if p == path and k == check]
        print(f"{path:8} check={check:7} MB/s median {statistics.median(m for m, _ in r):6.0f} "
              f"(min {min(m for m, _ in r):.0f}, max {max(m for m, _ in r):.0f}); "
              f"broker CPU s/GB median {statistics.median(c for _, c in r):.2f}")
PY
