#!/usr/bin/env python3
"""Summarizes a benches/cluster.sh run: RF=3 acks=all beside RF=1 acks=1,
each run's figures and the ratio to this machine's limits (fio, iperf3)
measured in the same run.
    python3 benches/cluster-summary.py [DIR]"""
import glob
import json
import os
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "benches/results/cluster"
fio = json.load(open(os.path.join(out, "fio-seq.json")))
disk = fio["jobs"][0]["write"]["bw_bytes"] / 1e6
net = json.load(open(os.path.join(out, "iperf3.json")))["end"]["sum_received"]["bits_per_second"] / 8e6
print(f"limits: disk {disk:.0f} MB/s (fio), loopback {net:.0f} MB/s (iperf3)\n")
print("| run | mode | produce MB/s | of disk | brokers' CPU s per GB | ack p50 / p99 / p99.9 ms | e2e p50 / p99 / p99.9 ms at 10,000/s |")
print("|---|---|---|---|---|---|---|")
rows = {}
for path in sorted(glob.glob(os.path.join(out, "produce-*.json"))):
    mode, run = os.path.basename(path)[len("produce-"):-len(".json")].split("-")
    p = json.load(open(path))
    e = json.load(open(os.path.join(out, f"e2e-{mode}-{run}.json")))
    mb = p["produce"]["mb_per_sec"]
    rows[(run, mode)] = mb
    a, l = p["ack_latency"], e["e2e_latency"]
    # RF=3 writes every byte three times to the one disk.
    copies = 3 if mode == "rf3" else 1
    cpu_path = os.path.join(out, f"cpu-{mode}-{run}.txt")
    cpu = float(open(cpu_path).read()) if os.path.exists(cpu_path) else float("nan")
    gb = p["produce"]["bytes"] / 1e9
    print(f"| {run} | {mode} | {mb:.0f} | {mb * copies / disk:.2f} | {cpu / gb:.2f} | "
          f"{a['p50_ms']:.2f} / {a['p99_ms']:.2f} / {a['p999_ms']:.2f} | "
          f"{l['p50_ms']:.2f} / {l['p99_ms']:.2f} / {l['p999_ms']:.2f} |")
print()
for run in sorted({r for r, _ in rows}):
    if (run, "rf1") in rows and (run, "rf3") in rows:
        print(f"run {run}: RF=3 acks=all / RF=1 acks=1 throughput = "
              f"{rows[(run, 'rf3')] / rows[(run, 'rf1')]:.2f}")
