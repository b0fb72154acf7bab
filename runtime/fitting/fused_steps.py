"""The second-order fit's steps on the generated fused solver (``runtime.fused``).

The two blocks of the alternation are the same problem. The latent step solves, per row
``s``, ``min_z sum_j [A(w_j.z + b_j) - T_sj (w_j.z + b_j)] + lam/2 |z|^2``; the loadings
step solves, per column ``j``, ``min_beta sum_s [A(x_s.beta) - T_sj x_s.beta] + w/2 |beta|^2``
with ``x_s = (z_s, 1)`` and ``beta_j = (w_j, b_j)`` (``loadings`` module docstring). So the
fused op ``solve(Y, W, B, z0, lam, ...)`` runs both: the latent step as itself, the loadings
step as ``solve(Y^T, X, 0, beta0, w, ...)`` with ``X = [Z, 1]`` playing the loadings, the
columns playing the rows and the weight decay ``w`` playing ``lam``. It takes the torch
path's iterates (same Newton rule, line search and stopping test; the torch loadings solve is
``newton_solve`` over ``ColumnGLMProblem``) to rounding, in one C++ pass per row or column
instead of a dozen torch kernels over the ``N x d`` table.

Every fused solve also returns its objective at the solution, so the joint objective ``F``
the alternation records after each step (``objective`` module docstring) needs no further
pass over the table: ``F = (sum_s obj_s + w/2 (|W|^2 + |B|^2)) / N`` after the latent step and
``(sum_j obj_j + lam/2 |Z|^2) / N`` after the loadings step. The loadings gradient norm is the
column solves' residual at their start (a zero-iteration solve), divided by ``N``.

The loadings step runs fused only for families whose domain is the whole line: the torch
loadings step also rejects a trial that moves an offset ``b_j`` out of the domain (the latent
solves restart there), which the fused line search, checking only ``eta``, does not.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..fused import fused_solve
from ..solvers import SolverConfig


class ObjectiveMemo:
    """``F`` at the last few points a fused step solved, keyed by the latents' identity and
    the loadings' values (the alternation asks for ``F`` right after each step)."""

    def __init__(self, keep: int = 3) -> None:
        self.keep = keep
        self.entries: list[tuple[Tensor, Tensor, Tensor, float]] = []

    def put(self, Z: Tensor, W: Tensor, B: Tensor, value: float) -> None:
        self.entries = [*self.entries[-(self.keep - 1) :], (Z, W.clone(), B.clone(), value)]

    def get(self, Z: Tensor, W: Tensor, B: Tensor) -> float | None:
        for z, w, b, value in reversed(self.entries):
            if z is Z and torch.equal(w, W) and torch.equal(b, B):
                return value
        return None


class FusedSteps:
    """The latent step, the loadings step and the loadings gradient norm of ``model`` on
    ``Y`` through the fused ``ops`` (module docstring)."""

    def __init__(self, model: Any, ops: Any, Y: Tensor, loadings_config: SolverConfig) -> None:
        self.model, self.ops, self.Y = model, ops, Y
        self.family = model.family
        self.n = Y.shape[0]
        self.lcfg = loadings_config
        self.memo = ObjectiveMemo()
        wd = float(model.weight_decay)
        # the column solve needs w > 0 (strong convexity) and a whole-line domain (above)
        self.fused_loadings = wd > 0 and tuple(self.family.domain) == (-math.inf, math.inf)
        self._YT: Tensor | None = None
        self._zeros = torch.zeros(self.n, dtype=Y.dtype)

    def _prior_loadings(self, W: Tensor, B: Tensor) -> float:
        return 0.5 * float(self.model.weight_decay) * float(W.square().sum() + B.square().sum())

    def latent(self, Z: Tensor) -> tuple[Tensor, int]:
        """MAP latents of every row from the warm start ``Z`` at the model's loadings; the
        rows not converged. Remembers ``F`` there."""
        model = self.model
        z0 = model._warm_start(Z, self.Y)
        W, B = model.W.detach(), model.B.detach()
        z, stats, obj = fused_solve(
            self.ops, self.family, W, B, self.Y, model.lam, model.config, z0
        )
        self.memo.put(z, W, B, (float(obj.sum()) + self._prior_loadings(W, B)) / self.n)
        return z, int((~stats.converged).sum())

    def _columns(
        self, Z: Tensor, W: Tensor, B: Tensor, max_iter: int
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The column GLM solves from ``beta0 = [W, B]`` with design ``[Z, 1]`` (at most
        ``max_iter`` Newton steps; 0 only evaluates): ``(beta, converged, iterations,
        residual, objective)`` per column."""
        if self._YT is None:
            self._YT = self.Y.T.contiguous()
        X = torch.cat([Z, torch.ones(self.n, 1, dtype=Z.dtype)], dim=1).contiguous()
        beta0 = torch.cat([W, B[:, None]], dim=1).contiguous()
        cfg = self.lcfg
        beta, converged, iterations, residual, _, objective = self.ops.solve(
            self._YT,
            X,
            self._zeros,
            beta0,
            float(self.model.weight_decay),
            float(cfg.tol),
            float(cfg.resolved_rtol(X.dtype)),
            int(max_iter),
            float(cfg.armijo_c),
            float(cfg.backtrack_factor),
            int(cfg.line_search_steps),
            float(cfg.min_step),
        )
        if bool((iterations < 0).any()):  # the start is the current (valid) loadings
            raise ValueError("loadings step: the starting W, B put eta outside the domain")
        return beta, converged, iterations, residual, objective

    def loadings(self, Z: Tensor, W: Tensor, B: Tensor) -> tuple[Tensor, Tensor, bool]:
        """One loadings step (``loadings.loadings_step``'s contract): new ``W``, ``B`` and
        whether it stalled (no column moved and not all had converged). Remembers ``F``."""
        beta, converged, iterations, _, obj = self._columns(Z, W, B, self.lcfg.max_iter)
        W1, B1 = beta[:, :-1].contiguous(), beta[:, -1].contiguous()
        prior_z = 0.5 * float(self.model.lam) * float(Z.square().sum())
        self.memo.put(Z, W1, B1, (float(obj.sum()) + prior_z) / self.n)
        stalled = not bool(iterations.any()) and not bool(converged.all())
        return W1, B1, stalled

    def gradient_norm(self, Z: Tensor, W: Tensor, B: Tensor) -> float:
        """``|(dF/dW, dF/dB)|_2`` (``objective.loadings_gradient``): the column solves'
        gradient norms at ``[W, B]``, combined and divided by ``N``."""
        residual = self._columns(Z, W, B, 0)[3]
        return float(residual.square().sum().sqrt()) / self.n


__all__ = ["FusedSteps", "ObjectiveMemo"]
