"""Kernel logistic regression = a kernel-initialised DEQ (Appendix G, Theorem 3), on digits.

Setting (Appendix G, scaled from MNIST 28x28 to sklearn's bundled 8x8 ``load_digits``): each
image is binarised (pixel ``>= threshold``, default 8 of 16), 30% of its bits are flipped
independently, and the noisy image ``Y_s`` is the dataset of one kernel logistic regression on
the 64 pixel coordinates ``X`` (predicting at ``X~ = X``). Kernel: squared exponential with
lengthscale 1 plus white noise 1e-8 (Assumption 1); ``lam = 2 |K|_2`` (Assumption 2:
``|K/lam| sup A'' = 1/2 * 1/4``).

* KLR: ``kglm_newton`` (tests/oracles/klr.py; Newton/IRLS on ``alpha``, numpy), one image at a time.
* DEQ-kernel: ``KGLMDEQ("bernoulli")`` with ``kglm_init(K, K, lam)``, all images in one batch.

Printed: the largest difference of posterior probabilities ``sigma(f)``, the number of images
whose binarised prediction ``1{sigma(f) > 0.5}`` differs between the two, and for each such
pixel whether it is a tie (both probabilities within ``--tie-tol`` of 0.5), plus the pixel error
of the KLR/DEQ prediction against the clean binarised image. ``--dtype float32`` runs the DEQ in
single precision (as the paper's MNIST run), where ties at 0.5 can appear. Figures are printed,
not asserted.

Run: ``python -m benchmarks.kglm_digits [--n-images 1797] [--seed 0]``; the figures are recorded
in ``benchmarks/results/kglm_digits.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from scipy.special import expit
from sklearn.datasets import load_digits
from tqdm import tqdm

from benchmarks.common import apply_quick, make_parser, set_threads, write_result
from deqfam.api import torch_family
from deqfam.runtime.kernels import (
    SquaredExponential,
    WhiteNoise,
    check_contraction,
    kglm_init,
    spectral_norm,
)
from deqfam.runtime.kglm import KGLMDEQ


def _load_klr_oracle():
    """The numpy KLR Newton, a test oracle (tests/oracles/klr.py) that is also this
    benchmark's KLR baseline, loaded from its file: a top-level ``tests`` package that some
    installed distributions ship would shadow ``tests.oracles``."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / "tests" / "oracles" / "klr.py"
    spec = importlib.util.spec_from_file_location("deqfam_bench_klr_oracle", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.kglm_newton


kglm_newton = _load_klr_oracle()


def noisy_digits(
    n_images: int | None, threshold: float, flip: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(clean, noisy)`` binary images of shape ``(N, 64)``; each bit flipped w.p. ``flip``."""
    images = load_digits().images.reshape(-1, 64)
    if n_images is not None:
        images = images[:n_images]
    clean = (images >= threshold).astype(np.float64)
    rng = np.random.default_rng(seed)
    flips = rng.random(clean.shape) < flip
    return clean, np.where(flips, 1.0 - clean, clean)


def main(argv: list[str] | None = None) -> None:
    parser = make_parser(__doc__, repeats=1, threads=0)
    parser.add_argument("--n-images", type=int, default=None, help="default: all 1797")
    parser.add_argument("--threshold", type=float, default=8.0)
    parser.add_argument("--flip", type=float, default=0.3)
    parser.add_argument("--lengthscale", type=float, default=1.0)
    parser.add_argument("--jitter", type=float, default=1e-8)
    parser.add_argument("--lam-factor", type=float, default=2.0, help="lam = factor * |K|_2")
    parser.add_argument("--tie-tol", type=float, default=1e-8)
    parser.add_argument(
        "--dtype", choices=("float64", "float32"), default="float64", help="DEQ precision"
    )
    args = apply_quick(parser.parse_args(argv), n_images=50)
    set_threads(args.threads)

    clean, noisy = noisy_digits(args.n_images, args.threshold, args.flip, args.seed)
    N = clean.shape[0]
    ii, jj = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    X = np.stack([ii.ravel(), jj.ravel()], axis=1).astype(np.float64)
    kernel = SquaredExponential(args.lengthscale) + WhiteNoise(args.jitter)
    K = kernel(X).numpy()
    lam = args.lam_factor * spectral_norm(K)
    print(
        f"digits: {N} images of 64 pixels, binarised at >= {args.threshold:g}, "
        f"{args.flip:.0%} bits flipped (seed {args.seed})"
    )
    print(
        f"kernel: SE(lengthscale {args.lengthscale:g}) + white({args.jitter:g}); "
        f"|K|_2 = {spectral_norm(K):.6g}, lam = {lam:.6g}, "
        f"min eig K = {np.linalg.eigvalsh(K).min():.3g}"
    )

    # DEQ-kernel: one batched forward pass
    layer = KGLMDEQ(
        torch_family("bernoulli"),
        64,
        64,
        solver="anderson",
        solver_options={"tol": 1e-13 if args.dtype == "float64" else 1e-6, "max_iter": 200},
        on_nonconvergence="raise" if args.dtype == "float64" else "warn",
        dtype=getattr(torch, args.dtype),
    )
    kglm_init(layer, K, K, lam)
    print(check_contraction(layer))
    t0 = time.perf_counter()
    with torch.no_grad():
        f_deq = layer(torch.from_numpy(noisy)).double().numpy()
    t_deq = time.perf_counter() - t0
    p_deq = expit(f_deq)
    print(f"DEQ ({args.dtype}): {layer.last_stats} in {t_deq:.3f} s")

    # KLR: Newton / IRLS, one image at a time
    t0 = time.perf_counter()
    f_klr = np.empty_like(noisy)
    iters, worst = [], 0.0
    for s in tqdm(range(N), desc="KLR (Newton)", leave=False):
        res = kglm_newton(
            K,
            noisy[s],
            lam,
            lambda f: np.logaddexp(0.0, f),
            expit,
            lambda f: expit(f) * expit(-f),
        )
        if not res.converged:
            raise RuntimeError(f"KLR Newton did not converge on image {s}: {res.residual:.3g}")
        f_klr[s] = res.f
        iters.append(res.iterations)
        worst = max(worst, res.residual)
    t_klr = time.perf_counter() - t0
    p_klr = expit(f_klr)
    print(
        f"KLR: Newton {min(iters)}-{max(iters)} iterations, max stationarity residual "
        f"{worst:.2e}, {t_klr:.3f} s"
    )

    diff = np.abs(p_deq - p_klr)
    print(
        f"max |p_DEQ - p_KLR| = {diff.max():.3e}   max |f_DEQ - f_KLR| = "
        f"{np.abs(f_deq - f_klr).max():.3e}"
    )
    b_deq, b_klr = p_deq > 0.5, p_klr > 0.5
    differ = np.nonzero((b_deq != b_klr).any(axis=1))[0]
    print(f"images whose binarised prediction differs: {len(differ)} of {N}")
    for s in differ:
        for pix in np.nonzero(b_deq[s] != b_klr[s])[0]:
            tie = (
                abs(p_deq[s, pix] - 0.5) <= args.tie_tol
                and abs(p_klr[s, pix] - 0.5) <= args.tie_tol
            )
            print(
                f"  image {s} pixel {pix}: p_DEQ = {p_deq[s, pix]!r}, p_KLR = "
                f"{p_klr[s, pix]!r}, tie at 0.5: {tie}"
            )
    exact_half = int((p_deq == 0.5).sum())
    print(
        f"pixels with p_DEQ == 0.5 exactly: {exact_half}; with |p - 0.5| <= {args.tie_tol:g}: "
        f"{int((np.abs(p_deq - 0.5) <= args.tie_tol).sum())}"
    )
    print(
        f"pixel error vs clean image: noisy input {np.mean(noisy != clean):.4f}, "
        f"KLR {np.mean(b_klr != clean):.4f}, DEQ-kernel {np.mean(b_deq != clean):.4f}"
    )
    figures = {
        "images": N,
        "dtype": args.dtype,
        "lam": lam,
        "max_abs_p_diff": float(diff.max()),
        "max_abs_f_diff": float(np.abs(f_deq - f_klr).max()),
        "images_differing": len(differ),
        "pixels_p_exactly_half": exact_half,
        "pixel_error": {
            "noisy": float(np.mean(noisy != clean)),
            "klr": float(np.mean(b_klr != clean)),
            "deq": float(np.mean(b_deq != clean)),
        },
        "deq_seconds": t_deq,
        "klr_seconds": t_klr,
    }
    write_result("kglm_digits", args, figures)


if __name__ == "__main__":
    main()
