"""The loadings step with one family per column (vector or mixed columns), batched per group.

For fixed latents ``Z`` the joint objective separates over the data columns. Column ``j``
with ``k_j`` natural parameters is a GLM on the design ``X = [Z, 1]`` (``N x p``,
``p = l + 1``) with a ``k_j x p`` coefficient matrix ``beta_j = [W_j, B_j]``:

    eta_sj    = beta_j X_s                                     (k_j natural parameters),
    f_j(beta) = sum_s [A_j(eta_sj) - <T_j(y_sj), eta_sj>] + w/2 |beta|_F^2,
    grad f_j  = sum_s (mu_j(eta_sj) - T_sj) X_s^T + w beta     (k_j x p),
    hess f_j  = sum_s C_j(eta_sj) kron X_s X_s^T + w I         (k_j p x k_j p),

with ``mu_j = grad A_j``, ``C_j = Hess A_j`` (``sigma'`` for a scalar column, where this is
the scalar ``ColumnGLMProblem``). The Hessian is positive definite where ``C_j`` is, so the
Newton step is Fisher scoring (canonical link). :class:`GroupGLMProblem` is the
``NewtonProblem`` of all the columns that share one family object (a ``ColumnGroup``): the
iterates are the rows ``vec(beta_j)`` of a ``(n_g, k p)`` tensor, so one ``newton_solve`` per
group does every column of it at once, and ``newton_solve``'s line search rejects, per
column, any trial that puts an ``eta_sj`` or the offset ``B_j`` outside the domain (the
latent solves restart from ``z = 0``, where ``eta = B``). Groups of different families (and
different domains: Poisson next to negative binomial) are separate solves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..columns import ColumnFamilies, ColumnGroup
from ..solvers import Linearisation, Solution, SolverConfig, newton_solve, row_norm


class GroupGLMProblem:
    """``NewtonProblem`` over the column GLMs of one ``ColumnGroup`` (module docstring).

    ``T_g`` is the group's slice of the expanded statistics, ``(N, n_g, k)``.
    """

    name = "group_glm"

    def __init__(self, group: ColumnGroup, Z: Tensor, T_g: Tensor, weight_decay: float):
        self.group, self.T, self.wd = group, T_g, float(weight_decay)
        ones = torch.ones(Z.shape[0], 1, dtype=Z.dtype, device=Z.device)
        self.X = torch.cat([Z, ones], dim=1)
        self.p, self.k, self.n_g = self.X.shape[1], group.k, T_g.shape[1]
        self.abs_X, self.abs_T = self.X.abs(), T_g.abs()
        # rows x_s x_s^T: every Hessian is one contraction C^T @ outer (see ``hessian``)
        self.outer = (self.X[:, :, None] * self.X[:, None, :]).reshape(-1, self.p * self.p)
        safe = torch.tensor(group.interior(), dtype=Z.dtype, device=Z.device)
        self.safe_eta = safe.expand(self.n_g, self.k)

    def _matrix(self, beta: Tensor) -> Tensor:
        """``(..., n_g, k p) -> (..., n_g, k, p)``: the coefficient matrices ``beta_j``."""
        return beta.reshape(*beta.shape[:-1], self.k, self.p)

    def eta(self, beta: Tensor) -> Tensor:
        """``eta_sj = beta_j X_s``, shape ``(N, n_g, k)``."""
        return torch.einsum("sp,gkp->sgk", self.X, self._matrix(beta))

    def _value(self, beta: Tensor, eta: Tensor) -> tuple[Tensor, Tensor]:
        """``f_j`` per column (``+inf`` outside the domain) and the magnitude of its terms;
        ``beta`` ``(..., n_g, kp)`` and ``eta`` ``(..., N, n_g, k)`` may carry a trial axis."""
        inside = self.group.in_domain(eta)  # (..., N, n_g)
        a = self.group.log_partition(torch.where(inside[..., None], eta, self.safe_eta))
        lin = (self.T * eta).sum(-1).sum(-2)
        prior = 0.5 * self.wd * beta.square().sum(-1)
        offset_inside = self.group.in_domain(self._matrix(beta)[..., -1])
        value = a.sum(-2) - lin + prior
        value = value.masked_fill(~(inside.all(-2) & offset_inside), math.inf)
        return value, a.abs().sum(-2) + lin.abs() + prior

    def check_start(self, beta: Tensor) -> None:
        value, _ = self._value(beta, self.eta(beta))
        if not bool(torch.isfinite(value).all()):
            raise ValueError("loadings step: the starting W, B put eta outside the domain")

    def linearise(self, beta: Tensor) -> Linearisation:
        eta = self.eta(beta)
        mu = self.group.mean(eta)
        grad = torch.einsum("sgk,sp->gkp", mu - self.T, self.X).reshape(self.n_g, -1)
        grad = grad + self.wd * beta
        size = torch.einsum("sgk,sp->gkp", self.abs_T + mu.abs(), self.abs_X)
        scale = row_norm(size) + self.wd * row_norm(beta)
        return Linearisation(beta, grad, row_norm(grad)[None], scale[None], cache=eta)

    def hessian(self, eta: Tensor) -> Tensor:
        """``sum_s C_j(eta_sj) kron X_s X_s^T + w I`` per column, ``(n_g, kp, kp)``."""
        C = self.group.covariance(eta)  # (N, n_g, k, k)
        k, p = self.k, self.p
        flat = C.reshape(C.shape[0], -1).T @ self.outer  # (n_g k k, p p)
        H = flat.reshape(self.n_g, k, k, p, p).permute(0, 1, 3, 2, 4)
        H = H.reshape(self.n_g, k * p, k * p)
        eye = torch.eye(k * p, dtype=H.dtype, device=H.device)
        return H + self.wd * eye

    def direction(self, lin: Linearisation, active: Tensor) -> Tensor:
        """The Newton (= Fisher scoring) step; steepest descent for a column whose Hessian
        has no Cholesky factor (``C -> 0`` on a constant column when ``w = 0``)."""
        chol, info = torch.linalg.cholesky_ex(self.hessian(lin.cache))
        step = -torch.cholesky_solve(lin.grad[..., None], chol)[..., 0]
        ok = (info == 0)[:, None] & torch.isfinite(step).all(-1, keepdim=True)
        return torch.where(ok, step, -lin.grad)

    def trial_values(
        self, lin: Linearisation, direction: Tensor, steps: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``f_j`` at ``beta + t d`` for the ``(K, n_g)`` steps (``eta`` updated linearly)."""
        beta, eta = lin.z, lin.cache
        d_eta = self.eta(direction)
        beta_trial = beta[None] + steps[..., None] * direction[None]
        eta_trial = eta[None] + steps[:, None, :, None] * d_eta[None]
        j_trial, _ = self._value(beta_trial, eta_trial)
        j0, scale0 = self._value(beta, eta)
        return j_trial, j0, scale0

    def factor(self, lin: Linearisation) -> tuple[Any, Tensor | None]:
        return None, None


@dataclass
class BlockLoadingsResult:
    """The group solves of one block loadings step.

    Attributes:
        solutions: one ``Solution`` per ``ColumnGroup`` (in ``columns.groups`` order).
    """

    solutions: list[Solution]

    @property
    def moved(self) -> bool:
        """Some column took a step."""
        return any(bool(s.stats.iterations.any()) for s in self.solutions)

    @property
    def converged(self) -> bool:
        """Every column met the Newton convergence test."""
        return all(bool(s.stats.converged.all()) for s in self.solutions)


def block_loadings_step(
    columns: ColumnFamilies,
    Z: Tensor,
    T: Tensor,
    W: Tensor,
    B: Tensor,
    weight_decay: float,
    config: SolverConfig,
) -> tuple[Tensor, Tensor, BlockLoadingsResult]:
    """Minimise the joint objective over ``(W, B)`` (``D x l`` and ``D``, eta order) for
    fixed ``Z`` by Newton per column, one batched solve per group (at most
    ``config.max_iter`` iterations each), starting at ``(W, B)``. ``T`` is ``T(Y)``
    expanded per column (``(N, D)``). Returns the new ``W``, ``B`` and the group solves."""
    W_new, B_new, solutions = W.clone(), B.clone(), []
    for g in columns.groups:
        index = g.index.to(W.device)
        problem = GroupGLMProblem(g, Z, T[:, index], weight_decay)
        beta0 = torch.cat([W[index], B[index][..., None]], dim=-1).reshape(len(g.columns), -1)
        sol = newton_solve(problem, beta0, config)
        beta = problem._matrix(sol.value)
        W_new[index] = beta[..., :-1]
        B_new[index] = beta[..., -1]
        solutions.append(sol)
    return W_new, B_new, BlockLoadingsResult(solutions)


__all__ = ["BlockLoadingsResult", "GroupGLMProblem", "block_loadings_step"]
