"""Second-order fitting of ExpFamPCA: alternate the latent step and the loadings step.

Each outer iteration ``k``:

1. latent step: ``Z_k = argmin_Z F(Z, W_k, B_k)``, the DEQ's batched dense Newton solve for
   all rows, warm-started from ``Z_{k-1}``;
2. evaluate ``F_k = F(Z_k, W_k, B_k)`` (the objective ``ExpFamPCA.loss`` reports, see
   ``objective``) and ``g_k = |grad_{W,B} F|_2`` there (the whole gradient, as
   ``grad_Z F = 0`` at ``Z_k``);
3. stop when ``|F_{k-1} - F_k| <= rtol max(|F_k|, |F_{k-1}|)`` **and**
   ``g_k <= gtol max(1, |F_k|)`` (``"converged"``), or after ``max_iter`` loadings steps
   (``"max_iterations"``), or when a loadings step could not decrease ``F`` at all (``"stalled"``);
4. rebalance ``(Z_k, W_k)`` exactly along the invariance ``eta = Z W^T`` (``balance``);
5. loadings step: Newton / Fisher scoring per column from ``(W_k, B_k)`` (``loadings``),
   giving ``theta' = (W', B')`` with ``F(Z_k, theta') =: F'``;
6. extrapolation (the line search of accelerated alternating least squares): the next latent
   step is tried at ``theta' + a (theta' - theta_k)`` and kept if its objective is below
   ``F'``; otherwise it is taken at ``theta'``. ``a`` grows by 1.5 after each success (up
   to ``max_extrapolation``) and restarts at 1 after a failure. Alternation alone converges
   linearly and slowly along the coupled directions of ``Z`` and ``W``; this cuts the
   iteration count several-fold and keeps ``F`` monotone.

Both steps decrease ``F`` (each minimises it over one block with a line search), so ``F_k``
is non-increasing. The state after every loadings step is checkpointed (``W``, ``B``, the
latent cache ``Z`` and the history), so a resumed run continues the same sequence.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..checkpoint_check import check_run_settings
from ..fused import resolve_backend
from ..solvers import SolverConfig
from ..train import CheckpointError, TrainingDiverged, load_checkpoint, save_checkpoint
from .balance import rebalance
from .init import initial_parameters
from .parts import FitParts, fused_parts, torch_parts

CHECKPOINT_KIND = "deqfam-newton-fit"
STOP_REASONS = ("converged", "max_iterations", "stalled")


@dataclass(frozen=True)
class NewtonFitConfig:
    """Options of :func:`fit_newton`.

    Attributes:
        max_iter: most loadings steps (outer iterations).
        rtol: relative change of the objective below which it may stop (with ``gtol``).
        gtol: bound on the loadings gradient norm ``|grad_{W,B} F|_2``, relative to
            ``max(1, |F|)``, for stopping. The defaults stop where further iterations change
            the training deviance by well under 1% (measured on digits, BENCHMARKS.md).
        loadings_iter: Newton iterations per loadings step (the column GLMs are re-solved
            from the previous loadings, so a few suffice).
        progress: show a tqdm progress bar.
        checkpoint_path: file the state is written to after every outer iteration.
        max_extrapolation: largest extrapolation factor ``a`` (0 turns extrapolation off).
    """

    max_iter: int = 500
    rtol: float = 1e-5
    gtol: float = 1e-3
    loadings_iter: int = 3
    progress: bool = True
    checkpoint_path: str | None = None
    max_extrapolation: float = 8.0

    def __post_init__(self) -> None:
        for name in ("max_iter", "loadings_iter"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (self.rtol >= 0 and self.gtol >= 0 and self.max_extrapolation >= 0):
            raise ValueError("rtol, gtol and max_extrapolation must be >= 0")


@dataclass
class NewtonHistory:
    """Per outer iteration: the objective ``F_k`` (``loss``, as the Adam history's), the
    loadings gradient norm, the seconds spent, the rows whose latent solve did not converge;
    and the reason the run stopped."""

    loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    nonconverged: list[int] = field(default_factory=list)
    extrapolation: list[float] = field(default_factory=list)
    stop_reason: str | None = None
    optimizer: str = "newton"

    def record(self, loss: float, grad: float, failed: int, used: float, seconds: float) -> None:
        """Append one outer iteration (``used``: the extrapolation factor kept, 0 if none)."""
        self.loss.append(loss)
        self.grad_norm.append(grad)
        self.nonconverged.append(failed)
        self.extrapolation.append(used)
        self.seconds.append(seconds)

    @property
    def stop_message(self) -> str:
        """Why the run stopped, in words, with the last objective and gradient norm."""
        if not self.stop_reason or not self.loss:
            return ""
        return (
            f"{self.stop_reason} after {self.iterations} iterations: objective "
            f"{self.loss[-1]:.10g}, loadings gradient norm {self.grad_norm[-1]:.3g}"
        )

    @property
    def iterations(self) -> int:
        """Loadings steps taken (one fewer than objective evaluations)."""
        return max(len(self.loss) - 1, 0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "iterations": self.iterations}


def stop_reason(history: NewtonHistory, cfg: NewtonFitConfig) -> str | None:
    """The convergence test of the module docstring applied to the last record."""
    if len(history.loss) >= 2:
        prev, cur = history.loss[-2], history.loss[-1]
        small_change = abs(prev - cur) <= cfg.rtol * max(abs(prev), abs(cur))
        if small_change and history.grad_norm[-1] <= cfg.gtol * max(1.0, abs(cur)):
            return "converged"
    if history.iterations >= cfg.max_iter:
        return "max_iterations"
    return None


class Extrapolation:
    """State of the extrapolation (module docstring, step 6): the loadings before the last
    loadings step, the objective ``F'`` after it, and the current factor ``a``."""

    def __init__(self, max_factor: float) -> None:
        self.max_factor, self.factor = float(max_factor), 1.0
        self.W_prev: Tensor | None = None
        self.B_prev: Tensor | None = None
        self.bound = math.inf

    def remember(self, W_prev: Tensor, B_prev: Tensor, bound: float) -> None:
        self.W_prev, self.B_prev, self.bound = W_prev, B_prev, bound

    def state(self) -> dict[str, Any]:
        return {
            "W_prev": self.W_prev,
            "B_prev": self.B_prev,
            "bound": self.bound,
            "factor": self.factor,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.W_prev, self.B_prev = state.get("W_prev"), state.get("B_prev")
        self.bound, self.factor = float(state.get("bound", math.inf)), float(state["factor"])


def _latent_step_extrapolated(
    model: Any, parts: FitParts, Y: Tensor, T: Tensor, Z: Tensor, acc: Extrapolation
) -> tuple[Tensor, int, float]:
    """The latent step at the extrapolated loadings if that lowers ``F`` below ``acc.bound``
    (they are then kept in ``model``), else at the current ones. Returns the latents, the
    rows not converged and the factor used (0 when not extrapolated)."""
    if acc.W_prev is None or acc.max_factor == 0:
        return (*parts.latent(Y, T, Z), 0.0)
    W, B, a = model.W.detach().clone(), model.B.detach().clone(), acc.factor
    W_try, B_try = W + a * (W - acc.W_prev), B + a * (B - acc.B_prev)
    if parts.offsets_in_domain(B_try):
        model.W.copy_(W_try)
        model.B.copy_(B_try)
        Z_try, failed = parts.latent(Y, T, Z)
        if parts.objective(T, Z_try, W_try, B_try) < acc.bound:
            acc.factor = min(1.5 * a, acc.max_factor)
            return Z_try, failed, a
        model.W.copy_(W)
        model.B.copy_(B)
    acc.factor = 1.0
    return (*parts.latent(Y, T, Z), 0.0)


def _save(
    path: Path | None, model: Any, Z: Tensor, hist: NewtonHistory, acc: Extrapolation, run: Any
) -> None:
    if path is None:
        return
    state = {
        "kind": CHECKPOINT_KIND,
        "W": model.W.detach().clone(),
        "B": model.B.detach().clone(),
        "Z": Z.clone(),
        "history": hist.to_dict(),
        "extrapolation": acc.state(),
        "n_samples": int(Z.shape[0]),
    }
    if run is not None:
        state["run"] = run
    save_checkpoint(path, state)


def _restore(
    path: Path, model: Any, n: int, run: Any, acc: Extrapolation
) -> tuple[Tensor, NewtonHistory]:
    """Load a checkpoint of this path into ``model``; returns the latent cache and history."""
    state = load_checkpoint(path)
    if state.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(
            f"cannot resume from {path}: it was written by another optimizer (not the "
            "second-order fit); use the optimizer that wrote it, or --overwrite"
        )
    check_run_settings(state.get("run"), run, path)
    W, B, Z = state.get("W"), state.get("B"), state.get("Z")
    shapes = (tuple(model.W.shape), tuple(model.B.shape), (n, model.latent_dim))
    got = tuple(tuple(x.shape) if isinstance(x, Tensor) else None for x in (W, B, Z))
    if got != shapes:
        raise CheckpointError(f"cannot resume from {path}: shapes {got} differ from {shapes}")
    with torch.no_grad():
        model.W.copy_(W)
        model.B.copy_(B)
    acc.load(state["extrapolation"])
    saved = dict(state["history"])
    saved.pop("iterations", None)
    return Z.to(model.W.dtype), NewtonHistory(**saved)


def fit_newton(
    model: Any,
    data: Tensor,
    config: NewtonFitConfig | None = None,
    *,
    resume: str | Path | None = None,
    run_info: dict[str, Any] | None = None,
) -> NewtonHistory:
    """Fit an ``ExpFamPCA`` ``model`` (its ``W``, ``B`` in place) to ``data`` by alternating
    second-order steps (module docstring); returns the history with its stop reason.

    A per-column model (``BlockExpFamPCA``: vector or mixed columns) is fitted by
    ``block_alternating.fit_newton_block``, the same alternation per column group.

    Without ``resume`` the start is ``initial_parameters`` (offsets at the link of the column
    means, loadings from the SVD of the Pearson residuals). Raises ``TrainingDiverged`` on a
    non-finite objective and ``CheckpointError`` for a checkpoint of another run.
    """
    if getattr(model, "columns", None) is not None:  # one family per column (block_pca)
        from .block_alternating import fit_newton_block

        return fit_newton_block(model, data, config, resume=resume, run_info=run_info)
    cfg = config or NewtonFitConfig()
    family = model.family
    Y = model._validate_data(data)
    T = family.sufficient_statistic(Y)
    ckpt = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
    acc = Extrapolation(cfg.max_extrapolation)
    if resume is not None:
        Z, hist = _restore(Path(resume), model, Y.shape[0], run_info, acc)
        hist.stop_reason = None  # a resumed run re-tests convergence (max_iter may differ)
    else:
        W0, B0 = initial_parameters(family, T, model.latent_dim)
        with torch.no_grad():
            model.W.copy_(W0)
            model.B.copy_(B0)
        Z, hist = torch.zeros(Y.shape[0], model.latent_dim, dtype=Y.dtype), NewtonHistory()
    lcfg = SolverConfig(max_iter=cfg.loadings_iter)
    parts = torch_parts(model, lcfg)
    ops = resolve_backend(family, model.backend, model.latent_dim, model.solver)
    if ops is not None:
        parts = fused_parts(model, ops, Y, lcfg, parts)
    return alternate(model, parts, Y, T, Z, hist, acc, cfg, ckpt, run_info, "fit (newton)")


def alternate(
    model: Any,
    parts: FitParts,
    Y: Tensor,
    T: Tensor,
    Z: Tensor,
    hist: NewtonHistory,
    acc: Extrapolation,
    cfg: NewtonFitConfig,
    ckpt: Path | None,
    run_info: dict[str, Any] | None,
    desc: str,
) -> NewtonHistory:
    """The outer loop (module docstring): latent step (extrapolated when that helps), record
    ``F`` and the loadings gradient, test convergence, rebalance, loadings step, checkpoint;
    until the test holds, ``max_iter`` is reached or the loadings step stalls."""
    bar = tqdm(
        total=cfg.max_iter, initial=hist.iterations, desc=desc, unit="it", disable=not cfg.progress
    )
    while True:
        t0 = time.perf_counter()
        with torch.no_grad():
            Z, failed, used = _latent_step_extrapolated(model, parts, Y, T, Z, acc)
            W, B = model.W.detach().clone(), model.B.detach().clone()
            F = parts.objective(T, Z, W, B)
            g = parts.gradient_norm(T, Z, W, B)
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
            W1, B1, stalled = parts.loadings(Z, T, W, B)
            model.W.copy_(W1)
            model.B.copy_(B1)
            acc.remember(W, B, parts.objective(T, Z, W1, B1))
        hist.seconds[-1] += time.perf_counter() - t0
        if stalled:
            hist.stop_reason = "stalled"
            break
        bar.update(1)
        bar.set_postfix(objective=f"{F:.8g}", grad=f"{g:.2e}")
        _save(ckpt, model, Z, hist, acc, run_info)
    bar.close()
    # no save here: the last checkpoint (after the last loadings step) resumes into exactly
    # this run's continuation, which a state saved mid-iteration would not
    model.last_z = Z
    return hist


__all__ = ["STOP_REASONS", "NewtonFitConfig", "NewtonHistory", "fit_newton", "stop_reason"]
