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
common=(--message-size 1024 --acks 1 --partitions 4 --fsync never)

rm -rf "$dir/kafka-broker"
target/release/ringlog-server --data-dir "$dir/kafka-broker" --listen 127.0.0.1:29392 \
  --kafka-listen 127.0.0.1:29393 --metrics-listen off --shards 2 > "$out/broker.log" 2>&1 &
broker=$!
trap 'kill -TERM $broker 2>/dev/null || true; wait $broker 2>/dev/null || true; rm -rf "$dir/kafka-broker"' EXIT
sleep 1
addr=(--broker 127.0.0.1:29392 --kafka-broker 127.0.0.1:29393)

# CPU seconds of the broker process (user + system) so far.
broker_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' /proc/$broker/stat; }

run() { # name, then ringlog-bench arguments; also records the CPU seconds
  # the broker and the load generator (its client library) spent on it
  local name=$1; shift
  sync
  echo "== $name: ringlog-bench $*"
  local before; before=$(broker_cpu)
  local TIMEFORMAT='%U %S'
  { time "$bench" "$@" --json "$out/$name.json" | grep -v '^t=' >&3; } 3>&1 2> "$out/$name.client-cpu"
  python3 -c "import sys; u, s = open(sys.argv[1]).read().split()[-2:]; print(float(u) + float(s))" \
    "$out/$name.client-cpu" > "$out/$name.client-cpu.tmp" && mv "$out/$name.client-cpu.tmp" "$out/$name.client-cpu"
  echo "$before $(broker_cpu)" | awk '{ printf "%.2f\n", $2 - $1 }' > "$out/$name.broker-cpu"
  echo "cpu: broker $(cat "$out/$name.broker-cpu") s, load generator $(cat "$out/$name.client-cpu") s"
}

# Two producer settings: 64 KiB batches with a 1 ms linger (the other
# benchmarks' setting) and librdkafka's own defaults, 1 MB batches with a
# 5 ms linger. Each round: both protocols produce (no warm-up: the CPU
# figures cover the whole run; which goes first alternates), then both
# consume the natively produced topic; the round's topics are deleted
# before the next (disk space).
# This VM backs guest memory on first touch: whichever run first uses
# memory the guest never touched pays for it (a first read of a topic here
# cost 4 CPU s per GB in _copy_to_iter, a second 0.8). Touch 12 GiB once,
# so no run pays for the machine's warm-up.
python3 -c "b = bytearray(12 << 30); b[::4096] = bytes(len(range(0, 12 << 30, 4096)))" || true

for config in 64k 1m; do
  case $config in
    64k) batch=(--batch-size 65536 --linger-ms 1) ;;
    1m) batch=(--batch-size 1000000 --linger-ms 5) ;;
  esac
  for round in $(seq 1 "$rounds"); do
    # Odd rounds native first, even rounds Kafka first.
    order=(native kafka)
    [ $((round % 2)) -eq 0 ] && order=(kafka native)
    for protocol in "${order[@]}"; do
      run "produce-$config-$protocol-$round" produce "${addr[@]}" --protocol $protocol \
        --topic "p-$config-$protocol-$round" "${common[@]}" "${batch[@]}" --duration 10
    done
    # Both protocols read the same topic, after one unmeasured read of it:
    # a topic's first read costs more than later ones whoever makes it.
    topic="p-$config-native-$round"
    "$bench" consume "${addr[@]}" --topic "$topic" --skip-content-check > /dev/null
    for protocol in "${order[@]}"; do
      run "consume-$config-$protocol-$round" consume "${addr[@]}" --protocol $protocol \
        --topic "$topic" --skip-content-check
    done
    for protocol in native kafka; do
      target/release/ringlog --broker 127.0.0.1:29392 topic delete "p-$config-$protocol-$round"
    done
  done
done

python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
j = lambda name: json.load(open(f"{out}/{name}.json"))
disk = json.load(open(f"{out}/fio-seq.json"))["jobs"][0]["write"]["bw_bytes"] / 1e6
net = json.load(open(f"{out}/iperf3.json"))["end"]["sum_received"]["bits_per_second"] / 8e6
def cpu(name, who):
    return float(open(f"{out}/{name}.{who}-cpu").read())
def per_gb(name, who):
    what = "produce" if name.startswith("produce") else "consume"
    return cpu(name, who) / (j(name)[what]["bytes"] / 1e9)
rows = ["| run | native MB/s | Kafka MB/s | Kafka / native | broker CPU s/GB native / Kafka | load generator CPU s/GB native / Kafka |",
        "|---|---:|---:|---:|---:|---:|"]
medians = []
for config in ("64k", "1m"):
    for what in ("produce", "consume"):
        ratios = []
        for r in range(1, rounds + 1):
            nn, kn = f"{what}-{config}-native-{r}", f"{what}-{config}-kafka-{r}"
            n, k = j(nn)[what]["mb_per_sec"], j(kn)[what]["mb_per_sec"]
            ratios.append(k / n)
            rows.append(f"| {what} {config} round {r} | {n:.0f} | {k:.0f} | {k / n:.2f} | "
                        f"{per_gb(nn, 'broker'):.2f} / {per_gb(kn, 'broker'):.2f} | "
                        f"{per_gb(nn, 'client'):.2f} / {per_gb(kn, 'client'):.2f} |")
        medians.append(f"{what} {config}: median Kafka/native {statistics.median(ratios):.2f}")
lines = [
    f"disk limit (fio): {disk:.0f} MB/s; loopback limit (iperf3): {net:.0f} MB/s",
    "",
    *rows,
    "",
    *medians,
    "(target: produce at least 0.8)",
]
text = "\n".join(lines) + "\n"
print(text)
open(f"{out}/summary.md", "w").write(text)
PY
