#!/usr/bin/env bash
# ringlog beside Apache Iggy, its closest peer, in one run on this machine:
# the machine's limits first (fio, iperf3), then ringlog (its broker as its
# own process, 2 shards), then Iggy (benches/peers/iggy.sh) on the same
# workloads: 1 KiB messages, 2 producers, acks=1, fsync never, 1 GB with
# 64 KiB and 1 MiB batches; 250 MB with fsync on; 1 GB consumed from a cold
# page cache. Beside throughput, the broker's CPU seconds per GB moved
# (utime+stime of its process, from /proc, before and after each run).
#
#   bash benches/run-peers.sh IGGY_CHECKOUT IGGY_COMMIT [DIR]   # DIR: data (default: target/bench-data)
#
# Needs fio and iperf3 (apt-get install -y fio iperf3) and a built Iggy (see
# benches/peers/iggy.sh). Figures land in benches/results/peers/.
set -euo pipefail
cd "$(dirname "$0")/.."
iggy=$1; commit=$2; dir=${3:-target/bench-data}
out=benches/results/peers
mkdir -p "$dir" "$out"
dir=$(cd "$dir" && pwd)
ticks=$(getconf CLK_TCK)

# shellcheck source=benches/limits.sh
. benches/limits.sh
all_limits "$dir" "$out"

echo "== ringlog"
cargo build --release -p ringlog-bench -p ringlog-server
rm -rf "$dir/peer-broker"
target/release/ringlog-server --data-dir "$dir/peer-broker" --listen 127.0.0.1:29393 \
  --metrics-listen off --shards 2 > "$out/ringlog-server.log" 2>&1 &
broker=$!
sleep 1
cpu() { awk '{print $14 + $15}' "/proc/$broker/stat"; }
rm -f "$out/ringlog-cpu.txt"
run() { # name, then ringlog-bench arguments
  local name=$1; shift
  sync
  local before; before=$(cpu)
  target/release/ringlog-bench "$@" --broker 127.0.0.1:29393 --json "$out/ringlog-$name.json" | grep -v '^t='
  echo "$name $(python3 -c "print(($(cpu) - $before) / $ticks)")" >> "$out/ringlog-cpu.txt"
}
common=(--message-size 1024 --producers 2 --partitions 2 --acks 1)
run produce-64k produce --topic p64k "${common[@]}" --batch-size 65536 --fsync never --messages 1000000
run produce-1m produce --topic p1m "${common[@]}" --batch-size 1048576 --fsync never --messages 1000000
sync
if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then echo "page cache dropped"; else echo "cannot drop the page cache here: the consume reads from memory"; fi
run consume-1m consume --topic p1m --consumers 1
run produce-fsync produce --topic pfsync "${common[@]}" --batch-size 65536 --fsync always --messages 250000
# The same through the client's per-record API (send, poll), to show what the
# batch-level path (send_batch, poll_batches) changes.
run produce-64k-per-record produce --per-record --topic r64k "${common[@]}" --batch-size 65536 --fsync never --messages 1000000
run produce-1m-per-record produce --per-record --topic r1m "${common[@]}" --batch-size 1048576 --fsync never --messages 1000000
sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
run consume-1m-per-record consume --per-record --topic r1m --consumers 1
# The consumer checking headers only (order, duplicates, gaps), not every
# filler byte: what a consumer that reads records costs; Iggy's tool checks
# nothing.
sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
run consume-1m-headers consume --skip-content-check --topic p1m --consumers 1
kill -TERM $broker; wait $broker || true
# The fetch path's other way on the same data: the broker again, sending
# answers of 64 KiB or more with sendfile (benches/fetch-ab.sh compares the
# two interleaved).
target/release/ringlog-server --data-dir "$dir/peer-broker" --listen 127.0.0.1:29393 \
  --metrics-listen off --shards 2 --sendfile-min-bytes 65536 >> "$out/ringlog-server.log" 2>&1 &
broker=$!
sleep 1
sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
run consume-1m-sendfile consume --topic p1m --consumers 1
sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
run consume-1m-headers-sendfile consume --skip-content-check --topic p1m --consumers 1
kill -TERM $broker; wait $broker || true
rm -rf "$dir/peer-broker"

echo "== Apache Iggy at $commit"
# Iggy's consume reads from the page cache of its own produce run: drop it
# there too, between its produce-1m and consume-1m (done inside iggy.sh).
bash benches/peers/iggy.sh "$iggy" "$commit" "$out"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
disk = json.load(open(f"{out}/fio-seq.json"))["jobs"][0]["write"]["bw_bytes"] / 1e6
net = json.load(open(f"{out}/iperf3.json"))["end"]["sum_received"]["bits_per_second"] / 8e6
cpu = dict(l.split() for l in open(f"{out}/ringlog-cpu.txt"))
iggy = json.load(open(f"{out}/iggy.json"))
rows = [("produce, 64 KiB batches", "produce-64k", "produce", 1.0),
        ("produce, 1 MiB batches", "produce-1m", "produce", 1.0),
        ("produce, fsync on", "produce-fsync", "produce", 0.25),
        ("consume 1 GB, cold cache", "consume-1m", "consume", 1.0)]
lines = [f"disk (fio 64k direct qd8): {disk:.0f} MB/s; loopback (iperf3): {net:.0f} MB/s; Iggy at {iggy['commit']}", "",
         "| workload | ringlog MB/s | Iggy MB/s | ringlog / Iggy | ringlog / limit | broker CPU s per GB: ringlog | Iggy |",
         "|---|---:|---:|---:|---:|---:|---:|"]
rows += [("produce, 64 KiB batches, per-record API", "produce-64k-per-record", "produce", 1.0),
         ("produce, 1 MiB batches, per-record API", "produce-1m-per-record", "produce", 1.0),
         ("consume 1 GB, cold cache, per-record API", "consume-1m-per-record", "consume", 1.0),
         ("consume 1 GB, cold cache, headers checked only", "consume-1m-headers", "consume", 1.0),
         ("consume 1 GB, cold cache, sendfile", "consume-1m-sendfile", "consume", 1.0),
         ("consume 1 GB, cold cache, headers only, sendfile", "consume-1m-headers-sendfile", "consume", 1.0)]
for label, name, kind, gb in rows:
    r = json.load(open(f"{out}/ringlog-{name}.json"))[kind]["mb_per_sec"]
    peer = {"consume-1m-headers": "consume-1m"}.get(name, name)
    i = iggy.get(peer, {}) if peer in ("produce-64k", "produce-1m", "produce-fsync", "consume-1m") else {}
    im = i.get("mb_per_sec")
    limit = net if kind == "consume" else min(disk, net)
    rc = float(cpu[name]) / gb
    ic = i.get("server_cpu_sec")
    lines.append(f"| {label} | {r:.0f} | {im if im is not None else '?'} | "
                 f"{(r / im) if im else float('nan'):.2f} | {r / limit:.0%} | {rc:.2f} | "
                 f"{(ic / gb) if ic is not None else float('nan'):.2f} |")
text = "\n".join(lines)
open(f"{out}/summary.md", "w").write(text + "\n")
print(text)
PY
