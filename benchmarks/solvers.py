"""Benchmark the equilibrium solvers of ``deqfam.runtime`` on exponential-family PCA.

Setting (Appendix C of the seed paper): ``d = 50`` observed coordinates, ``l = 2`` latents,
``lam = 0.1``, batch 500; ground-truth latents on the paper's two discs and diamond, data
``Y ~ family(W_true z)`` with ``W_true_ij ~ N(0, 1/2)``. The layer is evaluated at two weight
scales: 0.01 (a training initialisation) and ``sqrt(1/2)`` (the data-generating weights).

For every family x scale x solver it prints the median time of a forward pass and of a
forward + backward pass of the outer loss (Theorem 1 (6)), the backward/forward time ratio,
the fraction of samples the solver reports converged, and ``max |Z - Z*_newton|``. torchdeq's
``anderson`` / ``broyden`` / ``fixed_point_iter`` (with its own IFT backward) are included when
``torchdeq`` is importable. A second table gives the peak extra resident memory of a
forward + backward pass against ``max_iter`` (each point in a fresh subprocess, ``ru_maxrss``)
and the bytes autograd saves for backward, contrasted with an unrolled (backprop-through-the-
iterations) fixed-point solve.

Run: ``python benchmarks/solvers.py [--repeats 7] [--threads 1] [--json out.json]``.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from deqfam.runtime.family import TorchFamily, as_torch_family
from deqfam.runtime.models import ExpFamPCA

OUR_SOLVERS = ("newton", "cg_newton", "anderson", "broyden", "fixed_point")
TORCHDEQ_SOLVERS = ("anderson", "broyden", "fixed_point_iter")
FAMILIES = ("gaussian", "bernoulli", "poisson")
SCALES = (0.01, math.sqrt(0.5))


# ------------------------------------------------------------------------------ data


def ground_truth_latents(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform points of [-5, 5]^2 inside the disc r=3 at (2, 2), the disc r=2 at (-3, -3) or
    the unit-side diamond at (4, -4) (Appendix C), by rejection."""
    out: list[np.ndarray] = []
    while sum(len(o) for o in out) < n:
        p = rng.uniform(-5, 5, size=(4 * n, 2))
        keep = (
            (np.hypot(p[:, 0] - 2, p[:, 1] - 2) <= 3)
            | (np.hypot(p[:, 0] + 3, p[:, 1] + 3) <= 2)
            | (np.abs(p[:, 0] - 4) + np.abs(p[:, 1] + 4) <= 1 / math.sqrt(2))
        )
        out.append(p[keep])
    return np.concatenate(out)[:n]


def sample_data(name: str, eta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if name == "gaussian":
        return eta + rng.standard_normal(eta.shape)
    if name == "bernoulli":
        return (rng.random(eta.shape) < 1 / (1 + np.exp(-eta))).astype(float)
    if name == "poisson":
        return rng.poisson(np.exp(eta)).astype(float)
    raise KeyError(name)


def load_family(name: str) -> TorchFamily:
    """The generated contract (``FAMILY``) of the built-in family ``name``."""
    return as_torch_family(importlib.import_module(f"deqfam.generated.{name}"))


def make_problem(name: str, scale: float, n: int, d: int, l: int, seed: int):
    """``(W, Y)``: model weights at ``scale`` (``W_true`` itself at the data-generating scale)
    and data drawn from ``W_true``."""
    rng = np.random.default_rng(seed)
    w_true = rng.normal(0.0, math.sqrt(0.5), size=(d, l))
    z = ground_truth_latents(n, rng)
    y = sample_data(name, z @ w_true.T, rng)
    if math.isclose(scale, math.sqrt(0.5)):
        w = w_true
    else:
        w = rng.normal(0.0, scale, size=(d, l))
    return torch.tensor(w), torch.tensor(y)


# ------------------------------------------------------------------------------ runners


def our_model(family, w, solver, lam, max_iter, tol, **extra) -> ExpFamPCA:
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


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up (allocations, lazy init)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
        w, y = make_problem(name, scale, args.batch, args.d, args.l, args.seed)
        ref_model = our_model(family, w, "newton", args.lam, 100, 1e-12)
        with torch.no_grad():
            reference = ref_model(y)
        runners = {
            f"ours/{s}": our_model(family, w, s, args.lam, args.max_iter, args.tol)
            for s in OUR_SOLVERS
        }
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
    w, y = make_problem(args.family_probe, math.sqrt(0.5), args.batch, args.d, args.l, 0)
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
            __file__,
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
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append({"solver": solver, "max_iter": max_iter, **json.loads(out.splitlines()[-1])})
    return rows


# ------------------------------------------------------------------------------ output


def print_tables(timing, memory, args) -> None:
    print(
        f"\n## Solvers: d={args.d}, l={args.l}, batch={args.batch}, lam={args.lam}, "
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
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", nargs="+", default=list(FAMILIES))
    p.add_argument("--scales", nargs="+", type=float, default=list(SCALES))
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--d", type=int, default=50)
    p.add_argument("--l", type=int, default=2)
    p.add_argument("--lam", type=float, default=0.1)
    p.add_argument("--tol", type=float, default=1e-8)
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-max-iter", nargs="+", type=int, default=[10, 100, 400])
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--json", type=Path)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--family-probe", help=argparse.SUPPRESS)
    p.add_argument("--solver-probe", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.probe:
        print(json.dumps(memory_probe(args)))
        return
    timing = timing_table(args)
    memory = [] if args.no_memory else memory_table(args)
    print_tables(timing, memory, args)
    if args.json:
        args.json.write_text(json.dumps({"timing": timing, "memory": memory}, indent=1))


if __name__ == "__main__":
    main()
