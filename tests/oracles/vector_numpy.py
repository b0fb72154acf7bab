"""Independent numpy/scipy references for per-column families: log-partition, its gradient,
and the MAP objective of ExpFamPCA minimised by scipy (no torch, no project code)."""

from __future__ import annotations

import numpy as np
import scipy.optimize as so
from scipy.special import digamma, gammaln, logsumexp


def _normal(e: np.ndarray) -> tuple[float, np.ndarray]:
    e1, e2 = e
    a = -(e1**2) / (4 * e2) - 0.5 * np.log(-2 * e2)
    return a, np.array([-e1 / (2 * e2), e1**2 / (4 * e2**2) - 1 / (2 * e2)])


def _gamma_shape(e: np.ndarray) -> tuple[float, np.ndarray]:
    a, b = e[0] + 1, -e[1]
    return gammaln(a) - a * np.log(b), np.array([digamma(a) - np.log(b), a / b])


def _beta(e: np.ndarray) -> tuple[float, np.ndarray]:
    a, b = e[0] + 1, e[1] + 1
    val = gammaln(a) + gammaln(b) - gammaln(a + b)
    return val, np.array([digamma(a) - digamma(a + b), digamma(b) - digamma(a + b)])


def _inverse_gaussian(e: np.ndarray) -> tuple[float, np.ndarray]:
    e1, e2 = e
    r = np.sqrt(e1 * e2)
    return -2 * r - 0.5 * np.log(-2 * e2), np.array([-e2 / r, -e1 / r - 1 / (2 * e2)])


def _categorical(e: np.ndarray) -> tuple[float, np.ndarray]:
    full = np.concatenate([[0.0], e])
    p = np.exp(full - logsumexp(full))
    return logsumexp(full), p[1:]


def _poisson(e: np.ndarray) -> tuple[float, np.ndarray]:
    return np.exp(e[0]), np.exp(e)


def _bernoulli(e: np.ndarray) -> tuple[float, np.ndarray]:
    return np.logaddexp(0.0, e[0]), 1 / (1 + np.exp(-e))


def _gaussian(e: np.ndarray) -> tuple[float, np.ndarray]:
    return 0.5 * e[0] ** 2, e.copy()


def _statistic(name: str, y: float) -> np.ndarray:
    table = {
        "normal_unknown_variance": lambda: [y, y * y],
        "gamma_shape": lambda: [np.log(y), y],
        "beta": lambda: [np.log(y), np.log1p(-y)],
        "inverse_gaussian": lambda: [y, 1 / y],
        "categorical": lambda: [float(y == i) for i in (1, 2, 3)],
    }
    return np.array(table[name]() if name in table else [y])


REFERENCE = {
    "normal_unknown_variance": _normal,
    "gamma_shape": _gamma_shape,
    "beta": _beta,
    "inverse_gaussian": _inverse_gaussian,
    "categorical": _categorical,
    "poisson": _poisson,
    "bernoulli": _bernoulli,
    "gaussian": _gaussian,
}


def statistics(names: list[str], y: np.ndarray) -> np.ndarray:
    """``T(y)`` of one row, columns expanded and concatenated, ``(D,)``."""
    return np.concatenate([_statistic(n, float(v)) for n, v in zip(names, y, strict=True)])


def objective(names: list[str], W, B, t, lam, z) -> tuple[float, np.ndarray]:
    """``J(z) = lam/2|z|^2 - z^T W^T t + sum_j A_j(eta_j)`` and its gradient (``inf`` outside
    the domain, detected as a non-finite ``A``)."""
    eta = W @ z + B
    total, mean, start = 0.0, [], 0
    for n in names:
        k = DIMS.get(n, 2)
        with np.errstate(all="ignore"):
            a, m = REFERENCE[n](eta[start : start + k])
        total += a
        mean.append(m)
        start += k
    if not np.isfinite(total):
        return np.inf, np.full(z.shape, np.nan)
    mu = np.concatenate(mean)
    return 0.5 * lam * z @ z - z @ (W.T @ t) + total, lam * z - W.T @ (t - mu)


#: natural parameters per column where not 2
DIMS = {"categorical": 3, "poisson": 1, "bernoulli": 1, "gaussian": 1}


def scipy_map(names: list[str], W, B, Y, lam) -> np.ndarray:
    """Per-row minimiser of :func:`objective` by BFGS, polished by MINPACK's hybrid root
    finder on the gradient (as ``oracles.families.scipy_map_latents``)."""
    out = np.empty((Y.shape[0], W.shape[1]))
    for i, y in enumerate(Y):
        t = statistics(names, y)

        def fun(z, t=t):
            return objective(names, W, B, t, lam, z)

        res = so.minimize(
            fun, np.zeros(W.shape[1]), jac=True, method="BFGS", options={"gtol": 1e-11}
        )
        polished = so.root(lambda z: fun(z)[1], res.x, method="hybr", tol=1e-15)
        assert np.linalg.norm(polished.fun) < 1e-9, (i, polished.fun)
        out[i] = polished.x
    return out


def fd_hessian(names: list[str], W, B, t, lam, z, h: float = 1e-5) -> np.ndarray:
    """Central finite differences of the gradient of :func:`objective` at ``z``."""
    n = z.shape[0]
    H = np.empty((n, n))
    for i in range(n):
        dz = np.zeros(n)
        dz[i] = h
        H[:, i] = (
            objective(names, W, B, t, lam, z + dz)[1] - objective(names, W, B, t, lam, z - dz)[1]
        ) / (2 * h)
    return 0.5 * (H + H.T)
