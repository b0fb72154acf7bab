"""pcDEQ vs an unconstrained DEQ vs an explicit MLP on sklearn's digits (8x8, 10 classes).

Models (hidden width ``n``, the same linear readout ``n -> 10``, cross-entropy, Adam):

* ``pcdeq``: ``z* = tanh(W z* + softplus(U u + c) + 0.01)``, ``W = softplus(V) >= 0``
  (``deqfam.PositiveConcaveDEQ``), plain forward iteration, IFT backward by plain adjoint
  iteration, both to tol 1e-10 (``max_iter`` 500);
* ``deq``: ``z* = tanh(W z* + U u + c)`` with ``W`` unconstrained (init ``N(0, 0.5^2/n)``),
  the same solvers and tolerances (``runtime.implicit.implicit_fixed_point``);
* ``mlp``: ``tanh(U u + c)`` (one explicit hidden layer).

Reported per model (mean +- std over seeds): test accuracy, mean forward / backward
iterations per solve over training, the number of forward / backward solves in which some
sample did not converge ("failures"), wall time; for the pcDEQ also the certificate
(``deqfam.certificates.certify``) of the trained layer on the test set.

Run: ``python -m benchmarks.pcdeq_digits [--seeds 3] [--epochs 30] [--width 64]
[--checkpoint FILE]``; with ``--checkpoint`` finished (model, seed) runs are stored and
skipped on restart. Figures are printed and recorded in
``benchmarks/results/pcdeq_digits.json``, never asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor, nn
from tqdm import tqdm

from benchmarks.common import apply_quick, make_parser, set_threads, write_result
from deqfam import certificates
from deqfam.runtime.implicit import implicit_fixed_point
from deqfam.runtime.pcdeq import PositiveConcaveDEQ
from deqfam.runtime.solvers import ConvergenceWarning

F64 = torch.float64
SOLVER = {"tol": 1e-10, "max_iter": 500}


class Counter:
    """Accumulates solver statistics over training."""

    def __init__(self) -> None:
        self.fwd_iters: list[float] = []
        self.bwd_iters: list[float] = []
        self.fwd_fail = 0
        self.bwd_fail = 0

    def add(self, result: Any) -> None:
        if result is None:
            return
        self.fwd_iters.append(float(result.stats.iterations.double().mean()))
        self.fwd_fail += int(not result.stats.all_converged)
        for b in result.backward_stats:
            self.bwd_iters.append(float(b.iterations.double().mean()))
            self.bwd_fail += int(not b.all_converged)


class PCDEQNet(nn.Module):
    def __init__(self, width: int, generator: torch.Generator) -> None:
        super().__init__()
        self.layer = PositiveConcaveDEQ(
            width,
            "tanh",
            in_features=64,
            solver_options=SOLVER,
            on_nonconvergence="ignore",
            generator=generator,
            dtype=F64,
        )
        self.readout = nn.Linear(width, 10, dtype=F64)
        self.last = None

    def forward(self, u: Tensor) -> Tensor:
        z = self.layer(u)
        self.last = self.layer.last_result
        return self.readout(z)


class FreeDEQNet(nn.Module):
    def __init__(self, width: int, generator: torch.Generator) -> None:
        super().__init__()
        self.W = nn.Parameter(
            0.5 * torch.randn(width, width, generator=generator, dtype=F64) / math.sqrt(width)
        )
        self.inp = nn.Linear(64, width, dtype=F64)
        self.readout = nn.Linear(width, 10, dtype=F64)
        self.width = width
        self.last = None

    def forward(self, u: Tensor) -> Tensor:
        x = self.inp(u)
        W = self.W
        result = implicit_fixed_point(
            lambda z: torch.tanh(z @ W.T + x),
            torch.zeros(u.shape[0], self.width, dtype=F64),
            solver="fixed_point",
            config=SOLVER,
            backward_solver="fixed_point",
            on_backward_nonconvergence="ignore",
        )
        self.last = result
        return self.readout(result.z)


class MLP(nn.Module):
    def __init__(self, width: int, generator: torch.Generator) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, width, dtype=F64), nn.Tanh(), nn.Linear(width, 10, dtype=F64)
        )
        self.last = None

    def forward(self, u: Tensor) -> Tensor:
        return self.net(u)


MODELS = {"pcdeq": PCDEQNet, "deq": FreeDEQNet, "mlp": MLP}


def run(model_name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.3, random_state=seed, stratify=y)
    Xtr, Xte = torch.tensor(Xtr, dtype=F64), torch.tensor(Xte, dtype=F64)
    ytr, yte = torch.tensor(ytr), torch.tensor(yte)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = MODELS[model_name](args.width, g)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    counter = Counter()
    t0 = time.perf_counter()
    n = Xtr.shape[0]
    for _ in range(args.epochs):
        perm = torch.randperm(n, generator=g)
        for start in range(0, n, args.batch):
            idx = perm[start : start + args.batch]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(Xtr[idx]), ytr[idx])
            loss.backward()
            counter.add(model.last)
            opt.step()
    train_time = time.perf_counter() - t0
    with torch.no_grad():
        acc = float((model(Xte).argmax(1) == yte).double().mean())
    out: dict[str, Any] = {
        "model": model_name,
        "seed": seed,
        "test_accuracy": acc,
        "train_time_s": train_time,
        "forward_iterations": statistics.fmean(counter.fwd_iters) if counter.fwd_iters else 0,
        "backward_iterations": statistics.fmean(counter.bwd_iters) if counter.bwd_iters else 0,
        "forward_failures": counter.fwd_fail,
        "backward_failures": counter.bwd_fail,
        "solves": len(counter.fwd_iters),
    }
    if model_name == "pcdeq":
        cert = certificates.certify(model.layer, Xte)
        out["certified"] = cert.certified
        out["adjoint_bound"] = float(cert.adjoint_bound.max())
        out["observed_ratio"] = cert.observed_ratio
        out["rho_W"] = cert.spectral_radius_W
    if model_name == "deq":
        out["rho_W"] = float(torch.linalg.eigvals(model.W.detach()).abs().max())
    return out


def mean_sd(values: list[float]) -> list[float]:
    """``[mean, sample sd]`` (sd 0 for a single value)."""
    return [statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0]


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model, over seeds: accuracy and failures as ``[mean, sd]``, mean iterations
    (``None`` for the explicit MLP, which solves nothing)."""
    out = []
    for model in MODELS:
        sel = [r for r in rows if r["model"] == model]
        if not sel:
            continue
        solves = any(r["solves"] for r in sel)  # the MLP solves nothing

        def col(key: str, sel=sel) -> list[float]:
            return [float(r[key]) for r in sel]

        def mean(key: str, solves=solves) -> float | None:
            return statistics.fmean(col(key)) if solves else None

        def spread(key: str, solves=solves) -> list[float] | None:
            return mean_sd(col(key)) if solves else None

        out.append(
            {
                "model": model,
                "test_accuracy": mean_sd(col("test_accuracy")),
                "forward_iterations": mean("forward_iterations"),
                "backward_iterations": mean("backward_iterations"),
                "forward_failures": spread("forward_failures"),
                "backward_failures": spread("backward_failures"),
            }
        )
    return out


def summarise(rows: list[dict[str, Any]]) -> None:
    keys = [
        ("test_accuracy", "acc", "{:.4f}"),
        ("forward_iterations", "fwd it", "{:.1f}"),
        ("backward_iterations", "bwd it", "{:.1f}"),
        ("forward_failures", "fwd fail", "{:.1f}"),
        ("backward_failures", "bwd fail", "{:.1f}"),
        ("train_time_s", "time s", "{:.1f}"),
    ]
    header = f"{'model':7s} " + " ".join(f"{k[1]:>18s}" for k in keys)
    print(header)
    for model in MODELS:
        sel = [r for r in rows if r["model"] == model]
        if not sel:
            continue
        cells = []
        for key, _, fmt in keys:
            mean, sd = mean_sd([float(r[key]) for r in sel])
            cells.append(f"{fmt.format(mean)} +- {fmt.format(sd)}")
        print(f"{model:7s} " + " ".join(f"{c:>18s}" for c in cells))
    extra = [r for r in rows if r["model"] in ("pcdeq", "deq")]
    for r in extra:
        info = f"  {r['model']} seed {r['seed']}: rho(W) = {r['rho_W']:.3f}"
        if r["model"] == "pcdeq":
            info += (
                f", certified = {r['certified']}, adjoint bound {r['adjoint_bound']:.3f}, "
                f"observed ratio {r['observed_ratio']:.3f}"
            )
        print(info)


def main(argv: list[str] | None = None) -> None:
    ap = make_parser(__doc__, repeats=1, threads=0)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--checkpoint", type=Path, default=None)
    args = apply_quick(ap.parse_args(argv), seeds=1, epochs=1, width=8)
    set_threads(args.threads)
    warnings.simplefilter("ignore", ConvergenceWarning)
    rows: list[dict[str, Any]] = []
    if args.checkpoint is not None and args.checkpoint.exists():
        rows = json.loads(args.checkpoint.read_text())
    done = {(r["model"], r["seed"]) for r in rows}
    todo = [(m, s) for s in range(args.seeds) for m in MODELS if (m, s) not in done]
    for model, seed in tqdm(todo, desc="runs"):
        rows.append(run(model, seed, args))
        if args.checkpoint is not None:
            args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
            args.checkpoint.write_text(json.dumps(rows, indent=1))
    print(
        f"digits: {args.seeds} seeds, {args.epochs} epochs, width {args.width}, batch "
        f"{args.batch}, Adam lr {args.lr}"
    )
    summarise(rows)
    config = {k: getattr(args, k) for k in ("seeds", "epochs", "width", "batch", "lr")}
    write_result("pcdeq_digits", args, {"config": config, "summary": summary(rows), "runs": rows})


if __name__ == "__main__":
    main()
