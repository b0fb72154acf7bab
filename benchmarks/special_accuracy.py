"""Accuracy and throughput of ``deqfam.runtime.special`` against mpmath.

For each order s the script evaluates the torch implementation on a dense grid (log-spaced in
|x|) in float64 and float32 and prints the maximum relative error against an mpmath reference
computed at 50 significant digits:

* ``polylog_exp(x, s)`` vs ``mpmath.polylog(s, e^x)``, x in [-50, -1e-8];
* ``fermi_dirac(x, s)`` vs -Li_s(-e^x), x in [-50, -1e-8] (and x in [1e-8, 50] for the
  integer orders, which are defined for all real x). For non-integer s the reference uses the
  duplication formula -Li_s(-z) = Li_s(z) - 2^{1-s} Li_s(z^2) (exact; mpmath's direct
  evaluation at negative arguments is ~15x slower); ``--direct-fd`` uses -polylog(s, -e^x);
* ``logexpm1x(x, k)`` vs ``mpmath.diff`` of log(expm1(x)/x), x in +-[1e-8, 700], k = 0..4.
  L'''' has a root at |x| ~ 2.739, where any relative error is unbounded (the relative
  condition number |x f'/f| is infinite); the table also shows the error excluding a 1%
  window around roots of L^{(k)} (searched in (0, 20]; beyond 20 the e^{-|x|} terms are
  negligible against (k-1)!/|x|^k, so there are no further roots).

float32 errors are measured against the reference at the float32-rounded input, so they show
the evaluation error only (not the input rounding). Finally it times ``polylog_exp`` on 1e6
float64 elements (median of 5 runs).

Run: ``python -m benchmarks.special_accuracy [--n 2000] [--workers 2]``; the figures are recorded
in ``benchmarks/results/special_accuracy.json`` (the table rows: the largest error over the
orders a row names).
"""

import math
import os
import time
from concurrent.futures import ProcessPoolExecutor

import mpmath
import numpy as np
import torch

from benchmarks.common import apply_quick, make_parser, median_time, set_threads, write_result
from deqfam.runtime.special import fermi_dirac, logexpm1x, polylog_exp

ORDERS = (-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.5)
DPS = 50


def _ref_polylog(args: tuple[float, float]) -> float:
    s, x = args
    with mpmath.workdps(DPS):
        return float(mpmath.polylog(s, mpmath.exp(x)))


def _ref_fermi(args: tuple[float, float, bool]) -> float:
    s, x, direct = args
    with mpmath.workdps(DPS):
        z = mpmath.exp(x)
        if direct or float(s).is_integer():
            return float(-mpmath.polylog(s, -z))
        return float(mpmath.polylog(s, z) - mpmath.power(2, 1 - s) * mpmath.polylog(s, z * z))


def _logexpm1x_mp(t):
    return mpmath.log(mpmath.expm1(t) / t) if t != 0 else mpmath.mpf(0)


def _ref_logexpm1x(args: tuple[int, float]) -> float:
    k, x = args
    with mpmath.workdps(DPS):
        return float(mpmath.diff(_logexpm1x_mp, mpmath.mpf(x), k))


def _roots_logexpm1x(k: int, hi: float) -> list[float]:
    """Roots of L^{(k)} in (0, hi] (L^{(k)} has parity (-1)^k about 0 for k >= 2)."""
    with mpmath.workdps(30):
        grid = np.linspace(0.05, hi, 400)
        vals = [mpmath.diff(_logexpm1x_mp, mpmath.mpf(g), k) for g in grid]
        roots = []
        for a, b, fa, fb in zip(grid[:-1], grid[1:], vals[:-1], vals[1:], strict=True):
            if fa * fb < 0:
                roots.append(
                    float(
                        mpmath.findroot(
                            lambda t: mpmath.diff(_logexpm1x_mp, t, k), (a, b), solver="anderson"
                        )
                    )
                )
    return roots


def _max_rel(y: np.ndarray, ref: np.ndarray, keep: np.ndarray | None = None) -> float:
    err = np.abs(y.astype(np.float64) - ref) / np.abs(ref)
    if keep is not None:
        err = err[keep]
    return float(np.max(err))


def _refs(pool, fn, args):
    if pool is None:
        return np.array([fn(a) for a in args])
    return np.array(list(pool.map(fn, args, chunksize=32)))


def _nonpos_grid(n: int) -> np.ndarray:
    return -np.logspace(-8, math.log10(50.0), n)


def _row(function: str, orders: list[float], x_range: str, e64: float, e32: float, **kw) -> dict:
    """One record row: the largest relative errors over ``orders`` on ``x_range``."""
    return {
        "function": function,
        "param": "s",
        "orders": orders,
        "x_range": x_range,
        "float64": e64,
        "float32": e32,
        **kw,
    }


def _merge(rows: list[dict]) -> dict:
    """One row for several orders: the worst float64 and float32 errors among them."""
    return {
        **rows[0],
        "orders": [o for r in rows for o in r["orders"]],
        "float64": max(r["float64"] for r in rows),
        "float32": max(r["float32"] for r in rows),
    }


# orders defined on x > 0 (Li_s(e^x) only for s <= 0), and the reference's extra arguments
POSITIVE = {
    "polylog_exp": ((-2.0, -1.0, 0.0), ()),
    "fermi_dirac": ((-2.0, -1.0, 0.0, 1.0, 2.0, 3.0), (True,)),
}


def _positive_rows(pool, name: str, fn, ref_fn, xpos: np.ndarray) -> list[dict]:
    """Print and return the per-order errors of ``fn`` on x in [1e-8, 50]."""
    orders, extra = POSITIVE[name]
    xp32 = xpos.astype(np.float32)
    rows = []
    for s in orders:
        r64 = _refs(pool, ref_fn, [(s, float(x), *extra) for x in xpos])
        r32 = _refs(pool, ref_fn, [(s, float(x), *extra) for x in xp32.astype(np.float64)])
        e64 = _max_rel(fn(torch.from_numpy(xpos), s).numpy(), r64)
        e32 = _max_rel(fn(torch.from_numpy(xp32), s).numpy(), r32)
        rows.append(_row(name, [s], "[1e-8, 50]", e64, e32))
        print(f"{name:<12} {s:>5g} {'[1e-8, 50]':<16} {e64:>10.2e} {e32:>10.2e}")
    return rows


def _table_order_funcs(pool, n: int, direct_fd: bool) -> list[dict]:
    """Print the per-order errors of polylog_exp and fermi_dirac; return the table rows
    (polylog_exp per order on x < 0, every other range merged over its orders)."""
    x64 = _nonpos_grid(n)
    x32 = x64.astype(np.float32)
    x32d = x32.astype(np.float64)
    xpos = -x64[::-1]
    print(f"\nmax relative error vs mpmath (dps={DPS}), {n} points log-spaced in |x|")
    header = (
        f"{'function':<12} {'s':>5} {'x range':<16} {'float64':>10} {'float32':>10} {'ref s':>6}"
    )
    print(header)
    print("-" * len(header))
    table: list[dict] = []
    for name, fn, ref_fn, extra in (
        ("polylog_exp", polylog_exp, _ref_polylog, ()),
        ("fermi_dirac", fermi_dirac, _ref_fermi, (direct_fd,)),
    ):
        neg_rows = []
        for s in ORDERS:
            t0 = time.perf_counter()
            r64 = _refs(pool, ref_fn, [(s, float(x), *extra) for x in x64])
            r32 = _refs(pool, ref_fn, [(s, float(x), *extra) for x in x32d])
            y64 = fn(torch.from_numpy(x64), s).numpy()
            y32 = fn(torch.from_numpy(x32), s).numpy()
            dt = time.perf_counter() - t0
            neg_rows.append(_row(name, [s], "[-50, -1e-8]", _max_rel(y64, r64), _max_rel(y32, r32)))
            print(
                f"{name:<12} {s:>5g} {'[-50, -1e-8]':<16} {_max_rel(y64, r64):>10.2e}"
                f" {_max_rel(y32, r32):>10.2e} {dt:>5.0f}s"
            )
        table += neg_rows if name == "polylog_exp" else [_merge(neg_rows)]
        pos_rows = _positive_rows(pool, name, fn, ref_fn, xpos)
        table.append(_merge(pos_rows))
    return table


def _table_logexpm1x(pool, n: int, kmax: int) -> dict:
    """Print logexpm1x's errors per k; return the table row (worst over k, excluding the 1%
    windows around the roots of L^(k), where no relative error is bounded)."""
    half = np.logspace(-8, math.log10(700.0), n // 2)
    x64 = np.concatenate([-half[::-1], half])
    x32 = x64.astype(np.float32)
    x32d = x32.astype(np.float64)
    print(f"\nlogexpm1x: max relative error, {x64.size} points, x in +-[1e-8, 700]")
    header = (
        f"{'k':>2} {'float64':>10} {'float32':>10} {'f64 excl. roots':>16}"
        f" {'f32 excl. roots':>16}  roots of L^(k) in (0, 20]"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for k in range(kmax + 1):
        r64 = _refs(pool, _ref_logexpm1x, [(k, float(x)) for x in x64])
        r32 = _refs(pool, _ref_logexpm1x, [(k, float(x)) for x in x32d])
        y64 = logexpm1x(torch.from_numpy(x64), k).numpy()
        y32 = logexpm1x(torch.from_numpy(x32), k).numpy()
        roots = _roots_logexpm1x(k, 20.0) if k >= 3 else []
        keep64 = np.ones(x64.size, dtype=bool)
        keep32 = np.ones(x64.size, dtype=bool)
        for r in roots:
            keep64 &= np.abs(np.abs(x64) - r) > 0.01 * r
            keep32 &= np.abs(np.abs(x32d) - r) > 0.01 * r
        rows.append(
            _row(
                "logexpm1x",
                [k],
                "+-[1e-8, 700] excl. roots",
                _max_rel(y64, r64, keep64),
                _max_rel(y32, r32, keep32),
                param="k",
            )
        )
        print(
            f"{k:>2} {_max_rel(y64, r64):>10.2e} {_max_rel(y32, r32):>10.2e}"
            f" {_max_rel(y64, r64, keep64):>16.2e} {_max_rel(y32, r32, keep32):>16.2e}"
            f"  {', '.join(f'{r:.4f}' for r in roots) or '-'}"
        )
    return _merge(rows)


def _throughput(n: int, repeats: int) -> list[dict]:
    x = -torch.logspace(-8, math.log10(50.0), n, dtype=torch.float64)
    print(
        f"\npolylog_exp throughput, {n:.0e} float64 elements in [-50, -1e-8] (log-spaced),"
        f" median of {repeats} runs, torch threads = {torch.get_num_threads()}"
    )
    print(f"{'s':>5} {'median ms':>10} {'elements/s':>12}")
    rows = []
    for s in ORDERS:
        polylog_exp(x[:10], s)  # warm the per-order constant caches
        med = median_time(lambda s=s: polylog_exp(x, s), repeats, warmup=0)
        rows.append({"s": s, "median_ms": med * 1e3, "elements_per_s": n / med})
        print(f"{s:>5g} {med * 1e3:>10.1f} {n / med:>12.3e}")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__, repeats=5, threads=0)
    parser.add_argument("--n", type=int, default=2000, help="grid points per function/order")
    parser.add_argument("--kmax", type=int, default=4, help="largest logexpm1x order")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes for the mpmath references (1: in-process)",
    )
    parser.add_argument("--throughput-n", type=int, default=1_000_000)
    parser.add_argument(
        "--direct-fd",
        action="store_true",
        help="fermi_dirac reference -polylog(s, -e^x) directly (slow)",
    )
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = apply_quick(
        parser.parse_args(argv), n=20, kmax=1, workers=1, throughput_n=10_000, repeats=1
    )
    set_threads(args.threads)

    figures: dict = {"n": args.n, "dps": DPS, "rows": [], "throughput": None}
    if not args.skip_accuracy:
        pool = ProcessPoolExecutor(args.workers) if args.workers > 1 else None
        try:
            figures["rows"] = _table_order_funcs(pool, args.n, args.direct_fd)
            figures["rows"].append(_table_logexpm1x(pool, args.n, args.kmax))
        finally:
            if pool is not None:
                pool.shutdown()
    if not args.skip_throughput:
        figures["throughput"] = _throughput(args.throughput_n, args.repeats)
    write_result("special_accuracy", args, figures)


if __name__ == "__main__":
    main()
