#!/usr/bin/env bash
# What raising quinn's flow-control windows does to a replication stream,
# beside this machine's loopback limit (iperf3, TCP) measured in the same run.
#   benches/quic-windows.sh [RUNS] [OUT] [STREAM_WINDOW CONN_WINDOW]
# With MTU=N in the environment the raised setting is that MTU ceiling instead
# of the windows (the largest UDP payload accepted, and path-MTU discovery's
# upper bound).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
out=${2:-benches/results/quic}
mkdir -p "$out"
source benches/limits.sh
machine . "$out"
loopback_limit "$out"
cargo build --release -p ringlog-bench --bin ringlog-quic-windows
stream=${3:-$(((4 << 20) + (256 << 10)))}
conn=${4:-$((16 << 20))}
for threads in 2 1; do
  echo "== fetch-sized responses over QUIC, $threads runtime thread(s)"
  target/release/ringlog-quic-windows --bytes $((2 << 30)) --runs "$runs" --threads "$threads" \
    --stream-window "$stream" --conn-window "$conn" ${MTU:+--mtu "$MTU"} | tee -a "$out/runs.jsonl"
done
