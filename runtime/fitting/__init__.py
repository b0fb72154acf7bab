"""Second-order fitting of exponential-family PCA (the default of ``deqfam fit``).

* ``objective``: the joint MAP objective ``F(Z, W, B)`` and its loadings gradient.
* ``link``: the canonical link ``(A')^{-1}`` by safeguarded Newton, initial offsets.
* ``balance``: the exact step along the invariance ``eta = Z W^T`` (balanced factors).
* ``init``: initial loadings from the SVD of Pearson residuals.
* ``loadings``: the loadings step, Newton / Fisher scoring per column (a ``NewtonProblem``).
* ``parts``: the alternation's steps for one family, on the torch path or (``fused_steps``)
  the generated fused solver.
* ``alternating``: the outer loop, its convergence test, history and checkpoints.
"""

from .alternating import (
    STOP_REASONS,
    NewtonFitConfig,
    NewtonHistory,
    fit_newton,
    stop_reason,
)
from .balance import balancing_transform, rebalance
from .init import initial_loadings, initial_parameters, pearson_residuals
from .link import initial_offsets, invert_activation, shrunk_means
from .loadings import ColumnGLMProblem, loadings_step
from .objective import gradient_norm, joint_objective, loadings_gradient

__all__ = [
    "STOP_REASONS",
    "ColumnGLMProblem",
    "NewtonFitConfig",
    "NewtonHistory",
    "balancing_transform",
    "fit_newton",
    "gradient_norm",
    "initial_loadings",
    "initial_offsets",
    "initial_parameters",
    "invert_activation",
    "joint_objective",
    "loadings_gradient",
    "loadings_step",
    "pearson_residuals",
    "rebalance",
    "shrunk_means",
    "stop_reason",
]
