"""Benchmark the deep (stacked) exponential-family PCA DEQ against the single-layer model.

Data: the paper's synthetic set (seed ``scoring-deq-expfam-pca``, Appendix C) from
``deqfam.runtime.datasets.make_dataset(deqfam.generated.poisson, n_grid=...)``: ``d_0 = 50``
Poisson counts with canonical parameters ``W_true z`` for the 2-D latents of Figure 2.

Models: ``ExpFamPCA`` (``[50, 2]``, Theorem 1) and ``DeepExpFamPCA`` with widths
``[50, 10, 2]`` (Poisson data layer, Gaussian latent layer ``z_1 | z_2``, prior on ``z_2``), both
with ``lam = 0.1`` and Newton (Cholesky / block-tridiagonal Cholesky) with Armijo line search.

Every model is measured in the states

* ``init``: the training initialisation (``init_scale = 0.01``);
* ``trained``: after ``--epochs`` epochs of Adam on the model's MAP loss (batch 500);
* ``true W`` (single layer only): the data-generating ``W_true``, ``B_true``;

and for each state the script prints, over all batches of ``--batch-size``: the fraction of
samples converged, mean / max Newton iterations, samples that met negative curvature, and the
median time of a forward pass and of a forward + backward pass of the loss (``--repeats``
timings of the first batch).

Run: ``python -m benchmarks.deep_stack [--n-grid 100] [--epochs 3] [--threads 2]``.
Figures are printed and recorded in ``benchmarks/results/deep_stack.json``, never asserted.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from tqdm import tqdm

import deqfam
from benchmarks.common import apply_quick, make_parser, paper_dataset, set_threads, write_result
from deqfam.runtime.deep import DeepExpFamPCA, train_deep
from deqfam.runtime.train import train


def _stats_of(model: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(converged, iterations, negative-curvature flags) of the model's last forward."""
    stats = model.last_stats
    if isinstance(model, DeepExpFamPCA):
        return stats.converged, stats.iterations, stats.negative_curvature > 0
    return stats.converged, stats.iterations, torch.zeros_like(stats.converged)


def measure(model: Any, Y: torch.Tensor, batch_size: int, repeats: int) -> dict[str, Any]:
    """Convergence over all batches and median per-batch timings on the first batch."""
    conv, iters, neg = [], [], []
    with torch.no_grad():
        for start in range(0, Y.shape[0], batch_size):
            model(Y[start : start + batch_size])
            c, i, n = _stats_of(model)
            conv.append(c)
            iters.append(i)
            neg.append(n)
    conv_t, iters_t, neg_t = torch.cat(conv), torch.cat(iters), torch.cat(neg)
    batch = Y[:batch_size]
    fwd, fwd_bwd = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with torch.no_grad():
            model(batch)
        fwd.append(time.perf_counter() - t0)
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        model.loss(batch, n_total=Y.shape[0]).backward()
        fwd_bwd.append(time.perf_counter() - t0)
    return {
        "samples": int(conv_t.numel()),
        "convergence_rate": float(conv_t.double().mean()),
        "mean_iterations": float(iters_t.double().mean()),
        "max_iterations": int(iters_t.max()),
        "negative_curvature_samples": int(neg_t.sum()),
        "forward_ms": 1e3 * statistics.median(fwd),
        "forward_backward_ms": 1e3 * statistics.median(fwd_bwd),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = make_parser(__doc__, repeats=5, threads=0)
    parser.add_argument("--n-grid", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--lam", type=float, default=0.1)
    args = apply_quick(parser.parse_args(argv), n_grid=30, epochs=1, repeats=1)
    set_threads(args.threads)
    torch.set_default_dtype(torch.float64)
    ds = paper_dataset("poisson", n_grid=args.n_grid, seed=args.seed)
    Y = ds.Y
    print(
        f"data: Poisson, N = {Y.shape[0]}, d = {Y.shape[1]}, max count {int(Y.max())}, "
        f"batch {args.batch_size}, lam {args.lam}, torch threads {torch.get_num_threads()}"
    )
    opts = {"on_nonconvergence": "ignore", "init_scale": 0.01}
    gen = torch.Generator().manual_seed(args.seed)
    single = deqfam.ExpFamPCA("poisson", 50, 2, lam=args.lam, generator=gen, **opts)
    deep = deqfam.DeepExpFamPCA(
        ["poisson", "gaussian"], [50, 10, 2], args.lam, generator=gen, **opts
    )
    train_cfg = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr}
    rows: list[dict[str, Any]] = []
    states = [("single [50, 2]", single, "init"), ("deep [50, 10, 2]", deep, "init")]
    for name, model, state in tqdm(states, desc="init", leave=False):
        rows.append(
            {"model": name, "state": state, **measure(model, Y, args.batch_size, args.repeats)}
        )
    t0 = time.perf_counter()
    hist_single = train(single, Y, {**train_cfg, "progress": True})
    t_single = time.perf_counter() - t0
    t0 = time.perf_counter()
    hist_deep = train_deep(deep, Y, {**train_cfg, "progress": True})
    t_deep = time.perf_counter() - t0
    trained = f"trained {args.epochs} ep"
    for name, model in (("single [50, 2]", single), ("deep [50, 10, 2]", deep)):
        rows.append(
            {"model": name, "state": trained, **measure(model, Y, args.batch_size, args.repeats)}
        )
    with torch.no_grad():
        single.W.copy_(ds.W)
        single.B.copy_(ds.B)
    rows.append(
        {
            "model": "single [50, 2]",
            "state": "true W",
            **measure(single, Y, args.batch_size, args.repeats),
        }
    )
    header = (
        f"{'model':<18} {'state':<16} {'conv. rate':>10} {'mean it':>8} {'max it':>7} "
        f"{'neg. curv':>9} {'fwd ms':>8} {'fwd+bwd ms':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['model']:<18} {r['state']:<16} {r['convergence_rate']:>10.4f} "
            f"{r['mean_iterations']:>8.2f} {r['max_iterations']:>7d} "
            f"{r['negative_curvature_samples']:>9d} {r['forward_ms']:>8.1f} "
            f"{r['forward_backward_ms']:>10.1f}"
        )
    print(
        f"training: single {t_single:.1f} s (loss {hist_single.loss[0]:.4g} -> "
        f"{hist_single.loss[-1]:.4g}), deep {t_deep:.1f} s (loss {hist_deep.loss[0]:.4g} -> "
        f"{hist_deep.loss[-1]:.4g}); non-converged samples per epoch: single "
        f"{hist_single.nonconverged}, deep {hist_deep.nonconverged}"
    )
    result = {
        "args": {k: v for k, v in vars(args).items() if k != "json_out"},
        "rows": rows,
        "training": {
            "single": {"seconds": t_single, **hist_single.to_dict()},
            "deep": {"seconds": t_deep, **hist_deep.to_dict()},
        },
    }
    write_result("deep_stack", args, result)
    return result


if __name__ == "__main__":
    main()
