#!/usr/bin/env python3
"""ncu_summary.py -- one line per kernel from `ncu --csv` output.

    ncu --csv --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,\
sm__throughput.avg.pct_of_peak_sustained_elapsed ... > ncu.txt
    python3 tests/gpu/ncu_summary.py ncu.txt

Lines that are not CSV (the program's own output, ncu's ==PROF== lines)
are skipped. For each kernel (its name up to the first '(' or '<'): the
launches profiled, the mean time in microseconds, and the mean DRAM and
SM throughput as percentages of the card's peak.
"""
import csv
import sys

UNIT = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "second": 1e6}


def main(path):
    rows = [line for line in open(path, errors="replace") if line.startswith('"')]
    if not rows:
        print("no ncu results in", path)
        return 1
    kernels = {}
    for r in csv.DictReader(rows):
        name = r.get("Kernel Name", "?")
        short = name.removeprefix("void ").split("(")[0].split("<")[0].strip() or name
        value = r.get("Metric Value", "").replace(",", "")
        try:
            v = float(value)
        except ValueError:
            continue
        k = kernels.setdefault(short, {"ids": set(), "time": 0.0, "dram": 0.0, "sm": 0.0})
        k["ids"].add(r.get("ID"))
        metric = r.get("Metric Name", "")
        if metric == "gpu__time_duration.sum":
            k["time"] += v * UNIT.get(r.get("Metric Unit", "nsecond"), 1e-3)
        elif metric.startswith("dram__throughput"):
            k["dram"] += v
        elif metric.startswith("sm__throughput"):
            k["sm"] += v
    print(f"{'kernel':44} {'launches':>8} {'mean us':>9} {'dram %':>7} {'sm %':>6}")
    for name, k in sorted(kernels.items(), key=lambda kv: -kv[1]["time"]):
        n = len(k["ids"])
        print(f"{name[:44]:44} {n:8d} {k['time'] / n:9.1f} {k['dram'] / n:7.1f} {k['sm'] / n:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
