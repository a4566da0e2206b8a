#!/usr/bin/env bash
# The reference run of benches/RESULTS.md: this machine's disk and loopback
# limits (fio, iperf3), then ringlog-bench against them, then (with IGGY set)
# the peer on the same workloads (benches/run-peers.sh), then the restart of
# a broker holding 10 GiB in 100 partitions (benches/restart.sh), and the
# targets table of issue 12 computed from all of it, in one go.
#
#   IGGY=CHECKOUT IGGY_COMMIT=SHA bash benches/run-reference.sh [DIR]    # DIR: data and fio files (default: target/bench-data)
#
# Needs fio and iperf3 (apt-get install -y fio iperf3) and about 25 GB free
# under DIR. Figures (JSON) and plots (SVG) land in benches/results/, the
# peer's in benches/results/peers/; the tables are printed at the end and
# written to benches/results/targets.md.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/bench-data}
out=benches/results
mkdir -p "$dir" "$out"
dir=$(cd "$dir" && pwd)
for tool in fio iperf3; do
  command -v $tool >/dev/null || { echo "$tool is required: apt-get install -y fio iperf3" >&2; exit 1; }
done

# shellcheck source=benches/limits.sh
. benches/limits.sh
machine "$dir" "$out"
disk_limit "$dir" "$out"
echo "== fio: 4 KiB writes, each followed by fdatasync (the sync latency)"
fio --name=syncwrite --filename="$dir/fio-sync.dat" --size=256M --rw=write --bs=4k \
    --ioengine=sync --fdatasync=1 --runtime=15 --time_based \
    --output-format=json > "$out/fio-sync.json"
rm -f "$dir/fio-sync.dat"

loopback_limit "$out"

echo "== build"
cargo build --release -p ringlog-bench -p ringlog-server
bench=target/release/ringlog-bench
common=(--message-size 1024 --batch-size 65536 --acks 1 --partitions 4)

run() { # name, then ringlog-bench arguments
  local name=$1; shift
  # Let the previous run's dirty pages reach the disk first.
  sync
  echo "== $name: ringlog-bench $*"
  "$bench" "$@" --json "$out/$name.json" --plot "$out/$name.svg" | grep -v '^t='
}

for shards in 1 2; do
  run "produce-never-${shards}shard" produce --embedded --shards $shards "${common[@]}" --fsync never --duration 15 --warmup 3
  run "produce-always-${shards}shard" produce --embedded --shards $shards "${common[@]}" --fsync always --duration 15 --warmup 3
done

echo "== consume from disk: a broker of its own, produce, drop the page cache, consume"
rm -rf "$dir/broker"
target/release/ringlog-server --data-dir "$dir/broker" --listen 127.0.0.1:29292 --metrics-listen off --shards 2 > "$out/broker.log" 2>&1 &
broker=$!
sleep 1
run "consume-produce" produce --broker 127.0.0.1:29292 --topic disk "${common[@]}" --fsync never --messages 3000000
sync
if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then echo "page cache dropped"; else echo "cannot drop the page cache here: the consume reads from memory"; fi
run "consume-disk" consume --broker 127.0.0.1:29292 --topic disk --consumers 1
kill -TERM $broker; wait $broker || true
rm -rf "$dir/broker"

peak=$(python3 -c "import json; print(int(json.load(open('$out/produce-never-2shard.json'))['produce']['messages_per_sec']))")
# Latency runs: no linger (at 10,000 msgs/s over 4 partitions a 1 ms linger
# would be most of the latency), one shard and two.
for shards in 1 2; do
  run "e2e-10k-never-${shards}shard" e2e --embedded --shards $shards "${common[@]}" --linger-ms 0 --fsync never --rate 10000 --duration 20 --warmup 3
  run "e2e-10k-always-${shards}shard" e2e --embedded --shards $shards "${common[@]}" --linger-ms 0 --fsync always --rate 10000 --duration 20 --warmup 3
done
run "e2e-half-peak-never" e2e --embedded --shards 2 "${common[@]}" --fsync never --rate $((peak / 2)) --duration 20 --warmup 3

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
j = lambda name: json.load(open(f"{out}/{name}.json"))
disk = json.load(open(f"{out}/fio-seq.json"))["jobs"][0]["write"]["bw_bytes"] / 1e6
sync = json.load(open(f"{out}/fio-sync.json"))["jobs"][0]["sync"]["lat_ns"]["percentile"]
net = json.load(open(f"{out}/iperf3.json"))["end"]["sum_received"]["bits_per_second"] / 8e6
limit = min(disk, net)
print(f"\ndisk (fio 64k direct qd8): {disk:.0f} MB/s; loopback (iperf3): {net:.0f} MB/s; "
      f"fio 4k fdatasync p99: {sync['99.000000']/1e6:.3f} ms")
print("\n| run | MB/s | msgs/s | ratio | latency p50 / p99 / p99.9 / max (ms) |")
print("|---|---:|---:|---:|---|")
for name in ["produce-never-1shard", "produce-never-2shard", "produce-always-1shard", "produce-always-2shard"]:
    r = j(name); t = r["produce"]; l = r["ack_latency"]
    print(f"| {name} | {t['mb_per_sec']:.0f} | {t['messages_per_sec']:.0f} | {t['mb_per_sec']/limit:.0%} of min(disk, loopback) | ack {l['p50_ms']:.2f} / {l['p99_ms']:.2f} / {l['p999_ms']:.2f} / {l['max_ms']:.2f} |")
r = j("consume-disk"); t = r["consume"]
print(f"| consume-disk | {t['mb_per_sec']:.0f} | {t['messages_per_sec']:.0f} | {t['mb_per_sec']/net:.0%} of loopback | verified {r['verified']}, errors {r['error_count']} |")
for name in ["e2e-10k-never-1shard", "e2e-10k-never-2shard", "e2e-10k-always-1shard", "e2e-10k-always-2shard", "e2e-half-peak-never"]:
    r = j(name); l = r["e2e_latency"]; t = r["consume"]
    print(f"| {name} | {t['mb_per_sec']:.0f} | {t['messages_per_sec']:.0f} | rate {r['params']['rate']:.0f} | e2e {l['p50_ms']:.2f} / {l['p99_ms']:.2f} / {l['p999_ms']:.2f} / {l['max_ms']:.2f} (p99.99 {l['p9999_ms']:.2f}) |")
PY

if [ -n "${IGGY:-}" ]; then
  bash benches/run-peers.sh "$IGGY" "${IGGY_COMMIT:?set IGGY_COMMIT to the commit of the Iggy checkout}" "$dir"
else
  echo "IGGY not set: the peer is not measured (see benches/peers/iggy.sh)"
fi
bash benches/restart.sh "$dir" | tee "$out/restart.txt"

python3 - "$out" <<'PY'
import json, os, re, sys
out = sys.argv[1]
j = lambda path: json.load(open(f"{out}/{path}"))
disk = j("fio-seq.json")["jobs"][0]["write"]["bw_bytes"] / 1e6
net = j("iperf3.json")["end"]["sum_received"]["bits_per_second"] / 8e6
limit = min(disk, net)
peers = os.path.exists(f"{out}/peers/iggy.json")
rows = []
def row(figure, target, result, met):
    rows.append(f"| {figure} | {target} | {result} | {'met' if met else '**missed**'} |")
p64 = j("produce-never-2shard.json")["produce"]["mb_per_sec"]
if peers:
    iggy = j("peers/iggy.json")
    cpu = dict(l.split() for l in open(f"{out}/peers/ringlog-cpu.txt"))
    r64 = j("peers/ringlog-produce-64k.json")["produce"]["mb_per_sec"]
    r1m = j("peers/ringlog-produce-1m.json")["produce"]["mb_per_sec"]
    i64, i1m = iggy["produce-64k"]["mb_per_sec"], iggy["produce-1m"]["mb_per_sec"]
    row("produce, 64 KiB batches", ">= 0.6 of min(disk, loopback), >= 2x Iggy",
        f"{p64:.0f} MB/s = {p64 / limit:.2f} of {limit:.0f}; beside Iggy {r64:.0f} vs {i64:.0f} = {r64 / i64:.2f}x",
        p64 >= 0.6 * limit and r64 >= 2 * i64)
    row("produce, 1 MiB batches", ">= Iggy", f"{r1m:.0f} vs {i1m:.0f} MB/s = {r1m / i1m:.2f}x", r1m >= i1m)
    for name, label in (("produce-64k", "64 KiB"), ("produce-1m", "1 MiB")):
        rc, ic = float(cpu[name]), iggy[name]["server_cpu_sec"]
        row(f"broker CPU per GB produced, {label}", "below Iggy's", f"{rc:.2f} vs {ic:.2f} s", rc < ic)
else:
    row("produce, 64 KiB batches", ">= 0.6 of min(disk, loopback)", f"{p64:.0f} MB/s = {p64 / limit:.2f} of {limit:.0f} (no peer run)", p64 >= 0.6 * limit)
pf = j("produce-always-2shard.json")["produce"]["mb_per_sec"]
row("produce, fsync=always", ">= 0.4 of the disk", f"{pf:.0f} MB/s = {pf / disk:.2f} of {disk:.0f}", pf >= 0.4 * disk)
c = j("consume-disk.json")["consume"]["mb_per_sec"]
row("consume 1 GB, cold cache, 1 consumer", ">= 0.6 of loopback", f"{c:.0f} MB/s = {c / net:.2f} of {net:.0f}", c >= 0.6 * net)
for policy, bound in (("never", 1.0), ("always", 2.0)):
    p99 = max(j(f"e2e-10k-{policy}-{s}shard.json")["e2e_latency"]["p99_ms"] for s in (1, 2))
    row(f"e2e p99 at 10,000 msgs/s, fsync={policy}", f"< {bound:g} ms", f"{p99:.2f} ms (worse of 1 and 2 shards)", p99 < bound)
restart = open(f"{out}/restart.txt").read()
clean = float(re.search(r"start after a clean stop: ([0-9.]+) s", restart).group(1))
row("restart, 10 GiB in 100 partitions", "< 1 s after a clean stop", f"{clean:.3f} s", clean < 1.0)
text = "\n".join([f"disk (fio): {disk:.0f} MB/s; loopback (iperf3): {net:.0f} MB/s", "",
                  "| figure | target | result | verdict |", "|---|---|---|---|"] + rows)
open(f"{out}/targets.md", "w").write(text + "\n")
print("\n" + text)
PY
