"""Time the admissibility check of every built-in family (median of 3 runs).

Target: under 10 s per family on a 2-core machine. Prints a Markdown table (family, verdict,
strength, median / min / max seconds, and the first, cold run: SymPy/lambdify caches empty
for that family) for BENCHMARKS.md and records it in ``benchmarks/results/check_time.json``.
Run with

    python -m benchmarks.check_time [--repeats 3] [NAME ...]
"""

from __future__ import annotations

import os
import platform
import statistics

from tqdm import tqdm

from benchmarks.common import apply_quick, make_parser, set_threads, time_runs, write_result
from deqfam.derive.admissibility import check
from deqfam.derive.family import builtin_names, load_family

TARGET_S = 10.0


def parse_args(argv: list[str] | None = None):
    parser = make_parser(__doc__, repeats=3, threads=0)
    parser.add_argument("names", nargs="*", help="built-in families (default: all)")
    args = parser.parse_args(argv)
    return apply_quick(args, names=args.names or ["bernoulli", "poisson"], repeats=1)


def time_check(name: str, repeats: int) -> dict:
    """Verdict, strength and check times of one family (derivation is not timed)."""
    fam = load_family(name)
    reports = []
    times = time_runs(lambda: reports.append(check(fam)), repeats, warmup=0)
    rep = reports[-1]
    return {
        "family": name,
        "verdict": rep.verdict,
        "strength": rep.strength or "-",
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "cold_s": times[0],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    names = args.names or builtin_names()
    rows = [time_check(n, args.repeats) for n in tqdm(names, desc="check", unit="family")]
    print(
        f"# deqfam check timings — {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, median of {args.repeats}"
    )
    print()
    print("| family | verdict | strength | median s | min s | max s | first (cold) s |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['family']} | {r['verdict']} | {r['strength']} | {r['median_s']:.3f} "
            f"| {r['min_s']:.3f} | {r['max_s']:.3f} | {r['cold_s']:.3f} |"
        )
    worst = max(r["median_s"] for r in rows)
    print()
    print(f"slowest median {worst:.3f} s (target < {TARGET_S:.0f} s per family)")
    write_result("check_time", args, {"repeats": args.repeats, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
