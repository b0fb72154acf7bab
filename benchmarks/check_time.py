"""Time the admissibility check of every built-in family (median of 3 runs).

Target: under 10 s per family on a 2-core machine. Prints a Markdown table (family, verdict,
strength, median / min / max seconds, and the first, cold run: SymPy/lambdify caches empty
for that family) for BENCHMARKS.md. Run with

    python benchmarks/check_time.py [--repeat 3] [NAME ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from tqdm import tqdm

from deqfam.derive.admissibility import check
from deqfam.derive.family import builtin_names, load_family

TARGET_S = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="built-in families (default: all)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per family (default 3)")
    args = parser.parse_args()
    names = args.names or builtin_names()
    rows = []
    for name in tqdm(names, desc="check", unit="family", leave=False):
        fam = load_family(name)  # derivation is not part of the check's time
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            rep = check(fam)
            times.append(time.perf_counter() - t0)
        rows.append((name, rep.verdict, rep.strength or "-", times))
    print(
        f"# deqfam check timings — {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, median of {args.repeat}"
    )
    print()
    print("| family | verdict | strength | median s | min s | max s | first (cold) s |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name, verdict, strength, times in rows:
        print(
            f"| {name} | {verdict} | {strength} | {statistics.median(times):.3f} "
            f"| {min(times):.3f} | {max(times):.3f} | {times[0]:.3f} |"
        )
    worst = max(statistics.median(t) for *_, t in rows)
    print()
    print(f"slowest median {worst:.3f} s (target < {TARGET_S:.0f} s per family)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
