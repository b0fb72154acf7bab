"""How the default prior (weight decay ``w`` on W and B) trades training deviance against
embedding quality (issue 15): one second-order ``deqfam.fitting.fit`` per weight decay, one
thread, lam = 0.1.

* ``--data digits``: scikit-learn digits as in ``benchmarks.glmpca_compare`` (1500 training
  rows, 297 held out; Poisson counts and binarised Bernoulli pixels), 10 latents: training
  and held-out deviance per image (``glmpca_compare.deviance``; held out at the MAP latents
  under the fitted loadings, and the held-out half of each row's pixels predicted from the
  other half, ``glmpca_compare.heldout_half_deviance``), iterations and time. The issue's
  target is glmpca's training deviance within 2%.
* ``--data paper``: the paper's three data sets (Appendix C) at ``--n-grid``, 2 latents, a
  seeded tenth of the rows held out: the Procrustes error of the embedding of the fitted rows
  (orthogonal basis W = QR) next to StandardScaler + PCA's, and the held-out half deviance
  (Gaussian: ``2 sum[A(eta) - y eta] = sum (y - eta)^2 - sum y^2``, the squared error less
  a constant of the data, so it can be negative and only differences between priors count).

    python -m benchmarks.prior_sweep --data digits --weight-decays 1,3,10,100,500
    python -m benchmarks.prior_sweep --data paper --n-grid 320 --families bernoulli \
        --weight-decays 3,10,500
    python -m benchmarks.prior_sweep --data digits --weight-decays auto   # fit's "auto" prior
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy.spatial import procrustes

from benchmarks.common import (
    RESULTS_DIR,
    apply_quick,
    make_parser,
    paper_dataset,
    set_threads,
    write_result,
)
from benchmarks.glmpca_compare import deviance, digits, heldout_deviance, heldout_half_deviance
from deqfam.alignment import orthogonal_basis, pca_embedding
from deqfam.fitting import fit


def digits_row(family: str, w: float | str) -> dict:
    """One digits fit at weight decay ``w`` (module docstring)."""
    train, test = digits(family)
    t = time.perf_counter()
    res = fit(torch.as_tensor(train), family, 10, weight_decay=w, progress=False)
    seconds = time.perf_counter() - t
    W, B = res.model.W.detach().numpy(), res.model.B.detach().numpy()
    return {
        "data": f"digits {train.shape[0]}x{train.shape[1]}, l=10",
        "family": family,
        **_prior(res, w),
        "seconds": seconds,
        "iterations": res.history.iterations,
        "stop_reason": res.history.stop_reason,
        "train_deviance": deviance(family, train, res.latents @ W.T + B),
        "heldout_deviance": heldout_deviance(family, test, W, B, 0.1),
        "heldout_half_deviance": heldout_half_deviance(family, test, W, B, 0.1),
    }


def _prior(res, requested: float | str) -> dict:
    """The weight decay a fit ran at; for ``auto`` also what it tried and chose."""
    if requested != "auto":
        return {"weight_decay": requested}
    return {"weight_decay": res.model.weight_decay, "requested": "auto", **res.prior_choice}


def paper_rows(family: str, n_grid: int, seed: int, weights: list[float | str]) -> list[dict]:
    """Fits of one paper data set at each weight decay (module docstring): a seeded tenth of
    the rows is held out for the held-out half deviance, the rest are fitted and aligned."""
    ds = paper_dataset(family, n_grid=n_grid, seed=seed)
    y, truth = ds.Y.numpy(), ds.Z.numpy()
    order = np.random.default_rng(seed + 1).permutation(y.shape[0])
    test, fitted = order[: y.shape[0] // 10], order[y.shape[0] // 10 :]
    y, truth, test = y[fitted], truth[fitted], y[test]
    pca = float(procrustes(truth, pca_embedding(y))[2])
    rows = []
    for w in weights:
        t = time.perf_counter()
        res = fit(torch.as_tensor(y), family, 2, weight_decay=w, progress=False)
        seconds = time.perf_counter() - t
        W, B = res.model.W.detach().numpy(), res.model.B.detach().numpy()
        z, _ = orthogonal_basis(res.latents, W)
        rows.append(
            {
                "data": f"paper {y.shape[0]}x{y.shape[1]}, l=2",
                "family": family,
                **_prior(res, w),
                "seconds": seconds,
                "iterations": res.history.iterations,
                "stop_reason": res.history.stop_reason,
                "procrustes_deq": float(procrustes(truth, z)[2]),
                "procrustes_pca": pca,
                "heldout_half_deviance": heldout_half_deviance(family, test, W, B, 0.1),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = make_parser(__doc__, repeats=1, threads=1)
    ap.add_argument("--data", choices=("digits", "paper"), default="digits")
    ap.add_argument(
        "--families",
        default=None,
        help="default: poisson,bernoulli (digits), gaussian,bernoulli,poisson (paper)",
    )
    ap.add_argument("--n-grid", type=int, default=100)
    ap.add_argument("--weight-decays", default="1,3,10,100,500")
    args = apply_quick(ap.parse_args(argv), n_grid=20, weight_decays="1,500")
    set_threads(args.threads)
    weights = [v if v == "auto" else float(v) for v in args.weight_decays.split(",")]
    default = "poisson,bernoulli" if args.data == "digits" else "gaussian,bernoulli,poisson"
    rows: list[dict] = []
    for family in (args.families or default).split(","):
        if args.data == "digits":
            new = [digits_row(family, w) for w in weights]
        else:
            new = paper_rows(family, args.n_grid, args.seed, weights)
        for row in new:
            print(
                {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True
            )
        rows += new
    if args.json_out is None:  # one records file (and BENCHMARKS.md table) per --data
        args.json_out = RESULTS_DIR / f"prior_sweep_{args.data}.json"
    write_result("prior_sweep", args, {"rows": rows}, argv=argv)


if __name__ == "__main__":
    main()
