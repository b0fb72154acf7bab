"""How `deqfam fit`'s training defaults were chosen (issue 17, item 13).

For each of the paper's three families (Gaussian, Bernoulli, Poisson; data as in
Appendix C: W_ij ~ N(0, 1/2), Y ~ family(W Z) on the Figure 2 latents) and each training
setting, fit ExpFamPCA with `deqfam.fitting.fit` (2 latents, lam 0.1, batch 500, one
thread) and print: epochs run, why it stopped, wall time, the final epoch loss and the
Procrustes error of the embedding (orthogonal basis W = QR, as in Figure 3) next to
StandardScaler + PCA's. A setting is `lr:tol:max_decays:init_bias:max_epochs`
(`tol = 0`: fixed epoch count; `init_bias` 1 = B at the link of the column means).

    python -m benchmarks.default_training --n-grid 100 \
        --settings 1e-2:0:0:0:30 1e-3:0:0:0:30 default
"""

from __future__ import annotations

import importlib
import time

from scipy.spatial import procrustes

from benchmarks.common import apply_quick, make_parser, set_threads, write_result
from deqfam import fitting
from deqfam.alignment import orthogonal_basis, pca_embedding
from deqfam.fitting import fit
from deqfam.runtime.datasets import make_dataset

FAMILIES = ("gaussian", "bernoulli", "poisson")


def parse_setting(text: str) -> dict:
    """``lr:tol:max_decays:init_bias:max_epochs`` or ``default`` (fit's defaults)."""
    if text == "default":
        return {}
    lr, tol, decays, init_bias, epochs = text.split(":")
    return {
        "lr": float(lr),
        "tol": float(tol),
        "max_decays": int(decays),
        "init_bias": bool(int(init_bias)),
        "epochs": int(epochs),
    }


def run(family: str, ds, setting: dict, seed: int) -> str:
    """One fit; a line with epochs, stop reason, time, loss and Procrustes errors."""
    module = importlib.import_module(f"deqfam.generated.{family}")
    t = time.perf_counter()
    res = fit(ds.Y, module, 2, lam=0.1, batch_size=500, seed=seed, progress=False, **setting)
    seconds = time.perf_counter() - t
    z, _ = orthogonal_basis(res.latents, res.model.W.detach().numpy())
    deq = procrustes(ds.Z.numpy(), z)[2]
    h = res.history
    return (
        f"epochs {len(h.loss):4d}  stop {h.stop_reason:10s}  {seconds:7.1f} s  "
        f"loss {h.loss[-1]:.6g}  Procrustes DEQ {deq:.4f}"
    )


def main(argv: list[str] | None = None) -> None:
    ap = make_parser(__doc__)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--n-grid", type=int, default=100)
    ap.add_argument("--settings", nargs="+", default=["default"])
    args = apply_quick(ap.parse_args(argv), n_grid=10, families="bernoulli")
    set_threads(args.threads)
    print(
        f"defaults: lr {fitting.DEFAULT_LR}, tol {fitting.DEFAULT_TOL}, window "
        f"{fitting.DEFAULT_WINDOW}, lr decay {fitting.DEFAULT_LR_DECAY} x "
        f"{fitting.DEFAULT_MAX_DECAYS}, max epochs {fitting.DEFAULT_MAX_EPOCHS}; "
        f"n_grid {args.n_grid}, {args.threads} thread(s)",
        flush=True,
    )
    rows = []
    for family in args.families.split(","):
        module = importlib.import_module(f"deqfam.generated.{family}")
        ds = make_dataset(module, n_grid=args.n_grid, seed=args.seed)
        pca = procrustes(ds.Z.numpy(), pca_embedding(ds.Y.numpy()))[2]
        print(f"{family}: {ds.Y.shape[0]} x {ds.Y.shape[1]}, PCA Procrustes {pca:.4f}", flush=True)
        for text in args.settings:
            line = run(family, ds, parse_setting(text), args.seed)
            print(f"  {text:22s} {line}", flush=True)
            rows.append({"family": family, "setting": text, "pca": pca, "result": line})
    write_result("default_training", args, rows, argv=argv)


if __name__ == "__main__":
    main()
