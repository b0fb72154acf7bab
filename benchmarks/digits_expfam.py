"""ExpFamPCA (binomial(16), Poisson) against glmpca and PCA on scikit-learn's digits.

Data: the 1797 digits (8 x 8 pixels, each a count 0..16), split once into 1437 training and
360 held-out rows (``train_test_split``, stratified by digit, ``random_state=--seed``);
columns constant on the training rows (always-blank pixels) are dropped for every method.
Latent dimensions 2 and 10. One thread. Per method and latent dimension:

* fit time (median over ``--repeats`` fits on the training rows, in process);
* held-out deviance per image, at the MAP latents of the held-out rows under the fitted
  loadings and offsets: binomial(16) ``2 sum[y log(y/mu) + (n-y) log((n-y)/(n-mu))]``,
  Poisson ``2 sum[y log(y/mu) - (y - mu)]``; PCA has no exponential-family likelihood, so
  its column is the held-out squared reconstruction error per image (the Gaussian deviance
  at unit variance), not comparable with the others;
* 5-fold (stratified, seeded) cross-validated accuracy of a logistic regression of the digit
  label on the latents of all 1797 rows (each row's latent under the training fit;
  standardised, ``LogisticRegression(max_iter=2000)``).

Methods: ``deqfam.ExponentialFamilyPCA`` (defaults of ``deqfam fit``: second-order fit,
lam 0.1, weight decay 500) with ``family="binomial"`` (n = 16) and ``"poisson"``; glmpca
0.1.0 (Townes et al.) with ``fam="poi"``, ``sz = 1`` (no size factor: the same model as
deqfam's Poisson), its default penalty 1, run in a subprocess (``benchmarks.glmpca_compare``),
its held-out latents by deqfam's Newton solve at prior precision 1 (glmpca's penalty);
glmpca 0.1.0 has no binomial with a fixed n (its ``mult`` family takes each row's total as
n); scikit-learn's PCA.

    python -m benchmarks.digits_expfam            # appends results/digits_expfam.json
    python -m benchmarks.digits_expfam --quick    # l = 2 only, no glmpca
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import apply_quick, make_parser, set_threads, write_result

N_TRIALS = 16  # a digits pixel is a count out of 16


def digits_split(seed: int) -> dict[str, np.ndarray]:
    """Train / held-out pixel counts and labels, and all rows (constant columns dropped)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x, y = data.data.astype(np.float64), data.target
    train, test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=seed, stratify=y)
    keep = x[train].std(0) > 0
    x = x[:, keep]
    return {"x": x, "y": y, "train": x[train], "test": x[test]}


def _xlogx_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a log(a / b)`` with ``0 log 0 = 0``."""
    safe = np.where(a > 0, a, 1.0)
    return np.where(a > 0, a * np.log(safe / b), 0.0)


def deviance(family: str, y: np.ndarray, mu: np.ndarray) -> float:
    """Deviance per image of counts ``y`` at means ``mu`` (module docstring)."""
    if family == "binomial":
        n = N_TRIALS
        dev = _xlogx_ratio(y, mu) + _xlogx_ratio(n - y, n - mu)
    elif family == "poisson":
        dev = _xlogx_ratio(y, mu) - (y - mu)
    else:
        raise ValueError(f"no deviance for {family!r}")
    return float(2 * dev.sum() / y.shape[0])


def cv_accuracy(latents: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """Mean 5-fold accuracy of a standardised logistic regression of labels on latents."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, latents, labels, cv=folds).mean())


def timed_fits(make: Any, train: np.ndarray, repeats: int) -> tuple[Any, float]:
    """The last of ``repeats`` fits of ``make()`` on ``train`` and their median time."""
    seconds = []
    for _ in range(repeats):
        est = make()
        t = time.perf_counter()
        est.fit(train)
        seconds.append(time.perf_counter() - t)
    return est, statistics.median(seconds)


def deqfam_case(family: str, l: int, data: dict, repeats: int, seed: int) -> dict:
    from deqfam import ExponentialFamilyPCA

    est, seconds = timed_fits(lambda: ExponentialFamilyPCA(family, l), data["train"], repeats)
    z_test = est.transform(data["test"])
    return {
        "method": f"deqfam {family}",
        "seconds": seconds,
        "iterations": est.n_iter_,
        "stop_reason": est.stop_reason_,
        "heldout_deviance": deviance(family, data["test"], est.inverse_transform(z_test)),
        "cv_accuracy": cv_accuracy(est.transform(data["x"]), data["y"], seed),
    }


def glmpca_case(l: int, data: dict, repeats: int, seed: int, tmp: Path) -> dict:
    """glmpca Poisson: fitted in a subprocess; latents of all rows by deqfam's Newton solve
    under its loadings and offsets at prior precision 1 (its penalty)."""
    from benchmarks.glmpca_compare import run_glmpca_process
    from deqfam.api import torch_family
    from deqfam.runtime.solvers import newton

    path = tmp / "train.npy"
    np.save(path, data["train"])
    inner = []
    for r in range(repeats):
        _, info, glm = run_glmpca_process("poisson", path, l, seed + r, tmp / "glm.npz")
        inner.append(info["seconds"])
    fam = torch_family("poisson")
    W, B = (torch.as_tensor(glm[k], dtype=torch.float64) for k in ("W", "B"))

    def latents(x: np.ndarray) -> np.ndarray:
        Y = torch.as_tensor(x)
        return newton(fam, W, B, fam.sufficient_statistic(Y), 1.0).value.numpy()

    z_test = latents(data["test"])
    mu = np.exp(z_test @ W.numpy().T + B.numpy())
    return {
        "method": "glmpca poisson",
        "seconds": statistics.median(inner),
        "iterations": info["iterations"],
        "stop_reason": None,
        "heldout_deviance": deviance("poisson", data["test"], mu),
        "cv_accuracy": cv_accuracy(latents(data["x"]), data["y"], seed),
    }


def pca_case(l: int, data: dict, repeats: int, seed: int) -> dict:
    from sklearn.decomposition import PCA

    est, seconds = timed_fits(lambda: PCA(l, random_state=seed), data["train"], repeats)
    recon = est.inverse_transform(est.transform(data["test"]))
    return {
        "method": "PCA",
        "seconds": seconds,
        "iterations": None,
        "stop_reason": None,
        "heldout_deviance": None,
        "heldout_squared_error": float(((data["test"] - recon) ** 2).sum() / recon.shape[0]),
        "cv_accuracy": cv_accuracy(est.transform(data["x"]), data["y"], seed),
    }


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__, repeats=1)
    args = apply_quick(parser.parse_args(argv), repeats=1)
    set_threads(args.threads)
    data = digits_split(args.seed)
    dims = (2,) if args.quick else (2, 10)
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for l in dims:
            rows = [
                deqfam_case(f, l, data, args.repeats, args.seed) for f in ("binomial", "poisson")
            ]
            if not args.quick:
                rows.append(glmpca_case(l, data, args.repeats, args.seed, Path(tmp)))
            rows.append(pca_case(l, data, args.repeats, args.seed))
            for row in rows:
                row["latent_dim"] = l
                print(json.dumps(row))
            cases.extend(rows)
    figures = {
        "shape": {"train": list(data["train"].shape), "test": list(data["test"].shape)},
        "cases": cases,
    }
    write_result("digits_expfam", args, figures, argv=argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
