"""Full-scale fits of the seed paper's data (Appendix C, Table 2), one thread.

42560 x 50 data (the Figure 2 grid at n_grid = 320; the paper has 42453 points) for each of
the paper's three families, 2 latents, lam = 0.1. Default: ``deqfam.fitting.fit`` with its
defaults (the second-order fit, stopping on its convergence test, the default prior), timed
from the data tensor to the fitted latents; the Procrustes error of the embedding
(orthogonal basis W = QR, as in Figure 3) against the true latents, next to StandardScaler +
PCA's. The paper reports 190-294 s per dataset on a P100 GPU; issue 15's target is converged
in under 10 s on one core with an embedding better than PCA's.
``--optimizer adam --epochs 30`` runs the earlier first-order setting (Adam through the
implicit layer, batch 500, a fixed epoch count).

    python -m benchmarks.full_scale [--families gaussian,bernoulli,poisson] [--n-grid 320]

The figures are recorded in ``benchmarks/results/full_scale.json``.
"""

from __future__ import annotations

import time

import torch
from scipy.spatial import procrustes

from benchmarks.common import apply_quick, make_parser, paper_dataset, set_threads, write_result
from benchmarks.tables import full_scale_row
from deqfam.alignment import orthogonal_basis, pca_embedding
from deqfam.api import builtin_module
from deqfam.fitting import fit

FAMILIES = ("gaussian", "bernoulli", "poisson")


def one_family(
    family: str, n_grid: int, seed: int, optimizer: str, epochs: int, lr: float, backend: str
):
    """Fit one family's full-scale data set; its figures (module docstring)."""
    module = builtin_module(family)
    t = time.perf_counter()
    ds = paper_dataset(family, n_grid=n_grid, seed=seed)
    t_data = time.perf_counter() - t
    t = time.perf_counter()
    res = fit(
        ds.Y,
        module,
        2,
        lam=0.1,
        optimizer=optimizer,
        epochs=epochs,
        lr=lr,
        progress=False,
        backend=backend,
    )
    t_fit = time.perf_counter() - t
    zo, _ = orthogonal_basis(res.latents, res.model.W.detach().numpy())
    hist = res.history
    return {
        "family": family,
        "n": int(ds.Y.shape[0]),
        "d": int(ds.Y.shape[1]),
        "optimizer": optimizer,
        "backend": backend,
        "solver": res.model.last_stats.solver if res.model.last_stats is not None else None,
        "weight_decay": float(res.model.weight_decay),
        "iterations": getattr(hist, "iterations", len(hist.loss)),
        "stop_reason": hist.stop_reason,
        "threads": torch.get_num_threads(),
        "data_s": t_data,
        "fit_s": t_fit,
        "nonconverged_last": int(hist.nonconverged[-1]),
        "final_loss": float(hist.loss[-1]),
        "procrustes_deq": float(procrustes(ds.Z.numpy(), zo)[2]),
        "procrustes_pca": float(procrustes(ds.Z.numpy(), pca_embedding(ds.Y.numpy()))[2]),
    }


def main(argv: list[str] | None = None) -> None:
    # batch 500 x 50 ops gain nothing from more than one thread
    ap = make_parser(__doc__, repeats=1, threads=1)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--n-grid", type=int, default=320)
    ap.add_argument("--optimizer", choices=("newton", "adam"), default="newton")
    ap.add_argument("--epochs", type=int, default=30, help="Adam only: epochs (maximum)")
    ap.add_argument("--lr", type=float, default=1e-2, help="Adam only: learning rate")
    ap.add_argument(
        "--backend",
        choices=("auto", "torch", "fused"),
        default="auto",
        help="latent solve: fit's default 'auto' (the generated fused solver when it builds)",
    )
    args = apply_quick(ap.parse_args(argv), epochs=1, n_grid=40)
    set_threads(args.threads)
    cases = []
    for family in args.families.split(","):
        row = one_family(
            family, args.n_grid, args.seed, args.optimizer, args.epochs, args.lr, args.backend
        )
        print(full_scale_row(row), flush=True)
        cases.append(row)
    write_result("full_scale", args, {"torch": torch.__version__, "cases": cases}, argv=argv)


if __name__ == "__main__":
    main()
