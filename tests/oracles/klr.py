"""Test oracle for the kGLM: kernel logistic (and general kernel-GLM) regression solved by Newton /
IRLS on the representer coefficients in plain numpy (Appendix A.2 / C.1 of the kGLM paper),
written independently of the torch kGLM-DEQ it checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class KGLMNewtonResult:
    """Solution of the kGLM (5): ``alpha``, ``f = K alpha``, the final stationarity residual
    ``max|T - A'(f) - Q'(f) - lam alpha|`` and the Newton iterations taken."""

    alpha: np.ndarray
    f: np.ndarray
    residual: float
    iterations: int
    converged: bool


def kglm_newton(
    K: Any,
    t: Any,
    lam: float,
    A: Callable[[np.ndarray], np.ndarray],
    dA: Callable[[np.ndarray], np.ndarray],
    d2A: Callable[[np.ndarray], np.ndarray],
    Q: Callable[[np.ndarray], np.ndarray] | None = None,
    dQ: Callable[[np.ndarray], np.ndarray] | None = None,
    d2Q: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    tol: float = 1e-13,
    max_iter: int = 100,
) -> KGLMNewtonResult:
    """Newton's method (IRLS) on the representer coefficients of the kGLM (5),

        L(alpha) = -alpha^T K t + 1^T A(K alpha) + 1^T Q(K alpha) + lam/2 alpha^T K alpha,

    with gradient ``-K r``, ``r = t - A'(K alpha) - Q'(K alpha) - lam alpha``, and Hessian
    ``K (D K + lam I)``, ``D = diag(A'' + Q'')``, so the Newton step solves
    ``(D K + lam I) d = r`` (Appendix C.1's update, without forming ``K^{-1}``), followed by a
    backtracking Armijo line search on ``L`` (skipped once the predicted decrease is below the
    rounding level of ``L``). Pure numpy; ``t = T(Y)`` is one sample ``(n,)``.
    Stops when ``max|r| <= tol (1 + max|t|)``.
    """
    K = np.asarray(K, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    n = t.shape[0]
    zero = np.zeros_like

    def q_terms(f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if Q is None:
            return zero(f), zero(f), zero(f)
        return Q(f), dQ(f), d2Q(f)

    def objective(a: np.ndarray) -> float:
        f = K @ a
        return float(-a @ (K @ t) + np.sum(A(f)) + np.sum(q_terms(f)[0]) + 0.5 * lam * a @ f)

    alpha = np.zeros(n)
    scale = 1.0 + float(np.max(np.abs(t))) if n else 1.0
    steps = 0
    for _ in range(max_iter):
        f = K @ alpha
        _, dq, d2q = q_terms(f)
        r = t - dA(f) - dq - lam * alpha
        if (float(np.max(np.abs(r))) if n else 0.0) <= tol * scale:
            break
        D = d2A(f) + d2q
        step = np.linalg.solve(D[:, None] * K + lam * np.eye(n), r)
        slope = -float((K @ r) @ step)  # directional derivative of L, < 0
        current = objective(alpha)
        s = 1.0
        # Below rounding level of L the Armijo test is noise: take the full (quadratically
        # convergent) Newton step; otherwise backtrack.
        if -slope > 1e-12 * (1.0 + abs(current)):
            for _ in range(60):
                if objective(alpha + s * step) <= current + 1e-4 * s * slope:
                    break
                s *= 0.5
            else:  # pragma: no cover - no representable decrease along a descent direction
                break
        alpha = alpha + s * step
        steps += 1
    f = K @ alpha
    _, dq, _ = q_terms(f)
    residual = float(np.max(np.abs(t - dA(f) - dq - lam * alpha))) if n else 0.0
    return KGLMNewtonResult(alpha, f, residual, steps, residual <= tol * scale)
