"""The one batched backtracking Armijo line search, used by every Newton solve.

All ``K = line_search_steps`` trial steps ``t_k = scale * factor^k`` of every sample are
evaluated in one batched call, so the search costs no host synchronisation. A trial is
admissible when its objective is finite (``+inf`` encodes leaving the domain) and

    J(z + t d) <= J(z) + c t grad^T d + 64 eps |terms of J(z)|,

where the slack absorbs rounding, so a sample at its rounding-level optimum is not reported as
stalled. The largest admissible step is returned per sample.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .config import SolverConfig

#: ``steps (K, N) -> (J at every trial (K, N), J(z) (N,), magnitude of the terms of J(z) (N,))``
TrialValues = Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]


def trial_steps(step_scale: Tensor, cfg: SolverConfig) -> Tensor:
    """``t_k = step_scale * backtrack_factor^k`` for ``k < line_search_steps``, shape ``(K, N)``."""
    k = torch.arange(cfg.line_search_steps, dtype=step_scale.dtype, device=step_scale.device)
    return step_scale[None, :] * cfg.backtrack_factor ** k[:, None]


def armijo_search(
    trial_values: TrialValues,
    grad: Tensor,
    direction: Tensor,
    step_scale: Tensor,
    cfg: SolverConfig,
) -> tuple[Tensor, Tensor]:
    """Largest admissible step per sample (module docstring) and whether one existed.

    ``grad`` and ``direction`` are ``(N, D)``; ``trial_values`` evaluates the objective at
    ``z + t_k d`` for the ``(K, N)`` steps it is given (a problem may do so incrementally).
    """
    steps = trial_steps(step_scale, cfg)
    j_trial, j0, scale0 = trial_values(steps)
    slope = (grad * direction).sum(-1)
    slack = 64 * torch.finfo(grad.dtype).eps * scale0
    admissible = torch.isfinite(j_trial) & (
        j_trial <= j0[None] + cfg.armijo_c * steps * slope[None] + slack[None]
    )
    found = admissible.any(0)
    first = torch.argmax(admissible.to(torch.int8), dim=0)  # first True = largest step
    return steps.gather(0, first[None])[0], found


def objective_trials(
    objective: Callable[[Tensor], tuple[Tensor, Tensor]], z: Tensor, direction: Tensor
) -> TrialValues:
    """``TrialValues`` for a plain batched objective ``z -> (J(z), |terms of J(z)|)`` that
    accepts extra leading dimensions: evaluates ``J(z + t_k d)`` for all trials at once."""

    def values(steps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        j_trial, _ = objective(z[None] + steps[..., None] * direction[None])
        j0, scale0 = objective(z)
        return j_trial, j0, scale0

    return values
