#!/usr/bin/env bash
# Replication's cost: a local 3-broker cluster (one shard each, one disk,
# this machine's cores shared), RF=3 acks=all against RF=1 acks=1, measured
# in the same run and interleaved, with this machine's disk and loopback
# limits measured first.
#   benches/cluster.sh [RUNS] [OUT] [MESSAGES]
# Per run and mode: a closed-loop produce of MESSAGES 1 KiB messages into 3
# partitions (throughput, ack latency), then an e2e run at 10,000 msgs/s for
# 20 s (produce-to-consume latency).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
out=${2:-benches/results/cluster}
messages=${3:-1000000}
mkdir -p "$out"
work=$(mktemp -d /var/tmp/ringlog-cluster.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
source benches/limits.sh
all_limits "$work" "$out"
cargo build --release -p ringlog-server -p ringlog-bench -p ringlog-client
bin=target/release
"$bin/ringlog-server" certs "$work/certs" --nodes 1,2,3
peers="1@127.0.0.1:19391,2@127.0.0.1:19392,3@127.0.0.1:19393"
brokers="127.0.0.1:19291,127.0.0.1:19292,127.0.0.1:19293"
for i in 1 2 3; do
  "$bin/ringlog-server" --node-id "$i" --listen "127.0.0.1:1929$i" \
    --replication-listen "127.0.0.1:1939$i" --peers "$peers" --tls-dir "$work/certs" \
    --data-dir "$work/d$i" --shards 1 --metrics-listen off > "$out/broker-$i.log" 2>&1 &
  pids+=($!)
done
echo "== waiting for three registered brokers"
for _ in $(seq 1 150); do
  alive=$("$bin/ringlog" --broker "$brokers" cluster info 2>/dev/null | grep -c " alive " || true)
  [ "$alive" = 3 ] && break
  sleep 0.2
done
[ "$alive" = 3 ] || { echo "the cluster did not form"; exit 1; }
"$bin/ringlog" --broker "$brokers" cluster info | tee "$out/cluster-info.txt"
# The brokers' CPU seconds (user + system), all three together.
broker_cpu() {
  local ticks=0
  for p in "${pids[@]}"; do
    ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f\n", t / hz }'
}
for run in $(seq 1 "$runs"); do
  for mode in rf1 rf3; do
    case $mode in
      rf1) topic_args=(--replication-factor 1 --acks 1) ;;
      rf3) topic_args=(--replication-factor 3 --min-insync-replicas 2 --acks all) ;;
    esac
    echo "== run $run $mode: produce $messages x 1 KiB"
    before=$(broker_cpu)
    "$bin/ringlog-bench" produce --broker "$brokers" --topic "p-$mode-$run" --partitions 3 \
      --messages "$messages" --message-size 1024 --fsync never "${topic_args[@]}" \
      --json "$out/produce-$mode-$run.json"
    echo "$before $(broker_cpu)" | awk '{print $2 - $1}' > "$out/cpu-$mode-$run.txt"
    echo "== run $run $mode: e2e at 10,000 msgs/s"
    "$bin/ringlog-bench" e2e --broker "$brokers" --topic "e-$mode-$run" --partitions 3 \
      --rate 10000 --duration 20 --warmup 2 --message-size 1024 --fsync never \
      "${topic_args[@]}" --json "$out/e2e-$mode-$run.json"
  done
done
