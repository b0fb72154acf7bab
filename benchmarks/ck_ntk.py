"""Implicit CK / NTK of random DEQs on Gaussian mixtures: deterministic equivalents vs exact
infinite-width kernels vs wide random DEQs, and the matched explicit networks.

Data: two classes, ``x_i = (mu_a + omega_i)/sqrt(p)``, ``mu_0 = 4 e_0``, ``mu_1 = 4 e_1``,
``omega_i ~ N(0, c_a I)`` with ``c_0 = 1``, ``c_1 = 1 + 4/sqrt(p)``; DEQ variances
``sigma_a^2 = 0.2``, ``sigma_b^2 = 0.8`` (as in Ling et al.'s experiments).

Table 1 (``n = p/2``): relative spectral errors ``|A - B|_2 / |A|_2`` of ``G_bar`` (CK),
``K_bar`` (pre-activation kernel) and ``Theta_bar`` (NTK) against the exact infinite-width
kernels (``runtime.kernel_limits.infinite_width_kernels``), and of the matched two-layer explicit
network's exact CK against ``G_bar`` and against the DEQ's exact CK.

Table 2 (``n = p/8``): Monte Carlo ``G* = mean Z* Z*^T`` over ``R`` random DEQs of width
``m = 256`` with ``m R = p^2 / 2`` (as Ling et al.'s ``p^2/m`` realisations, halved), against
``G_bar`` and the infinite-width CK.

Run: ``python -m benchmarks.ck_ntk [--ps 256 512 1024] [--mc-ps 256 512] [--phis relu tanh]``.
Figures are printed and recorded in ``benchmarks/results/ck_ntk.json``, never asserted.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.common import apply_quick, make_parser, set_threads, write_result
from deqfam.runtime.kernel_limits import (
    explicit_infinite_width_ck,
    gaussian_mixture,
    implicit_kernels,
    infinite_width_kernels,
    match_explicit,
    relative_spectral_error,
    wide_deq_ck,
)

SA, SB = math.sqrt(0.2), math.sqrt(0.8)


def mixture(p: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    mus = [np.zeros(p), np.zeros(p)]
    mus[0][0] = 4.0
    mus[1][1] = 4.0
    return gaussian_mixture(p, [n // 2, n - n // 2], mus, [1.0, 1 + 4 / math.sqrt(p)], rng)


def parse_args(argv: list[str] | None = None):
    ap = make_parser(__doc__, repeats=1, threads=0)
    ap.add_argument("--ps", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--mc-ps", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--phis", nargs="+", default=["relu", "leaky_relu", "tanh"])
    ap.add_argument("--width", type=int, default=256)
    return apply_quick(ap.parse_args(argv), ps=[64], mc_ps=[64], phis=["relu"], width=32)


def equivalents_row(phi: str, p: int, seed: int) -> dict:
    """Table 1 row: the deterministic equivalents against the infinite-width kernels."""
    t0 = time.perf_counter()
    X, y, covs = mixture(p, p // 2, seed)
    ik = implicit_kernels(phi, SA, SB, X, y, covariances=covs)
    inf = infinite_width_kernels(phi, SA, SB, X, shift=ik.scalars.shift)
    m = match_explicit(ik)
    ex = explicit_infinite_width_ck(m.layers, X)
    return {
        "phi": phi,
        "p": p,
        "ck": relative_spectral_error(inf.G, ik.ck),
        "K": relative_spectral_error(inf.K, ik.pre_activation),
        "ntk": relative_spectral_error(inf.ntk, ik.ntk),
        "explicit_family": m.family,
        "explicit_vs_bar": relative_spectral_error(ex, ik.ck),
        "explicit_vs_deq": relative_spectral_error(inf.G, ex),
        "seconds": time.perf_counter() - t0,
    }


def monte_carlo_row(phi: str, p: int, width: int, seed: int) -> dict:
    """Table 2 row: wide random DEQs (Monte Carlo) against ``G_bar`` and the exact CK."""
    t0 = time.perf_counter()
    X, y, covs = mixture(p, p // 8, seed)
    ik = implicit_kernels(phi, SA, SB, X, y, covariances=covs)
    inf = infinite_width_kernels(phi, SA, SB, X, shift=ik.scalars.shift)
    R = max(1, p * p // (2 * width))
    generator = torch.Generator().manual_seed(seed + 1)
    mc = wide_deq_ck(phi, SA, SB, X, width, R, shift=ik.scalars.shift, generator=generator)
    return {
        "phi": phi,
        "p": p,
        "R": R,
        "mc_vs_bar": relative_spectral_error(mc.G, ik.ck),
        "mc_vs_inf": relative_spectral_error(mc.G, inf.G),
        "inf_vs_bar": relative_spectral_error(inf.G, ik.ck),
        "max_iterations": mc.max_iterations,
        "seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    print(f"sigma_a^2 = {SA**2:.2f}, sigma_b^2 = {SB**2:.2f}; relative spectral errors")
    print("Table 1: n = p/2, against exact infinite-width kernels")
    head = (
        f"{'phi':11s} {'p':>5s} {'CK':>7s} {'K':>7s} {'NTK':>7s} {'expl.':>9s} "
        f"{'expl/bar':>9s} {'expl/DEQ':>9s} {'time s':>7s}"
    )
    print(head)
    table1 = []
    for phi in args.phis:
        for p in args.ps:
            r = equivalents_row(phi, p, args.seed)
            table1.append(r)
            print(
                f"{phi:11s} {p:5d} {r['ck']:7.4f} {r['K']:7.4f} {r['ntk']:7.4f} "
                f"{r['explicit_family']:>9s} {r['explicit_vs_bar']:9.4f} "
                f"{r['explicit_vs_deq']:9.5f} {r['seconds']:7.1f}"
            )
    print()
    print(f"Table 2: n = p/8, Monte Carlo over random DEQs, width m = {args.width}, m R = p^2/2")
    print(
        f"{'phi':11s} {'p':>5s} {'R':>5s} {'MC/bar':>8s} {'MC/inf':>8s} {'inf/bar':>8s} "
        f"{'max it':>6s} {'time s':>7s}"
    )
    jobs = [(phi, p) for phi in args.phis for p in args.mc_ps]
    table2 = [
        monte_carlo_row(phi, p, args.width, args.seed)
        for phi, p in tqdm(jobs, desc="monte carlo", leave=False)
    ]
    for r in table2:
        print(
            f"{r['phi']:11s} {r['p']:5d} {r['R']:5d} {r['mc_vs_bar']:8.4f} "
            f"{r['mc_vs_inf']:8.4f} {r['inf_vs_bar']:8.4f} {r['max_iterations']:6d} "
            f"{r['seconds']:7.1f}"
        )
    write_result("ck_ntk", args, {"table1": table1, "table2": table2})


if __name__ == "__main__":
    main()
