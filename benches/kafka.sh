#!/usr/bin/env bash
# The Kafka listener beside the native protocol (issue 14's benchmark):
# one broker process, 1 KiB records, the same load through ringlog-client
# (native) and through librdkafka (Kafka protocol), interleaved round by
# round so drift on this shared machine hits both alike; then each
# protocol consumes what it produced. This machine's disk and loopback
# limits are measured in the same run.
#
#   bash benches/kafka.sh [ROUNDS] [DIR]    # ROUNDS default 3; DIR default target/bench-data
#
# Needs fio and iperf3, and builds ringlog-bench with `--features kafka`
# (librdkafka from its bundled sources: a C compiler and make). Figures land
# in benches/results/kafka/, the table is printed and written to
# benches/results/kafka/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
dir=${2:-target/bench-data}
out=benches/results/kafka
mkdir -p "$dir" "$out"
dir=$(cd "$dir" && pwd)
for tool in fio iperf3; do
  command -v $tool >/dev/null || { echo "$tool is required: apt-get install -y fio iperf3" >&2; exit 1; }
done
# shellcheck source=benches/limits.sh
. benches/limits.sh
all_limits "$dir" "$out"

echo "== build"
cargo build --release -p ringlog-server -p ringlog-client -p ringlog-bench --features ringlog-bench/kafka
bench=target/release/ringlog-bench
common=(--message-size 1024 --batch-size 65536 --linger-ms 1 --acks 1 --partitions 4 --fsync never)

rm -rf "$dir/kafka-broker"
target/release/ringlog-server --data-dir "$dir/kafka-broker" --listen 127.0.0.1:29392 \
  --kafka-listen 127.0.0.1:29393 --metrics-listen off --shards 2 > "$out/broker.log" 2>&1 &
broker=$!
trap 'kill -TERM $broker 2>/dev/null || true; wait $broker 2>/dev/null || true; rm -rf "$dir/kafka-broker"' EXIT
sleep 1
addr=(--broker 127.0.0.1:29392 --kafka-broker 127.0.0.1:29393)

run() { # name, then ringlog-bench arguments
  local name=$1; shift
  sync
  echo "== $name: ringlog-bench $*"
  "$bench" "$@" --json "$out/$name.json" | grep -v '^t='
}

# Each round: both protocols produce, then each consumes what it
# produced; the round's topics are deleted before the next (disk space).
for round in $(seq 1 "$rounds"); do
  for protocol in native kafka; do
    run "produce-$protocol-$round" produce "${addr[@]}" --protocol $protocol \
      --topic "p-$protocol-$round" "${common[@]}" --duration 10 --warmup 2
  done
  for protocol in native kafka; do
    run "consume-$protocol-$round" consume "${addr[@]}" --protocol $protocol \
      --topic "p-$protocol-$round" --skip-content-check
    target/release/ringlog --broker 127.0.0.1:29392 topic delete "p-$protocol-$round"
  done
done

python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
j = lambda name: json.load(open(f"{out}/{name}.json"))
disk = json.load(open(f"{out}/fio-seq.json"))["jobs"][0]["write"]["bw_bytes"] / 1e6
net = json.load(open(f"{out}/iperf3.json"))["end"]["sum_received"]["bits_per_second"] / 8e6
rows = ["| run | native MB/s | Kafka MB/s | Kafka / native |", "|---|---:|---:|---:|"]
ratios = {"produce": [], "consume": []}
for what, key in (("produce", "produce"), ("consume", "consume")):
    for r in range(1, rounds + 1):
        n = j(f"{what}-native-{r}")[key]["mb_per_sec"]
        k = j(f"{what}-kafka-{r}")[key]["mb_per_sec"]
        ratios[what].append(k / n)
        rows.append(f"| {what} round {r} | {n:.0f} | {k:.0f} | {k / n:.2f} |")
lines = [
    f"disk limit (fio): {disk:.0f} MB/s; loopback limit (iperf3): {net:.0f} MB/s",
    "",
    *rows,
    "",
    f"median Kafka/native: produce {statistics.median(ratios['produce']):.2f} (target 0.8), "
    f"consume {statistics.median(ratios['consume']):.2f}",
]
text = "\n".join(lines) + "\n"
print(text)
open(f"{out}/summary.md", "w").write(text)
PY
