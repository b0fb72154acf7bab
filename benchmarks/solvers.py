"""Benchmark the equilibrium solvers of ``deqfam.runtime`` on exponential-family PCA.

Setting (Appendix C of the seed paper): ``d = 50`` observed coordinates, ``l = 2`` latents,
``lam = 0.1``, batch 500; ground-truth latents on the paper's two discs and diamond, data
``Y ~ family(W_true z)`` with ``W_true_ij ~ N(0, 1/2)`` (``benchmarks.common.paper_batch``:
500 points drawn from the library's grid data set). The layer is evaluated at two weight
scales: 0.01 (a training initialisation) and ``sqrt(1/2)`` (the data-generating weights).

For every family x scale x solver it prints the median time of a forward pass and of a
forward + backward pass of the outer loss (Theorem 1 (6)), the backward/forward time ratio,
the fraction of samples the solver reports converged, and ``max |Z - Z*_newton|``. torchdeq's
``anderson`` / ``broyden`` / ``fixed_point_iter`` (with its own IFT backward) are included when
``torchdeq`` is importable, and the generated fused C++ layer (``newton_fused``; its speed-ups
and cost per sample-iteration in a third table, ``benchmarks.fused_figures``). A second
table gives the peak extra resident memory of a forward + backward pass against ``max_iter``
(each point in a fresh subprocess, ``ru_maxrss``) and the bytes autograd saves for backward,
contrasted with an unrolled (backprop-through-the-iterations) fixed-point solve.

Run: ``python -m benchmarks.solvers [--repeats 7] [--threads 1]``. Figures are printed and
recorded in ``benchmarks/results/solvers.json``, never asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from benchmarks.common import (
    apply_quick,
    make_parser,
    median_time,
    paper_batch,
    set_threads,
    write_result,
)
from benchmarks.fused_figures import FUSED, print_speedups, speedups
from deqfam.api import builtin_module
from deqfam.runtime.family import TorchFamily
from deqfam.runtime.fused import fused_ops_many
from deqfam.runtime.models import ExpFamPCA

OUR_SOLVERS = ("newton", "cg_newton", "anderson", "broyden", "fixed_point")
TORCHDEQ_SOLVERS = ("anderson", "broyden", "fixed_point_iter")
FAMILIES = ("gaussian", "bernoulli", "poisson")
ROOT = Path(__file__).resolve().parents[1]  # the memory probes run as ``-m benchmarks.solvers``
SCALES = (0.01, math.sqrt(0.5))


# ------------------------------------------------------------------------------ data


def load_family(name: str) -> TorchFamily:
    """The runtime contract of the generated built-in family ``name``."""
    return builtin_module(name).FAMILY


def make_problem(name: str, scale: float, n: int, d: int, seed: int):
    """``(W, Y)``: ``n`` rows of the paper's data for ``name`` and the model weights at
    ``scale`` (``W_true`` itself at the data-generating scale sqrt(1/2), else ``N(0, scale^2)``
    entries)."""
    ds = paper_batch(name, n, data_dim=d, seed=seed)
    if math.isclose(scale, math.sqrt(0.5)):
        return ds.W, ds.Y
    gen = torch.Generator().manual_seed(seed + 1)
    return scale * torch.randn(ds.W.shape, generator=gen, dtype=torch.float64), ds.Y


# ------------------------------------------------------------------------------ runners


def our_model(family, w, solver, lam, max_iter, tol, backend="torch", **extra) -> ExpFamPCA:
    options = {"max_iter": max_iter, "tol": tol, **extra}
    model = ExpFamPCA(
        family,
        w.shape[0],
        w.shape[1],
        lam=lam,
        solver=solver,
        solver_options=options,
        on_nonconvergence="ignore",
        dtype=torch.float64,
        backend=backend,
    )
    with torch.no_grad():
        model.W.copy_(w)
    return model


def outer_loss(family, w_param, b_param, y, z, lam):
    eta = z @ w_param.T + b_param
    t = family.sufficient_statistic(y)
    per = (family.log_partition(eta) - t * eta).sum(-1) + 0.5 * lam * (z * z).sum(-1)
    return per.mean()


class TorchDEQRunner:
    """torchdeq's solver + IFT backward on the DEQ map (10), same loss as ours."""

    def __init__(self, family, w, solver, lam, max_iter, tol) -> None:
        import torchdeq

        self.family, self.lam = family, lam
        self.W = torch.nn.Parameter(w.clone())
        self.B = torch.nn.Parameter(torch.zeros(w.shape[0], dtype=w.dtype))
        self.deq = torchdeq.get_deq(
            f_solver=solver,
            f_max_iter=max_iter,
            f_tol=tol,
            f_stop_mode="abs",
            b_solver=solver,
            b_max_iter=max_iter,
            b_tol=tol,
            b_stop_mode="abs",
            ift=True,
        )
        self.residual = None

    def forward(self, y):
        t = self.family.sufficient_statistic(y)

        def f(z):
            return (t - self.family.activation(z @ self.W.T + self.B)) @ self.W / self.lam

        z0 = torch.zeros(y.shape[0], self.W.shape[1], dtype=y.dtype)
        z_out, _ = self.deq(f, z0)
        z = z_out[-1]
        with torch.no_grad():
            self.residual = torch.linalg.vector_norm(f(z) - z, dim=1)
        return z

    def loss(self, y):
        return outer_loss(self.family, self.W, self.B, y, self.forward(y), self.lam)

    def zero_grad(self):
        self.W.grad = self.B.grad = None


def bench_one(runner, y, reference, repeats, tol) -> dict[str, float]:
    def fwd():
        with torch.no_grad():
            return runner.forward(y) if isinstance(runner, TorchDEQRunner) else runner(y)

    def fwd_bwd():
        runner.zero_grad()
        runner.loss(y).backward()

    t_f = median_time(fwd, repeats)
    t_fb = median_time(fwd_bwd, repeats)
    z = fwd()
    iters = math.nan
    if isinstance(runner, TorchDEQRunner):
        # torchdeq reports no per-sample flag: apply our generic solvers' criterion
        # |f(z) - z| <= tol + 100 eps |f(z)| (with f(z) ~ z); ours report their own stats.
        eps = torch.finfo(z.dtype).eps
        conv = float((runner.residual <= tol + 100 * eps * z.norm(dim=1)).double().mean())
    else:
        conv = runner.last_stats.convergence_rate
        iters = float(runner.last_stats.iterations.double().mean())
    err = float((z - reference).abs().max()) if torch.isfinite(z).all() else math.inf
    return {
        "forward_ms": 1e3 * t_f,
        "fwd_bwd_ms": 1e3 * t_fb,
        "bwd_over_fwd": (t_fb - t_f) / t_f,
        "converged": conv,
        "mean_iterations": iters,
        "max_err_vs_newton": err,
    }


def timing_table(args) -> list[dict[str, Any]]:
    rows = []
    have_torchdeq = torchdeq_available()
    jobs = [(f, s) for f in args.families for s in args.scales]
    for name, scale in tqdm(jobs, desc="timing", disable=args.quiet):
        family = load_family(name)
        w, y = make_problem(name, scale, args.batch, args.d, args.seed)
        ref_model = our_model(family, w, "newton", args.lam, 100, 1e-12)
        with torch.no_grad():
            reference = ref_model(y)
        runners = {
            f"ours/{s}": our_model(family, w, s, args.lam, args.max_iter, args.tol)
            for s in OUR_SOLVERS
        }
        # the generated fused layer (C++; built before timing, so no compile is timed)
        runners[FUSED] = our_model(family, w, "newton", args.lam, args.max_iter, args.tol, "fused")
        if have_torchdeq:
            for s in TORCHDEQ_SOLVERS:
                runners[f"torchdeq/{s}"] = TorchDEQRunner(
                    family, w, s, args.lam, args.max_iter, args.tol
                )
        for label, runner in runners.items():
            try:
                stats = bench_one(runner, y, reference, args.repeats, args.tol)
            except RuntimeError as exc:  # e.g. torchdeq's Anderson on a singular system
                stats = {"error": f"{type(exc).__name__}: {str(exc)[:60]}"}
            rows.append({"family": name, "scale": scale, "solver": label, **stats})
    return rows


def torchdeq_available() -> bool:
    try:
        import torchdeq  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------ memory


def saved_bytes(fn: Callable[[], Any]) -> int:
    """Bytes of the tensors autograd saves for backward while ``fn`` runs."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


def unrolled_fixed_point_loss(family, w_param, b_param, y, lam, max_iter):
    """Backprop through ``max_iter`` plain iterations of (10): memory grows with max_iter."""
    t = family.sufficient_statistic(y)
    z = torch.zeros(y.shape[0], w_param.shape[1], dtype=y.dtype)
    for _ in range(max_iter):
        z = (t - family.activation(z @ w_param.T + b_param)) @ w_param / lam
    return outer_loss(family, w_param, b_param, y, z, lam)


def probe_loss(args, family, w, y, solver: str, max_iter: int) -> Callable[[], Any]:
    """A closure computing the outer loss with ``solver`` running exactly ``max_iter``
    iterations (tolerance far below rounding, Newton's stall detection off)."""
    tol = 1e-300
    if solver == "unrolled":
        w_param = torch.nn.Parameter(w.clone())
        b_param = torch.nn.Parameter(torch.zeros(w.shape[0], dtype=w.dtype))
        return lambda: unrolled_fixed_point_loss(family, w_param, b_param, y, args.lam, max_iter)
    if solver.startswith("torchdeq/"):
        runner = TorchDEQRunner(family, w, solver.split("/")[1], args.lam, max_iter, tol)
        return lambda: runner.loss(y)
    model = our_model(family, w, solver, args.lam, max_iter, tol, rtol=0.0, min_step=1e-300)
    return lambda: model.loss(y)


def memory_probe(args) -> dict[str, float]:
    """One forward + backward in this (fresh) process, after a 2-iteration warm-up of the same
    solver: peak RSS (VmHWM, reset just before) above the RSS at the start of the run, and the
    bytes autograd saves for backward."""
    family = load_family(args.family_probe)
    w, y = make_problem(args.family_probe, math.sqrt(0.5), args.batch, args.d, 0)
    probe_loss(args, family, w, y, args.solver_probe, 2)().backward()  # warm-up
    make_loss = probe_loss(args, family, w, y, args.solver_probe, args.max_iter)
    reset_peak_rss()
    before = proc_status_mib("VmRSS")
    make_loss().backward()
    peak = proc_status_mib("VmHWM")
    saved = saved_bytes(make_loss) / 2**20
    return {"peak_extra_mib": max(0.0, peak - before), "autograd_saved_mib": saved}


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0), so that
    transient peaks of imports and warm-up are not counted."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def proc_status_mib(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_table(args) -> list[dict[str, Any]]:
    solvers = ["newton", "anderson", "fixed_point", "unrolled"]
    if torchdeq_available():
        solvers.append("torchdeq/anderson")
    rows = []
    jobs = [(s, m) for s in solvers for m in args.memory_max_iter]
    for solver, max_iter in tqdm(jobs, desc="memory", disable=args.quiet):
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.solvers",
            "--probe",
            "--family-probe",
            "bernoulli",
            "--solver-probe",
            solver,
            "--max-iter",
            str(max_iter),
            "--threads",
            str(args.threads),
            "--batch",
            str(args.batch),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
        rows.append({"solver": solver, "max_iter": max_iter, **json.loads(out.splitlines()[-1])})
    return rows


# ------------------------------------------------------------------------------ output


def print_tables(timing, memory, args) -> None:
    print(
        f"\n## Solvers: d={args.d}, l=2, batch={args.batch}, lam={args.lam}, "
        f"tol={args.tol}, max_iter={args.max_iter}, {args.threads} CPU thread(s), float64, "
        f"median of {args.repeats}; load average at the end {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores\n"
    )
    print(
        "| family | W scale | solver | forward ms | fwd+bwd ms | bwd/fwd | converged "
        "| mean iters | max abs err vs Newton |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in timing:
        if "error" in r:
            print(f"| {r['family']} | {r['scale']:.3g} | {r['solver']} | crashed: {r['error']} |")
            continue
        print(
            f"| {r['family']} | {r['scale']:.3g} | {r['solver']} | {r['forward_ms']:.2f} | "
            f"{r['fwd_bwd_ms']:.2f} | {r['bwd_over_fwd']:.2f} | {100 * r['converged']:.0f}% | "
            f"{r['mean_iterations']:.1f} | {r['max_err_vs_newton']:.1e} |"
        )
    if memory:
        print("\n## Memory of one forward+backward vs max_iter (bernoulli, W scale sqrt(1/2))\n")
        print("| solver | max_iter | peak extra RSS MiB | autograd-saved MiB |")
        print("|---|---:|---:|---:|")
        for r in memory:
            print(
                f"| {r['solver']} | {r['max_iter']} | {r['peak_extra_mib']:.1f} | "
                f"{r['autograd_saved_mib']:.3f} |"
            )
    if not torchdeq_available():
        print("\ntorchdeq is not importable: its columns were skipped.")


def parse_args(argv=None):
    p = make_parser(__doc__.split("\n\n")[0], repeats=7, threads=1)
    p.add_argument("--families", nargs="+", default=list(FAMILIES))
    p.add_argument("--scales", nargs="+", type=float, default=list(SCALES))
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--d", type=int, default=50)
    p.add_argument("--lam", type=float, default=0.1)
    p.add_argument("--tol", type=float, default=1e-8)
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--memory-max-iter", nargs="+", type=int, default=[10, 100, 400])
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--family-probe", help=argparse.SUPPRESS)
    p.add_argument("--solver-probe", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    return apply_quick(
        args, families=["gaussian"], scales=[0.01], batch=50, repeats=1, no_memory=True
    )


def main(argv=None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    if args.probe:
        print(json.dumps(memory_probe(args)))
        return
    fused_ops_many([builtin_module(f) for f in args.families])
    timing = timing_table(args)
    gains = speedups(timing, args.d, 2, args.batch)
    memory = [] if args.no_memory else memory_table(args)
    print_tables(timing, memory, args)
    print_speedups(gains, args.d, 2)
    keys = ("d", "batch", "lam", "tol", "max_iter", "repeats")
    config = {"l": 2, **{k: getattr(args, k) for k in keys}}
    write_result(
        "solvers", args, {"config": config, "rows": timing, "memory": memory, "fused": gains}
    )


if __name__ == "__main__":
    main()
