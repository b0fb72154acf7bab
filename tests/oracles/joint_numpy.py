"""The joint MAP objective of per-column ExpFamPCA in numpy, minimised by scipy over all of
``(Z, W, B)`` at once (no torch, no project code; the column families of ``vector_numpy``).

    F(Z, W, B) = (1/N) [ sum_{s,j} (A_j(eta_sj) - <T_j(y_sj), eta_sj>) + lam/2 |Z|^2
                         + w/2 (|W|^2 + |B|^2) ],      eta_s = W z_s + B,

with gradient ``dF/dZ = (R W + lam Z)/N``, ``dF/dW = (R^T Z + w W)/N``,
``dF/dB = (1^T R + w B)/N`` where ``R = mu(eta) - T``.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize as so

from .vector_numpy import DIMS, REFERENCE, statistics


def _negative_binomial(e: np.ndarray, r: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """``A = -r log(1 - e^eta)`` (``eta < 0``), mean ``r e^eta / (1 - e^eta)``."""
    q = np.exp(e[0])
    return -r * np.log1p(-q), r * np.exp(e) / (1 - np.exp(e))


COLUMN_REFERENCE = {**REFERENCE, "negative_binomial": _negative_binomial}
COLUMN_DIMS = {**DIMS, "negative_binomial": 1}


def expanded_statistics(names: list[str], Y: np.ndarray) -> np.ndarray:
    """``T(Y)`` with every column expanded to its statistics, ``(N, D)``."""
    return np.stack([statistics(names, row) for row in Y])


def joint_objective(names, T, Z, W, B, lam, wd) -> tuple[float, tuple[np.ndarray, ...]]:
    """``F`` and ``(dF/dZ, dF/dW, dF/dB)`` of the module docstring (``inf`` outside the
    domain, detected as a non-finite log-partition)."""
    n = T.shape[0]
    eta = Z @ W.T + B
    total, means, start = 0.0, [], 0
    for name in names:
        k = COLUMN_DIMS.get(name, 2)
        with np.errstate(all="ignore"):
            a, m = COLUMN_REFERENCE[name](eta[:, start : start + k].T)
        total += float(np.sum(a))
        means.append(np.reshape(m, (k, n)).T)
        start += k
    if not np.isfinite(total):
        return np.inf, (np.zeros_like(Z), np.zeros_like(W), np.zeros_like(B))
    R = np.concatenate(means, axis=1) - T
    value = total - np.sum(T * eta) + 0.5 * lam * np.sum(Z * Z)
    value += 0.5 * wd * (np.sum(W * W) + np.sum(B * B))
    grads = (R @ W + lam * Z, R.T @ Z + wd * W, R.sum(0) + wd * B)
    return value / n, tuple(g / n for g in grads)


def scipy_joint_minimum(names, T, Z0, W0, B0, lam, wd) -> tuple[float, np.ndarray]:
    """Minimise ``F`` over ``(Z, W, B)`` jointly by BFGS from ``(Z0, W0, B0)``; returns the
    minimum and the gradient norm there."""
    shapes = [Z0.shape, W0.shape, B0.shape]
    sizes = [int(np.prod(s)) for s in shapes]

    def unpack(x):
        parts, start = [], 0
        for shape, size in zip(shapes, sizes, strict=True):
            parts.append(x[start : start + size].reshape(shape))
            start += size
        return parts

    def fun(x):
        value, grads = joint_objective(names, T, *unpack(x), lam, wd)
        return value, np.concatenate([g.ravel() for g in grads])

    x0 = np.concatenate([Z0.ravel(), W0.ravel(), B0.ravel()])
    # BFGS (not L-BFGS-B, whose line search gives up on a trial outside the domain)
    res = so.minimize(fun, x0, jac=True, method="BFGS", options={"maxiter": 20000, "gtol": 1e-10})
    return float(res.fun), np.linalg.norm(res.jac)
