"""The second-order fit of the per-column ExpFamPCA (``runtime.block_pca.BlockExpFamPCA``).

The same alternation as :func:`runtime.fitting.alternating.fit_newton` (its docstring: the
latent step, the objective and loadings-gradient record, the convergence test, the exact
rebalancing, the loadings step, the extrapolation, the checkpoints and the history), run by
the one shared loop ``alternating.alternate`` with the per-column pieces (a ``FitParts``) of
a ``ColumnFamilies`` layout:

* latent step: the block Newton solve of ``runtime.block_inner`` (Hessian
  ``lam I + W^T blockdiag(C_j) W``);
* loadings step: ``block_loadings.block_loadings_step``, one batched ``k_j (l + 1)``-unknown
  Newton solve per group of columns sharing a family;
* start: ``block_init.block_initial_parameters`` (offsets at the inverse mean of the column
  means, loadings from the SVD of the whitened residuals);
* objective and gradient: ``block_init.block_joint_objective`` / ``block_loadings_gradient``.

``fit_newton`` dispatches here for a model with ``columns``; on ``d`` columns of one scalar
family the two fits take the same steps (up to rounding).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..block_inner import BlockInnerProblem, BlockNewtonProblem
from ..solvers import SolverConfig, newton_solve
from .alternating import (
    Extrapolation,
    NewtonFitConfig,
    NewtonHistory,
    _restore,
    alternate,
)
from .block_init import block_initial_parameters, block_joint_objective, block_loadings_gradient
from .block_loadings import block_loadings_step
from .objective import gradient_norm
from .parts import FitParts


def _objective(model: Any, T: Tensor, Z: Tensor, W: Tensor, B: Tensor) -> float:
    return block_joint_objective(model.columns, T, Z, W, B, model.lam, model.weight_decay)


def block_latent_step(model: Any, Y: Tensor, T: Tensor, Z: Tensor) -> tuple[Tensor, int]:
    """MAP latents of all rows by the block Newton solve from the warm start ``Z`` (rows whose
    ``eta`` left a domain restart from 0), and the count of rows that did not converge."""
    z0 = model._warm_start(Z, Y)
    inner = BlockInnerProblem(model.columns, model.W.detach(), model.B.detach(), T, model.lam)
    sol = newton_solve(BlockNewtonProblem(inner, True, model.config), z0, model.config)
    return sol.value, int((~sol.stats.converged).sum())


def _start(model: Any, Y: Tensor, T: Tensor) -> tuple[Tensor, NewtonHistory]:
    """Initial ``(W, B)`` into ``model``; zero latents and an empty history."""
    W0, B0 = block_initial_parameters(model.columns, T, model.latent_dim)
    with torch.no_grad():
        model.W.copy_(W0)
        model.B.copy_(B0)
    return torch.zeros(Y.shape[0], model.latent_dim, dtype=Y.dtype), NewtonHistory()


def fit_newton_block(
    model: Any,
    data: Tensor,
    config: NewtonFitConfig | None = None,
    *,
    resume: str | Path | None = None,
    run_info: dict[str, Any] | None = None,
) -> NewtonHistory:
    """Fit a ``BlockExpFamPCA`` ``model`` (its ``W``, ``B`` in place) to ``data`` by the
    alternation of the module docstring; returns the history with its stop reason. Raises
    ``TrainingDiverged`` on a non-finite objective and ``CheckpointError`` for a checkpoint of
    another run (``run_info`` differs) or of another optimizer."""
    cfg = config or NewtonFitConfig()
    columns = model.columns
    Y = model._validate_data(data)
    T = columns.sufficient_statistic(Y)
    ckpt = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
    acc = Extrapolation(cfg.max_extrapolation)
    if resume is not None:
        Z, hist = _restore(Path(resume), model, Y.shape[0], run_info, acc)
        hist.stop_reason = None  # a resumed run re-tests convergence
    else:
        Z, hist = _start(model, Y, T)
    lcfg = SolverConfig(max_iter=cfg.loadings_iter)

    def loadings(Z: Tensor, T: Tensor, W: Tensor, B: Tensor) -> tuple[Tensor, Tensor, bool]:
        W1, B1, step = block_loadings_step(columns, Z, T, W, B, model.weight_decay, lcfg)
        return W1, B1, not step.moved and not step.converged

    parts = FitParts(
        latent=lambda Y, T, Z: block_latent_step(model, Y, T, Z),
        objective=lambda T, Z, W, B: _objective(model, T, Z, W, B),
        gradient_norm=lambda T, Z, W, B: gradient_norm(
            *block_loadings_gradient(columns, T, Z, W, B, model.weight_decay)
        ),
        loadings=loadings,
        offsets_in_domain=lambda B: bool(columns.in_domain(B).all()),
    )
    return alternate(
        model, parts, Y, T, Z, hist, acc, cfg, ckpt, run_info, "fit (newton, per column)"
    )


__all__ = ["block_latent_step", "fit_newton_block"]
