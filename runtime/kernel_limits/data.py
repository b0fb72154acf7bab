"""Gaussian-mixture data for the kernel analysis, the spectral-norm error used to compare
kernels, and the conversion of inputs to float64 numpy arrays."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor


def as_numpy(X: Any) -> np.ndarray:
    """``X`` (tensor, array or nested sequence) as a float64 numpy array."""
    if isinstance(X, Tensor):
        X = X.detach().cpu().numpy()
    return np.asarray(X, dtype=np.float64)


def gaussian_mixture(
    p: int,
    n_per_class: Sequence[int],
    means: Sequence[np.ndarray],
    covariance_scales: Sequence[float],
    generator: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Rows ``x_i = (mu_a + omega_i)/sqrt(p)``, ``omega_i ~ N(0, c_a I_p)``; returns ``X``
    (``n x p``), labels and the population covariances ``c_a I_p``."""
    xs, ys, covs = [], [], []
    for a, (n_a, mu, c) in enumerate(zip(n_per_class, means, covariance_scales, strict=True)):
        omega = generator.standard_normal((n_a, p)) * math.sqrt(c)
        xs.append((np.asarray(mu)[None, :] + omega) / math.sqrt(p))
        ys.append(np.full(n_a, a))
        covs.append(c * np.eye(p))
    return np.concatenate(xs), np.concatenate(ys), covs


def relative_spectral_error(A: np.ndarray, B: np.ndarray) -> float:
    """``|A - B|_2 / |A|_2`` (spectral norms; symmetric matrices)."""
    return float(np.linalg.norm(A - B, 2) / np.linalg.norm(A, 2))
