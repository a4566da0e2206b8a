#!/usr/bin/env bash
# Apache Iggy, the closest peer, measured on the same workloads as
# ringlog-bench, in the same run (benches/run-reference.sh calls this right
# after ringlog). Iggy is not vendored: build it from a checkout of its public
# repository (github: apache/iggy) first:
#
#   apt-get install -y libhwloc-dev libudev-dev pkg-config
#   cd IGGY && cargo +stable build --release -p server -p iggy-bench   # ~9 min on 2 cores
#
#   bash benches/peers/iggy.sh IGGY COMMIT OUT     # OUT: where iggy-*.txt and iggy.json go
#
# Workloads (1 KiB messages, 2 producers each to its own stream and
# partition, as iggy-bench's `pp`): 64 KiB and ~1 MiB batches, fsync on every
# write, and a 2-consumer read of what was written. For each: iggy-bench's
# `Total throughput` line (all actors together) and the server's CPU seconds
# (utime+stime from /proc/PID/stat) spent during that run.
set -euo pipefail
iggy=$(cd "$1" && pwd); commit=$2; out=$(mkdir -p "$3" && cd "$3" && pwd)
server=$iggy/target/release/iggy-server
bench=$iggy/target/release/iggy-bench
for b in "$server" "$bench"; do
  [ -x "$b" ] || { echo "$b missing: build Iggy first (see the top of this script)" >&2; exit 1; }
done
data=$(mktemp -d)
ticks=$(getconf CLK_TCK)

start_server() {
  rm -rf "$data"/*
  # Its config is read from the checkout's root; TCP only.
  (cd "$iggy" && IGGY_SYSTEM_PATH="$data" IGGY_HTTP_ENABLED=false IGGY_QUIC_ENABLED=false \
    "$server" > "$out/iggy-server.log" 2>&1 &)
  for _ in $(seq 1 100); do
    pid=$(pgrep -f "$server" | head -1 || true)
    pw=$(grep -ioE 'password[^A-Za-z0-9]*[: ]+[^ ]+' "$out/iggy-server.log" 2>/dev/null | tail -1 | awk '{print $NF}' || true)
    if [ -n "$pid" ] && grep -qi "tcp server" "$out/iggy-server.log" 2>/dev/null; then break; fi
    sleep 0.2
  done
  [ -n "$pid" ] || { echo "iggy-server did not start:"; cat "$out/iggy-server.log"; exit 1; } >&2
  password=${pw:-iggy}
}
stop_server() { kill -TERM "$pid" 2>/dev/null || true; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

# name, iggy-bench's global options (one string), then its subcommand
run() {
  local name=$1 globals=$2; shift 2
  sync
  local before; before=$(cpu_ticks)
  # shellcheck disable=SC2086 # the global options are words
  "$bench" $globals -u iggy -p "$password" "$@" > "$out/iggy-$name.txt" 2>&1
  local after; after=$(cpu_ticks)
  local mbps; mbps=$(grep -i "total throughput" "$out/iggy-$name.txt" | grep -oE '[0-9]+(\.[0-9]+)? MB/s' | head -1 | awk '{print $1}')
  echo "$name ${mbps:-?} MB/s, server cpu $(( after - before )) ticks"
  printf '  "%s": {"mb_per_sec": %s, "server_cpu_sec": %s},\n' "$name" "${mbps:-null}" \
    "$(python3 -c "print(round(($after - $before) / $ticks, 2))")" >> "$out/iggy.json.part"
}

rm -f "$out/iggy.json.part"
start_server
run produce-64k   "-m 1024 -P 64 -T 1GB"     pp -p 2 tcp
stop_server; start_server
run produce-1m    "-m 1024 -P 1000 -T 1GB"   pp -p 2 tcp
# Reads back what produce-1m wrote (same streams), from a cold page cache.
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "cannot drop the page cache here"
run consume-1m    "-m 1024 -P 1000 -T 1GB"   pc -c 2 tcp
stop_server; start_server
run produce-fsync "-m 1024 -P 64 -T 250MB --enforce-fsync" pp -p 2 tcp
stop_server
rm -rf "$data"
{ echo "{"; echo "  \"commit\": \"$commit\","; sed '$ s/,$//' "$out/iggy.json.part"; echo "}"; } > "$out/iggy.json"
rm -f "$out/iggy.json.part"
cat "$out/iggy.json"
