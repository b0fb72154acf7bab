"""The second-order fit of the per-column ExpFamPCA (``runtime.block_pca.BlockExpFamPCA``).

The same alternation as :func:`runtime.fitting.alternating.fit_newton` (its docstring: the
latent step, the objective and loadings-gradient record, the convergence test, the exact
rebalancing, the loadings step, the extrapolation, the checkpoints and the history), with the
per-column pieces of a ``ColumnFamilies`` layout:

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

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..block_inner import BlockInnerProblem, BlockNewtonProblem
from ..solvers import SolverConfig, newton_solve
from ..train import TrainingDiverged
from .alternating import (
    Extrapolation,
    NewtonFitConfig,
    NewtonHistory,
    _restore,
    _save,
    stop_reason,
)
from .balance import rebalance
from .block_init import block_initial_parameters, block_joint_objective, block_loadings_gradient
from .block_loadings import block_loadings_step
from .objective import gradient_norm


def _objective(model: Any, T: Tensor, Z: Tensor, W: Tensor, B: Tensor) -> float:
    return block_joint_objective(model.columns, T, Z, W, B, model.lam, model.weight_decay)


def block_latent_step(model: Any, Y: Tensor, T: Tensor, Z: Tensor) -> tuple[Tensor, int]:
    """MAP latents of all rows by the block Newton solve from the warm start ``Z`` (rows whose
    ``eta`` left a domain restart from 0), and the count of rows that did not converge."""
    z0 = model._warm_start(Z, Y)
    inner = BlockInnerProblem(model.columns, model.W.detach(), model.B.detach(), T, model.lam)
    sol = newton_solve(BlockNewtonProblem(inner, True, model.config), z0, model.config)
    return sol.value, int((~sol.stats.converged).sum())


def _latent_step_extrapolated(
    model: Any, Y: Tensor, T: Tensor, Z: Tensor, acc: Extrapolation
) -> tuple[Tensor, int, float]:
    """Step 6 of ``fit_newton``: the latent step at the extrapolated loadings when that lowers
    ``F`` below ``acc.bound`` (kept in ``model``), else at the current ones; returns the
    latents, the rows not converged and the factor used (0 when not extrapolated)."""
    if acc.W_prev is None or acc.max_factor == 0:
        return (*block_latent_step(model, Y, T, Z), 0.0)
    W, B, a = model.W.detach().clone(), model.B.detach().clone(), acc.factor
    W_try, B_try = W + a * (W - acc.W_prev), B + a * (B - acc.B_prev)
    if bool(model.columns.in_domain(B_try).all()):
        model.W.copy_(W_try)
        model.B.copy_(B_try)
        Z_try, failed = block_latent_step(model, Y, T, Z)
        if _objective(model, T, Z_try, W_try, B_try) < acc.bound:
            acc.factor = min(1.5 * a, acc.max_factor)
            return Z_try, failed, a
        model.W.copy_(W)
        model.B.copy_(B)
    acc.factor = 1.0
    return (*block_latent_step(model, Y, T, Z), 0.0)


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
    bar = tqdm(
        total=cfg.max_iter,
        initial=hist.iterations,
        desc="fit (newton, per column)",
        unit="it",
        disable=not cfg.progress,
    )
    while True:
        t0 = time.perf_counter()
        with torch.no_grad():
            Z, failed, used = _latent_step_extrapolated(model, Y, T, Z, acc)
            W, B = model.W.detach().clone(), model.B.detach().clone()
            F = _objective(model, T, Z, W, B)
            g = gradient_norm(*block_loadings_gradient(columns, T, Z, W, B, model.weight_decay))
        if not (F < math.inf and g < math.inf):
            where = ckpt if ckpt is not None and ckpt.exists() else None
            raise TrainingDiverged(
                f"the objective is {F} (gradient norm {g}) at outer iteration {hist.iterations}",
                hist.iterations,
                0,
                where,
            )
        hist.record(F, g, failed, used, time.perf_counter() - t0)
        reason = stop_reason(hist, cfg)
        if reason is not None:
            hist.stop_reason = reason
            break
        t0 = time.perf_counter()
        with torch.no_grad():
            Z, W = rebalance(Z, W, model.lam, model.weight_decay)
            W1, B1, step = block_loadings_step(columns, Z, T, W, B, model.weight_decay, lcfg)
            model.W.copy_(W1)
            model.B.copy_(B1)
            acc.remember(W, B, _objective(model, T, Z, W1, B1))
        hist.seconds[-1] += time.perf_counter() - t0
        if not step.moved and not step.converged:
            hist.stop_reason = "stalled"
            break
        bar.update(1)
        bar.set_postfix(objective=f"{F:.8g}", grad=f"{g:.2e}")
        _save(ckpt, model, Z, hist, acc, run_info)
    bar.close()
    model.last_z = Z
    return hist


__all__ = ["block_latent_step", "fit_newton_block"]
