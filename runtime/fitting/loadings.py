"""The loadings step: Newton / Fisher scoring per data column, batched over columns.

For fixed latents ``Z`` the joint objective separates over the ``d`` data columns. Column
``j`` is a GLM of ``y_j`` on the design ``X = [Z, 1]`` with coefficients
``beta_j = (w_j, b_j)`` (canonical link, Gaussian prior of precision ``w``):

    f_j(beta) = sum_s [A(X_s beta) - T_sj X_s beta] + w/2 |beta|^2,
    grad f_j  = X^T (sigma(X beta) - T_j) + w beta,
    hess f_j  = X^T diag(sigma'(X beta)) X + w I        ((l+1) x (l+1)).

For a canonical link the observed and expected information coincide, so Newton is Fisher
scoring. :class:`ColumnGLMProblem` implements the ``NewtonProblem`` protocol with the columns
as the batch, so ``newton_solve`` supplies the Armijo line search (which rejects any trial
that puts an ``eta_sj`` or an offset ``b_j`` outside the domain: ``B`` alone must stay inside,
since the latent solves restart from ``z = 0``) and the per-column convergence test.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..family import TorchFamily
from ..solvers import Linearisation, Solution, SolverConfig, newton_solve, row_norm


class ColumnGLMProblem:
    """``NewtonProblem`` over the ``d`` column GLMs (module docstring); iterates are the rows
    ``beta_j = (w_j, b_j)`` of a ``(d, l+1)`` tensor."""

    name = "column_glm"

    def __init__(self, family: TorchFamily, Z: Tensor, T: Tensor, weight_decay: float) -> None:
        self.family, self.T, self.wd = family, T, float(weight_decay)
        ones = torch.ones(Z.shape[0], 1, dtype=Z.dtype, device=Z.device)
        self.X = torch.cat([Z, ones], dim=1)
        self.abs_X, self.abs_T = self.X.abs(), T.abs()
        p = self.X.shape[1]
        # rows x_s x_s^T, so every Hessian is one GEMM sigma'^T @ outer (see ``hessian``)
        self.outer = (self.X[:, :, None] * self.X[:, None, :]).reshape(-1, p * p)
        self.whole_line = family.domain == (-math.inf, math.inf)
        self.safe_eta = family.interior_point()

    def eta(self, beta: Tensor) -> Tensor:
        """``eta = X beta^T``, shape ``(N, d)``."""
        return self.X @ beta.T

    def _value(self, beta: Tensor, eta: Tensor) -> tuple[Tensor, Tensor]:
        """``f_j`` per column (``+inf`` outside the domain) and the magnitude of its terms;
        ``beta``/``eta`` may carry a leading trial dimension."""
        if self.whole_line:
            a = self.family.log_partition(eta)
            outside = None
        else:
            inside = self.family.in_domain(eta)
            a = self.family.log_partition(eta.masked_fill(~inside, self.safe_eta))
            outside = ~(inside.all(-2) & self.family.in_domain(beta[..., -1]))
        lin = (self.T * eta).sum(-2)
        prior = 0.5 * self.wd * beta.square().sum(-1)
        value = a.sum(-2) - lin + prior
        if outside is not None:
            value = value.masked_fill(outside, math.inf)
        return value, a.abs().sum(-2) + lin.abs() + prior

    def check_start(self, beta: Tensor) -> None:
        value, _ = self._value(beta, self.eta(beta))
        if not bool(torch.isfinite(value).all()):
            raise ValueError("loadings step: the starting W, B put eta outside the domain")

    def linearise(self, beta: Tensor) -> Linearisation:
        eta = self.eta(beta)
        sigma = self.family.activation(eta)
        grad = (sigma - self.T).T @ self.X + self.wd * beta
        scale = row_norm((self.abs_T + sigma.abs()).T @ self.abs_X) + self.wd * row_norm(beta)
        return Linearisation(beta, grad, row_norm(grad)[None], scale[None], cache=eta)

    def hessian(self, eta: Tensor) -> Tensor:
        """``X^T diag(sigma'_j) X + w I`` for every column, shape ``(d, l+1, l+1)``."""
        sp = self.family.activation_grad(eta)
        p = self.X.shape[1]
        gram = (sp.T @ self.outer).reshape(sp.shape[1], p, p)
        eye = torch.eye(p, dtype=gram.dtype, device=gram.device)
        return gram + self.wd * eye

    def direction(self, lin: Linearisation, active: Tensor) -> Tensor:
        """The Newton (= Fisher scoring) step ``-hess^{-1} grad``; a column whose Hessian has
        no Cholesky factor (an all-zero column drives ``sigma'`` to 0 when ``w = 0``) takes
        the steepest-descent step instead, which the line search keeps convergent."""
        chol, info = torch.linalg.cholesky_ex(self.hessian(lin.cache))
        step = -torch.cholesky_solve(lin.grad[..., None], chol)[..., 0]
        ok = (info == 0)[:, None] & torch.isfinite(step).all(-1, keepdim=True)
        return torch.where(ok, step, -lin.grad)

    def trial_values(
        self, lin: Linearisation, direction: Tensor, steps: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``f_j`` at ``beta + t_k d`` for the ``(K, d)`` steps, ``eta`` updated incrementally."""
        beta, eta = lin.z, lin.cache
        d_eta = self.X @ direction.T
        beta_trial = beta[None] + steps[..., None] * direction[None]
        eta_trial = eta[None] + steps[:, None, :] * d_eta[None]
        j_trial, _ = self._value(beta_trial, eta_trial)
        j0, scale0 = self._value(beta, eta)
        return j_trial, j0, scale0

    def factor(self, lin: Linearisation) -> tuple[Any, Tensor | None]:
        return None, None


def loadings_step(
    family: TorchFamily,
    Z: Tensor,
    T: Tensor,
    W: Tensor,
    B: Tensor,
    weight_decay: float,
    config: SolverConfig,
) -> tuple[Tensor, Tensor, Solution]:
    """Minimise the joint objective over ``(W, B)`` for fixed ``Z`` by Newton per column
    (at most ``config.max_iter`` iterations), starting at ``(W, B)``.

    Returns the new ``W`` (``d x l``), ``B`` (``d``) and the ``Solution`` of the column solves.
    """
    problem = ColumnGLMProblem(family, Z, T, weight_decay)
    beta0 = torch.cat([W, B[:, None]], dim=1)
    sol = newton_solve(problem, beta0, config)
    beta = sol.value
    return beta[:, :-1].contiguous(), beta[:, -1].contiguous(), sol


__all__ = ["ColumnGLMProblem", "loadings_step"]
