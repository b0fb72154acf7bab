"""Statistics of the joint solve and the non-convergence policy for saddle solutions."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..solvers import ConvergenceError, ConvergenceWarning, SolverStats, check_convergence


class NegativeCurvatureWarning(ConvergenceWarning):
    """Some samples' solutions are stationary points whose Hessian is not positive definite."""


@dataclass
class DeepSolverStats:
    """Outcome of the joint solve.

    Attributes:
        joint: ``residual = |g|_2`` over the whole stack, ``threshold = sqrt(sum_l thr_l^2)``,
            ``converged`` = every layer converged.
        layers: one ``SolverStats`` per latent layer: ``residual = |g_l|_2`` (that layer's
            stationarity residual), ``threshold = tol + rtol * scale_l``.
        negative_curvature: per sample, the number of iterations at which ``H`` was not positive
            definite (modified Newton steps were taken there).
        most_negative_eigenvalue: smallest eigenvalue of ``H`` met on those iterations
            (0 where none).
        local_minimum: ``H(z*)`` positive definite (a strict local minimum of ``J``).
        min_eigenvalue: smallest eigenvalue of ``H(z*)`` where it is not positive definite,
            NaN elsewhere (not computed).
    """

    joint: SolverStats
    layers: list[SolverStats]
    negative_curvature: Tensor
    most_negative_eigenvalue: Tensor
    local_minimum: Tensor
    min_eigenvalue: Tensor

    @property
    def converged(self) -> Tensor:
        return self.joint.converged

    @property
    def all_converged(self) -> bool:
        return self.joint.all_converged

    @property
    def convergence_rate(self) -> float:
        return self.joint.convergence_rate

    @property
    def iterations(self) -> Tensor:
        return self.joint.iterations

    @property
    def n_saddles(self) -> int:
        return int((self.converged & ~self.local_minimum).sum())

    def summary(self) -> dict[str, Any]:
        out = self.joint.summary()
        out["layers"] = [s.summary() for s in self.layers]
        out["samples_with_negative_curvature"] = int((self.negative_curvature > 0).sum())
        out["saddles"] = self.n_saddles
        return out

    def __str__(self) -> str:
        per_layer = ", ".join(
            f"layer {l + 1}: max |g| {float(s.residual.max()):.3g}"
            for l, s in enumerate(self.layers)
        )
        neg = int((self.negative_curvature > 0).sum())
        return f"{self.joint}; {per_layer}; negative curvature met by {neg} samples"


def check_deep_convergence(stats: DeepSolverStats, policy: str = "warn", what: str = "") -> None:
    """``check_convergence`` on the joint stats, then the same policy for saddle solutions."""
    check_convergence(stats.joint, policy, what=what)
    saddle = stats.converged & ~stats.local_minimum
    if policy == "ignore" or not bool(saddle.any()):
        return
    idx = torch.nonzero(saddle).flatten().tolist()
    worst = float(stats.min_eigenvalue[saddle].min())
    message = (
        f"{what + ': ' if what else ''}{len(idx)} samples converged to a stationary point whose "
        f"Hessian is not positive definite (indices {idx[:10]}; smallest eigenvalue {worst:.3g}): "
        "not a local MAP"
    )
    if policy == "raise":
        raise ConvergenceError(message)
    warnings.warn(message, NegativeCurvatureWarning, stacklevel=3)
