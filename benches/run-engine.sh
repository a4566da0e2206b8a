#!/usr/bin/env bash
# Runs the engine micro-benchmarks next to fio on the same disk, so every
# figure can be read as a ratio to this machine's own limit.
#
#   bash benches/run-engine.sh [DIR]     # DIR: where logs and fio files go (default: target/bench-data)
#
# Needs fio (apt-get install -y fio). Prints a summary; raw outputs land in
# target/bench-results/.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/bench-data}
out=target/bench-results
mkdir -p "$dir" "$out"
# cargo runs benches from the package directory: hand them an absolute path.
dir=$(cd "$dir" && pwd)
command -v fio >/dev/null || { echo "fio is required: apt-get install -y fio" >&2; exit 1; }

# shellcheck source=benches/limits.sh
. benches/limits.sh
machine "$dir" "$out"
disk_limit "$dir" "$out"
echo "== fio: 4 KiB writes, each followed by fdatasync"
fio --name=syncwrite --filename="$dir/fio-sync.dat" --size=256M --rw=write --bs=4k \
    --ioengine=sync --fdatasync=1 --runtime=15 --time_based \
    --output-format=json > "$out/fio-sync.json"
echo "== fio: 64 KiB buffered writes, fdatasync every 32 writes (group commit's pattern at 64 appends in flight)"
fio --name=groupsync --filename="$dir/fio-group.dat" --size=4G --rw=write --bs=64k \
    --ioengine=psync --fdatasync=32 --runtime=15 --time_based \
    --output-format=json > "$out/fio-group.json"
rm -f "$dir/fio-seq.dat" "$dir/fio-sync.dat" "$dir/fio-group.dat"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
seq = json.load(open(f"{out}/fio-seq.json"))["jobs"][0]["write"]
print(f"fio seq write 64k direct qd8: {seq['bw_bytes']/1e6:.1f} MB/s ({seq['iops']:.0f} IOPS)")
sync = json.load(open(f"{out}/fio-sync.json"))["jobs"][0]
w = sync["write"]; s = sync["sync"]["lat_ns"]
p = s.get("percentile", {})
group = json.load(open(f"{out}/fio-group.json"))["jobs"][0]["write"]
print(f"fio 64k buffered, fdatasync every 32 writes: {group['bw_bytes']/1e6:.1f} MB/s")
print(f"fio 4k write+fdatasync: {w['iops']:.0f} writes/s; fdatasync latency p50 {p.get('50.000000',0)/1e3:.0f} us, "
      f"p99 {p.get('99.000000',0)/1e3:.0f} us, mean {s['mean']/1e3:.0f} us")
PY

echo "== criterion (cargo bench -p ringlog-bench)"
RINGLOG_BENCH_DIR="$dir" cargo bench -p ringlog-bench --bench engine 2>&1 | tee "$out/criterion.txt"
