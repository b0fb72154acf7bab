"""The inner problem of Theorem 1 with one family per column (vector or mixed columns).

With natural parameters ``eta = W z + B`` (``W``: ``D x l``, ``D = sum_j k_j``) and
``T = T(Y_s)`` expanded per column (``runtime.columns``), each sample minimises

    J_s(z) = lam/2 |z|^2 - z^T W^T T_s + sum_j A_j(eta_j),
    grad J_s = lam z - W^T (T_s - mu(eta)),
    H_s = lam I + W^T blockdiag(C_j(eta_j)) W,

strongly convex since every ``C_j`` is positive definite. :class:`BlockNewtonProblem` is the
``NewtonProblem`` that ``newton_solve`` (Armijo line search keeping every ``eta_j`` inside its
domain) runs; :func:`block_equilibrium` adds the implicit backward.

Implicit backward: at the solution ``F(z*; theta) = grad J = 0``, so with ``H`` and ``z*``
held fixed, ``z_out = z* - H^{-1} F(z*; theta)`` has value ``z*`` (the correction is
subtracted as ``c - c.detach()``) and derivative ``dz_out/dtheta = -H^{-1} dF/dtheta``, the
implicit-function-theorem derivative of ``z*`` with respect to ``theta = (W, B, Y)``. Autograd
differentiates ``F`` through ``mu`` (so ``C_j`` enters as the derivative of the means) and
``T``; the backward costs one Cholesky solve with the forward's factor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .columns import ColumnFamilies
from .solvers import Linearisation, SolverConfig, SolverStats, as_config, newton_solve, row_norm
from .solvers.dense import DenseNewtonProblem, cholesky_factor
from .solvers.inner import require_inside_start


class BlockInnerProblem:
    """``J_s(z)`` of the module docstring for a batch of samples (rows of ``T``, ``(N, D)``)."""

    def __init__(self, columns: ColumnFamilies, W: Tensor, B: Tensor, T: Tensor, lam: float):
        if lam <= 0:
            raise ValueError(f"lam must be > 0 (strong convexity), got {lam!r}")
        self.columns, self.W, self.B, self.T, self.lam = columns, W, B, T, float(lam)
        self.WtT = T @ W
        self.abs_W, self.abs_T = W.abs(), T.abs()
        # stand-in for out-of-domain coordinates before evaluating A (no NaN in a discarded
        # branch of torch.where)
        self.safe_eta = columns.interior_point(dtype=W.dtype).to(W.device)
        self.column_of = columns.column_of.to(W.device)

    def eta(self, z: Tensor) -> Tensor:
        return z @ self.W.T + self.B

    def value(self, z: Tensor, eta: Tensor) -> tuple[Tensor, Tensor]:
        """``J`` (``+inf`` where some ``eta_j`` leaves its domain) and the magnitude of its
        terms; ``z``/``eta`` may carry leading trial dimensions."""
        inside = self.columns.in_domain(eta)  # (..., d)
        safe = torch.where(inside[..., self.column_of], eta, self.safe_eta)
        a = self.columns.log_partition_terms(safe)
        quad = 0.5 * self.lam * (z * z).sum(-1)
        lin = (z * self.WtT).sum(-1)
        value = (quad - lin + a.sum(-1)).masked_fill(~inside.all(-1), math.inf)
        return value, quad + lin.abs() + a.abs().sum(-1)

    def gradient(self, z: Tensor, eta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``lam z - W^T (T - mu(eta))``, ``mu``, and the magnitude of the cancelling terms."""
        mu = self.columns.mean(eta)
        grad = self.lam * z - (self.T - mu) @ self.W
        scale = self.lam * row_norm(z) + row_norm((self.abs_T + mu.abs()) @ self.abs_W)
        return grad, mu, scale

    def hessian(self, eta: Tensor) -> Tensor:
        """``H = lam I + W^T blockdiag(C_j) W``, ``(N, l, l)``."""
        return self.columns.hessian(self.W, eta, self.lam)

    def check_feasible_start(self, z0: Tensor) -> None:
        require_inside_start(
            self.columns.in_domain(self.eta(z0)).all(-1),
            f"W z0 + B outside the domain of a column family ({self.columns.name})",
            "choose B (or z0) so that every eta_j starts strictly inside its domain",
        )


class BlockNewtonProblem(DenseNewtonProblem):
    """``NewtonProblem`` over :class:`BlockInnerProblem`: the dense problem's Newton steps
    (batched Cholesky of ``H`` when ``use_cholesky``, else CG), line search trials and
    factor, with the block Hessian-vector product; the factor is formed for CG too, since
    the implicit backward of :func:`block_equilibrium` needs it."""

    def hvp_operator(self, eta: Tensor) -> Callable[[Tensor], Tensor]:
        """``v -> H v = lam v + W^T blockdiag(C_j(eta_j)) W v``."""
        cols, W, lam = self.inner.columns, self.inner.W, self.inner.lam
        blocks = cols.covariance_blocks(eta)
        return lambda v: lam * v + cols.hvp(W, blocks, v)

    def factor(self, lin: Linearisation) -> tuple[Tensor, Tensor]:
        """Cholesky factor of ``H(z*)`` (for the backward and Laplace), and where it failed."""
        return cholesky_factor(self.inner.hessian(lin.cache))


def block_equilibrium(
    columns: ColumnFamilies,
    W: Tensor,
    B: Tensor,
    Y: Tensor,
    lam: float,
    config: SolverConfig | dict[str, Any] | None = None,
    method: str = "newton",
    z0: Tensor | None = None,
) -> tuple[Tensor, SolverStats, Tensor]:
    """Differentiable MAP latents ``Z*`` (``(N, l)``), the solver stats and the Cholesky factor
    of ``H(Z*)`` (``(N, l, l)``).

    The forward runs ``newton_solve`` without a graph; the result carries the implicit backward
    of the module docstring (gradients w.r.t. ``W``, ``B`` and ``Y``).
    """
    if method not in ("newton", "cg_newton"):
        raise ValueError(f"unknown block solver {method!r}; choose 'newton' or 'cg_newton'")
    cfg = as_config(config)
    with torch.no_grad():
        T = columns.sufficient_statistic(Y)
        inner = BlockInnerProblem(columns, W.detach(), B.detach(), T, lam)
        start = torch.zeros(Y.shape[0], W.shape[1], dtype=W.dtype, device=W.device)
        start = start if z0 is None else z0.detach()
        sol = newton_solve(BlockNewtonProblem(inner, method == "newton", cfg), start, cfg)
    z_star, chol = sol.value, sol.factor
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (W, B, Y))
    if not needs_grad:
        return z_star, sol.stats, chol
    eta = z_star @ W.T + B
    F = lam * z_star - (columns.sufficient_statistic(Y) - columns.mean(eta)) @ W
    ok = torch.isfinite(chol).all(-1).all(-1)  # unusable factors give no gradient, not NaN
    safe = torch.where(ok[:, None, None], chol, torch.eye(W.shape[1], dtype=W.dtype))
    correction = torch.cholesky_solve(F[..., None], safe.detach())[..., 0]
    correction = correction * ok[:, None]
    return z_star - (correction - correction.detach()), sol.stats, chol


__all__ = [
    "BlockInnerProblem",
    "BlockNewtonProblem",
    "block_equilibrium",
]
