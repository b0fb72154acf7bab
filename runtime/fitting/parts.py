"""The pieces of the second-order fit's alternation (``alternating``) for one family: the
latent step, the joint objective ``F``, the loadings gradient norm and the loadings step, on
the torch path (batched torch solves over the ``N x d`` table) or on the generated fused
solver (``fused_steps``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from torch import Tensor

from ..solvers import SolverConfig, newton
from .loadings import loadings_step
from .objective import gradient_norm, joint_objective, loadings_gradient


@dataclass(frozen=True)
class FitParts:
    """What the alternation needs of a layout (one family here, a ``ColumnFamilies`` layout
    in ``block_alternating``); the loop itself, :func:`alternate`, is shared.

    ``latent(Y, T, Z) -> (Z, rows not converged)``: the latent step from the warm start
    ``Z`` at the model's current loadings; ``objective(T, Z, W, B)``: the joint objective
    ``F``; ``gradient_norm(T, Z, W, B)``: the norm of its loadings gradient;
    ``loadings(Z, T, W, B) -> (W, B, stalled)``: the loadings step (``stalled`` when it
    neither moved nor converged); ``offsets_in_domain(B)``: every offset inside its domain.
    """

    latent: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, int]]
    objective: Callable[[Tensor, Tensor, Tensor, Tensor], float]
    gradient_norm: Callable[[Tensor, Tensor, Tensor, Tensor], float]
    loadings: Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor, bool]]
    offsets_in_domain: Callable[[Tensor], bool]


def _latent_step(model: Any, Y: Tensor, T: Tensor, Z: Tensor) -> tuple[Tensor, int]:
    """MAP latents for all rows from the warm start ``Z`` (rows whose ``eta`` left the
    domain restart from 0), and the count of rows that did not converge."""
    z0 = model._warm_start(Z, Y)
    sol = newton(model.family, model.W.detach(), model.B.detach(), T, model.lam, z0, model.config)
    return sol.value, int((~sol.stats.converged).sum())


def torch_parts(model: Any, lcfg: SolverConfig) -> FitParts:
    """The alternation's pieces on the torch path (batched torch solves over the table)."""
    family = model.family

    def loadings(Z: Tensor, T: Tensor, W: Tensor, B: Tensor) -> tuple[Tensor, Tensor, bool]:
        W1, B1, sol = loadings_step(family, Z, T, W, B, model.weight_decay, lcfg)
        stalled = not bool(sol.stats.iterations.any()) and not bool(sol.stats.converged.all())
        return W1, B1, stalled

    return FitParts(
        latent=lambda Y, T, Z: _latent_step(model, Y, T, Z),
        objective=lambda T, Z, W, B: joint_objective(
            family, T, Z, W, B, model.lam, model.weight_decay
        ),
        gradient_norm=lambda T, Z, W, B: gradient_norm(
            *loadings_gradient(family, T, Z, W, B, model.weight_decay)
        ),
        loadings=loadings,
        offsets_in_domain=lambda B: bool(family.in_domain(B).all()),
    )


def fused_parts(model: Any, ops: Any, Y: Tensor, lcfg: SolverConfig, base: FitParts) -> FitParts:
    """``base`` with its steps run by the fused solver (``fused_steps``): the latent step
    always, the loadings step and its gradient where they apply; ``F`` after a fused step
    comes with its solution, else from ``base``."""
    from .fused_steps import FusedSteps

    steps = FusedSteps(model, ops, Y, lcfg)

    def objective(T: Tensor, Z: Tensor, W: Tensor, B: Tensor) -> float:
        known = steps.memo.get(Z, W, B)
        return base.objective(T, Z, W, B) if known is None else known

    if not steps.fused_loadings:
        return replace(base, latent=lambda Y, T, Z: steps.latent(Z), objective=objective)
    return replace(
        base,
        latent=lambda Y, T, Z: steps.latent(Z),
        objective=objective,
        gradient_norm=lambda T, Z, W, B: steps.gradient_norm(Z, W, B),
        loadings=lambda Z, T, W, B: steps.loadings(Z, W, B),
    )


__all__ = ["FitParts", "fused_parts", "torch_parts"]
