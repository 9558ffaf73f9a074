#!/usr/bin/env python3
"""Summarises run-writes.sh output: per run p50/p99 latency from pgbench's per-transaction logs,
then the median over rounds of each configuration, and the ratios A/B, A/plain, B/plain.
Usage: summarize.py OUT_DIR  (prints Markdown tables)"""
import csv, glob, os, statistics, sys

out = sys.argv[1]
runs = list(csv.DictReader(open(os.path.join(out, "writes.csv"))))


def percentiles(tag):
    lat = []
    for f in glob.glob(os.path.join(out, "logs", tag, "tx*")):
        for line in open(f):
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                lat.append(int(parts[2]))
    lat.sort()
    if not lat:
        return float("nan"), float("nan")
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000.0
    return pick(0.50), pick(0.99)


cells = {}
for r in runs:
    tag = f"r{r['round']}-{r['mechanism']}-n{r['batch']}-t{r['topics']}-c{r['clients']}"
    p50, p99 = percentiles(tag)
    key = (int(r["batch"]), int(r["topics"]), int(r["clients"]), r["mechanism"])
    cells.setdefault(key, []).append((float(r["tps"]), p50, p99, int(r["failed"])))

med = {}
for key, vals in cells.items():
    med[key] = tuple(statistics.median(v[i] for v in vals) for i in range(3)) + (sum(v[3] for v in vals), len(vals))

print("| batch | topics | clients | plain tx/s | A tx/s | B tx/s | plain ev/s | A ev/s | B ev/s "
      "| A/B thr. | A/plain | B/plain | p50 ms plain/A/B | p99 ms plain/A/B | A/B p50 | A/B p99 |")
print("|" + "---:|" * 16)
for batch in (1, 50, 500):
    for topics in (1, 10):
        for clients in (1, 2, 4, 8):
            k = lambda m: (batch, topics, clients, m)
            if not all(k(m) in med for m in ("plain", "a", "b")):
                continue
            p, a, b = med[k("plain")], med[k("a")], med[k("b")]
            print(f"| {batch} | {topics} | {clients} | {p[0]:.0f} | {a[0]:.0f} | {b[0]:.0f} "
                  f"| {p[0]*batch:.0f} | {a[0]*batch:.0f} | {b[0]*batch:.0f} "
                  f"| {a[0]/b[0]:.2f} | {a[0]/p[0]:.2f} | {b[0]/p[0]:.2f} "
                  f"| {p[1]:.1f}/{a[1]:.1f}/{b[1]:.1f} | {p[2]:.1f}/{a[2]:.1f}/{b[2]:.1f} "
                  f"| {a[1]/b[1]:.2f} | {a[2]/b[2]:.2f} |")

# Spread: the range over rounds of each cell's throughput, as a share of its median.
spreads = [(max(v[0] for v in vals) - min(v[0] for v in vals)) / statistics.median(v[0] for v in vals)
           for vals in cells.values() if len(vals) > 1]
if spreads:
    print(f"\nRound-to-round spread of throughput (max-min)/median: median {statistics.median(spreads):.0%}, "
          f"max {max(spreads):.0%} over {len(spreads)} cells; rounds per cell: "
          f"{min(len(v) for v in cells.values())}-{max(len(v) for v in cells.values())}; "
          f"failed transactions: {sum(v[3] for vals in cells.values() for v in vals)}")
