"""Exact infinite-width kernels: the matrix fixed point ``K = sigma_a^2 F(K) + sigma_b^2 X X^T``
of the random DEQ (with ``Gdot`` and the NTK), and ``Sigma_L`` of an explicit network."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .activations import as_phi
from .data import as_numpy
from .pairs import pair_expectations
from .quadrature import gaussian_moments
from .scalars import check_sigmas, implicit_scalars


@dataclass
class InfiniteWidthKernels:
    """Exact infinite-width kernels: ``K``, ``G = F(K)``, ``Gdot``, ``ntk = K/(1 - sa^2 Gdot)``;
    ``iterations`` of the matrix fixed point and its final relative change."""

    K: np.ndarray
    G: np.ndarray
    Gdot: np.ndarray
    ntk: np.ndarray
    iterations: int
    change: float


def infinite_width_kernels(
    phi: Any,
    sigma_a: float,
    sigma_b: float,
    X: Any,
    shift: float | None = None,
    nodes: int = 16,
    tol: float = 1e-13,
    max_iter: int = 1000,
) -> InfiniteWidthKernels:
    """Solve ``K = sigma_a^2 F(K) + sigma_b^2 X X^T`` by fixed-point iteration (a contraction
    when the DEQ is well posed) for the centred ``phi`` (``shift``: its centring constant,
    default from ``implicit_scalars``), then ``G = F(K)``, ``Gdot`` and the NTK."""
    check_sigmas(sigma_a, sigma_b)
    X = as_numpy(X)
    f = as_phi(phi)
    gram = X @ X.T
    if shift is None:
        shift = implicit_scalars(f, sigma_a, sigma_b, float(np.diag(gram).mean())).shift
    K = gram.copy()
    change = math.inf
    k = 0
    while k < max_iter and change > tol:
        k += 1
        F, _ = pair_expectations(f, shift, K, nodes, derivative=False)
        K_new = sigma_a**2 * F + sigma_b**2 * gram
        change = float(np.abs(K_new - K).max() / np.abs(K_new).max())
        K = K_new
    G, Gd = pair_expectations(f, shift, K, nodes, derivative=True)
    assert Gd is not None
    return InfiniteWidthKernels(K, G, Gd, K / (1 - sigma_a**2 * Gd), k, change)


def explicit_infinite_width_ck(layers: Sequence[Any], X: Any, nodes: int = 16) -> np.ndarray:
    """Exact infinite-width CK ``Sigma_L`` of the explicit network: ``Sigma_0 = X X^T``,
    ``Sigma_l = F_l(Sigma_{l-1})`` with ``F_l`` the Gaussian expectation of the centred
    ``phi_l`` (centred at its input scale, as in ``explicit_coefficients``)."""
    X = as_numpy(X)
    S = X @ X.T
    s2 = float(np.diag(S).mean())
    for layer in layers:
        f = as_phi(layer)
        mo = gaussian_moments(f, math.sqrt(s2), 64)
        S, _ = pair_expectations(f, mo.mean, S, nodes, derivative=False)
        s2 = mo.var
    return S
