#!/usr/bin/env bash
# The log cleaner's throughput (issue 15's benchmark): one partition
# directory of keyed records written by `ringlog-log append`, then one clean
# by `ringlog-log compact`, which runs the broker's cleaner code (plan,
# prepare, install) on the directory. Timed for wall clock and CPU, twice:
# with the segments in the page cache (as the broker's cleaner usually finds
# recent segments) and after dropping the page cache (read from the disk).
# This machine's disk limits are measured in the same run.
#
#   bash benches/cleaner.sh [GIB] [KEYS] [DIR]   # default 1 GiB, 1000000 keys, target/bench-data
#
# Records: 256-byte values under KEYS random keys ("key-%08d"), 100 per
# batch, 128 MiB segments. Needs fio; dropping the page cache needs root.
# Figures land in benches/results/cleaner/ and summary.md there.
set -euo pipefail
cd "$(dirname "$0")/.."
gib=${1:-1}
keys=${2:-1000000}
dir=${3:-target/bench-data}
out=benches/results/cleaner
mkdir -p "$dir" "$out"
dir=$(cd "$dir" && pwd)
command -v fio >/dev/null || { echo "fio is required: apt-get install -y fio" >&2; exit 1; }
# shellcheck source=benches/limits.sh
. benches/limits.sh
machine "$dir" "$out"
disk_limit "$dir" "$out"
disk_read_limit "$dir" "$out"

echo "== build"
cargo build --release -p ringlog-server
log=target/release/ringlog-log
src="$dir/cleaner-source"
trap 'rm -rf "$src" "$dir/cleaner-run"' EXIT
rm -rf "$src"

echo "== write $gib GiB of 256-byte values under $keys keys"
python3 - "$gib" "$keys" <<'PY' | "$log" append "$src" --fsync never --batch-records 100 \
    --key-separator = --segment-bytes 134217728 > /dev/null
import random, sys
gib, keys = float(sys.argv[1]), int(sys.argv[2])
rng = random.Random(15)
value = "v" * 247
line_bytes = 13 + 1 + 256
out = sys.stdout
for i in range(int(gib * (1 << 30) / line_bytes)):
    out.write("key-%08d=%s%08d\n" % (rng.randrange(keys), value, i))
PY
du -sb "$src" | tee "$out/source-bytes.txt"

for cache in warm cold; do
  rm -rf "$dir/cleaner-run"
  cp -r "$src" "$dir/cleaner-run"
  sync
  if [ $cache = cold ]; then
    echo 3 > /proc/sys/vm/drop_caches || { echo "cannot drop the page cache (not root?)" >&2; continue; }
  else
    cat "$dir"/cleaner-run/*.log > /dev/null
  fi
  echo "== clean ($cache page cache)"
  TIMEFORMAT='%R %U %S'
  { time "$log" compact "$dir/cleaner-run" --segment-bytes 134217728 > "$out/$cache.txt"; } 2> "$out/$cache.time"
  cat "$out/$cache.txt" "$out/$cache.time"
done

python3 - "$out" <<'PY' | tee "$out/summary.md"
import json, re, sys
out = sys.argv[1]
write = json.load(open(f"{out}/fio-seq.json"))["jobs"][0]["write"]["bw_bytes"] / 1e6
read = json.load(open(f"{out}/fio-read.json"))["jobs"][0]["read"]["bw_bytes"] / 1e6
print(f"disk limits (fio, same run): sequential write {write:.0f} MB/s, sequential read {read:.0f} MB/s")
print()
print("| page cache | read MB | written MB | records read | superseded | wall s | CPU s (user+sys) | read MB/s | written MB/s | records/s | CPU s per GB read | read / fio read | written / fio write |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for cache in ("warm", "cold"):
    try:
        text = open(f"{out}/{cache}.txt").read()
        wall, user, system = map(float, open(f"{out}/{cache}.time").read().split()[-3:])
    except (FileNotFoundError, ValueError):
        continue
    bytes_read, bytes_written = map(int, re.search(r"bytes\s+(\d+) -> (\d+)", text).groups())
    records = int(re.search(r"records read\s+(\d+)", text).group(1))
    superseded = int(re.search(r"superseded\s+(\d+)", text).group(1))
    r, w = bytes_read / 1e6, bytes_written / 1e6
    print(f"| {cache} | {r:.0f} | {w:.0f} | {records} | {superseded} | {wall:.2f} | {user + system:.2f} | "
          f"{r / wall:.0f} | {w / wall:.0f} | {records / wall:.0f} | {(user + system) / (r / 1e3):.2f} | "
          f"{r / wall / read:.2f} | {w / wall / write:.2f} |")
PY
