#!/usr/bin/env bash
# The write path's two ways, interleaved so that a VM's drift hits both
# alike: a broker writing through the page cache (--write-mode buffered) and
# one writing with O_DIRECT (--write-mode direct), RUNS rounds of:
#   produce 1 GB with 64 KiB and with 1 MiB batches (fits in the page cache's
#     dirty limit: a burst), then consume the 1 MiB topic right away (what a
#     consumer just behind the producers reads: page cache or disk);
#   produce 8 GB with 64 KiB and with 1 MiB batches (past the dirty limit:
#     sustained load, the kernel's writeback in the way);
#   produce 250 MB with fsync=always (group commit);
#   end to end at 1,000 and 10,000 msgs/s (open loop, linger 0, fsync never,
#     8 s after 2 s of warm-up): the latency of each way at light load.
# 1 KiB messages, 2 producers, 2 partitions, 2 shards, acks=1. fio and
# iperf3 first (the machine's limits, same run); broker CPU seconds from
# /proc per run. Needs about 20 GB free under DIR.
#
#   bash benches/write-ab.sh [RUNS] [DIR]     # figures: benches/results/write/
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; dir=${2:-target/bench-data}
out=benches/results/write
mkdir -p "$dir" "$out"
dir=$(cd "$dir" && pwd)
ticks=$(getconf CLK_TCK)
# shellcheck source=benches/limits.sh
. benches/limits.sh
all_limits "$dir" "$out"
cargo build --release -p ringlog-bench -p ringlog-server
data=$dir/write-ab
start() { # write mode
  rm -rf "$data"
  target/release/ringlog-server --data-dir "$data" --listen 127.0.0.1:29395 \
    --metrics-listen off --shards 2 --write-mode "$1" >> "$out/server.log" 2>&1 &
  broker=$!
  sleep 1
}
stop() { kill -TERM "$broker"; wait "$broker" || true; rm -rf "$data"; }
cpu() { awk '{print $14 + $15}' "/proc/$broker/stat"; }
results="$out/ab.txt"
echo "# mode workload round MB/s broker_cpu_s GB" > "$results"
latency="$out/latency.txt"
echo "# mode rate round e2e_p50_ms e2e_p99_ms" > "$latency"
e2e() { # mode, rate
  target/release/ringlog-bench e2e --broker 127.0.0.1:29395 --topic "e$2" "${common[@]}" \
    --batch-size 65536 --linger-ms 0 --fsync never --rate "$2" --duration 8 --warmup 2 \
    --json "$out/e2e.json" > /dev/null
  python3 -c "import json; l = json.load(open('$out/e2e.json'))['e2e_latency']; print('$1 $2 $round', round(l['p50_ms'], 3), round(l['p99_ms'], 3))" | tee -a "$latency"
}
run() { # mode, workload name, GB moved, then ringlog-bench arguments
  local mode=$1 name=$2 gb=$3; shift 3
  sync
  local before; before=$(cpu)
  local mbs
  mbs=$(target/release/ringlog-bench "$@" --broker 127.0.0.1:29395 | awk '/^(produce|consume):/ {print $4}')
  echo "$mode $name $round ${mbs:-?} $(python3 -c "print(round(($(cpu) - $before) / $ticks, 2))") $gb" | tee -a "$results"
}
common=(--message-size 1024 --producers 2 --partitions 2 --acks 1)
for round in $(seq "$runs"); do
  for mode in buffered direct; do
    start "$mode"
    run "$mode" produce-64k-1g 1 produce --topic a "${common[@]}" --batch-size 65536 --fsync never --messages 1000000
    run "$mode" produce-1m-1g 1 produce --topic b "${common[@]}" --batch-size 1048576 --fsync never --messages 1000000
    run "$mode" consume-1m-after 1 consume --topic b --consumers 1
    run "$mode" produce-64k-8g 8 produce --topic c "${common[@]}" --batch-size 65536 --fsync never --messages 8000000
    run "$mode" produce-1m-8g 8 produce --topic d "${common[@]}" --batch-size 1048576 --fsync never --messages 8000000
    run "$mode" produce-fsync 0.25 produce --topic e "${common[@]}" --batch-size 65536 --fsync always --messages 250000
    e2e "$mode" 1000
    e2e "$mode" 10000
    stop
  done
done
rm -f "$out/e2e.json"
python3 - "$out" <<'PY'
import json, sys, statistics
out = sys.argv[1]
rows = [l.split() for l in open(f"{out}/ab.txt") if not l.startswith("#")]
disk = json.load(open(f"{out}/fio-seq.json"))["jobs"][0]["write"]["bw_bytes"] / 1e6
net = json.load(open(f"{out}/iperf3.json"))["end"]["sum_received"]["bits_per_second"] / 8e6
lines = [f"disk (fio 64k direct qd8): {disk:.0f} MB/s; loopback (iperf3): {net:.0f} MB/s", "",
         "| workload | buffered MB/s (median, min-max) | direct MB/s | direct / buffered | broker CPU s/GB buffered | direct |",
         "|---|---:|---:|---:|---:|---:|"]
for name in dict.fromkeys(r[1] for r in rows):
    cell = {}
    for mode in ("buffered", "direct"):
        r = [(float(m), float(c) / float(g)) for md, n, _, m, c, g in rows if md == mode and n == name and m != "?"]
        mb = [m for m, _ in r]
        cell[mode] = (statistics.median(mb), min(mb), max(mb), statistics.median(c for _, c in r))
    b, d = cell["buffered"], cell["direct"]
    lines.append(f"| {name} | {b[0]:.0f} ({b[1]:.0f}-{b[2]:.0f}) | {d[0]:.0f} ({d[1]:.0f}-{d[2]:.0f}) | "
                 f"{d[0] / b[0]:.2f} | {b[3]:.2f} | {d[3]:.2f} |")
lat = [l.split() for l in open(f"{out}/latency.txt") if not l.startswith("#")]
lines += ["", "| e2e, fsync never, linger 0 | buffered p50 / p99 ms (medians) | direct p50 / p99 ms |", "|---|---:|---:|"]
for rate in dict.fromkeys(r[1] for r in lat):
    cell = {m: [(float(a), float(b)) for md, rt, _, a, b in lat if md == m and rt == rate] for m in ("buffered", "direct")}
    fmt = lambda v: f"{statistics.median(a for a, _ in v):.2f} / {statistics.median(b for _, b in v):.2f}"
    lines.append(f"| {rate} msgs/s | {fmt(cell['buffered'])} | {fmt(cell['direct'])} |")
text = "\n".join(lines)
open(f"{out}/summary.md", "w").write(text + "\n")
print(text)
PY
