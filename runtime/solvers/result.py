"""What every solver returns: per-sample ``SolverStats``, a ``Solution`` (value, stats, factor
for the backward, per-sample status) and the non-convergence policy.

A solve never fails silently: ``Solution.status`` says per sample whether it converged, ran
out of iterations, stalled in the line search, diverged, or converged to a point whose
Hessian could not be factored; ``check_convergence`` applies the caller's policy.
"""

from __future__ import annotations

import enum
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

POLICIES = ("raise", "warn", "ignore")


class ConvergenceError(RuntimeError):
    """Raised by ``check_convergence(stats, "raise")`` when some samples did not converge."""


class ConvergenceWarning(RuntimeWarning):
    """Warned by ``check_convergence(stats, "warn")`` when some samples did not converge."""


class Status(enum.IntEnum):
    """Per-sample outcome code stored in ``Solution.status``."""

    CONVERGED = 0
    MAX_ITER = 1  # the iteration budget ran out with the residual above the threshold
    STALLED = 2  # the line search found no admissible step above ``min_step``
    DIVERGED = 3  # the residual became non-finite or grew past the divergence bound
    SINGULAR = 4  # the residual test passed but the Hessian at the solution has no factor


def row_norm(x: Tensor) -> Tensor:
    """Euclidean norm of every sample (row) of a batch: ``|x_s|_2`` over all trailing dims."""
    return torch.linalg.vector_norm(x.reshape(x.shape[0], -1), dim=1)


@dataclass
class SolverStats:
    """Per-sample outcome of a batched solve (all tensors have shape ``(N,)``).

    Attributes:
        solver: name of the solver.
        iterations: iterations in which the sample was updated.
        residual: final residual of the returned iterate; ``residual_kind`` says which norm.
        threshold: the tolerance ``tol + rtol * scale`` the residual was compared with.
        converged: ``residual <= threshold``.
        residual_kind: ``"grad_norm"`` (|grad J|, objective solvers) or
            ``"fixed_point_residual"`` (|f(z) - z|, generic solvers).
    """

    solver: str
    iterations: Tensor
    residual: Tensor
    threshold: Tensor
    converged: Tensor
    residual_kind: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return int(self.converged.numel())

    @property
    def n_failed(self) -> int:
        return int((~self.converged).sum())

    @property
    def all_converged(self) -> bool:
        return bool(self.converged.all())

    @property
    def convergence_rate(self) -> float:
        return float(self.converged.double().mean()) if self.n_samples else 1.0

    def failed_indices(self) -> list[int]:
        return torch.nonzero(~self.converged).flatten().tolist()

    def summary(self) -> dict[str, Any]:
        """Plain-Python summary (counts, max residual, iteration range)."""
        it = self.iterations
        return {
            "solver": self.solver,
            "residual_kind": self.residual_kind,
            "n_samples": self.n_samples,
            "n_failed": self.n_failed,
            "max_residual": float(self.residual.max()) if self.n_samples else 0.0,
            "max_iterations": int(it.max()) if self.n_samples else 0,
            "mean_iterations": float(it.double().mean()) if self.n_samples else 0.0,
        }

    def __str__(self) -> str:
        s = self.summary()
        return (
            f"{s['solver']}: {s['n_samples'] - s['n_failed']}/{s['n_samples']} converged, "
            f"max {s['residual_kind']} {s['max_residual']:.3g}, "
            f"iterations <= {s['max_iterations']}"
        )


def sample_status(
    converged: Tensor,
    stalled: Tensor | None = None,
    diverged: Tensor | None = None,
    singular: Tensor | None = None,
) -> Tensor:
    """Per-sample ``Status`` codes (long tensor): the first that applies of converged,
    singular, diverged, stalled, else ``MAX_ITER``."""
    status = torch.full_like(converged, int(Status.MAX_ITER), dtype=torch.long)
    for mask, code in ((stalled, Status.STALLED), (diverged, Status.DIVERGED)):
        if mask is not None:
            status = status.masked_fill(mask, int(code))
    if singular is not None:
        status = status.masked_fill(singular, int(Status.SINGULAR))
    return status.masked_fill(converged, int(Status.CONVERGED))


@dataclass
class Solution:
    """The result of every solver.

    Attributes:
        value: the solution ``z*`` in the caller's shape.
        stats: its ``SolverStats``.
        factor: what the implicit backward reuses (the Cholesky factor of ``H(z*)`` for dense
            Newton, the block factor for the deep stack; ``None`` for generic solvers and CG).
        status: per-sample ``Status`` codes, shape ``(N,)``.

    Unpacks and indexes as ``(z, stats)``, the generic solvers' former tuple.
    """

    value: Tensor
    stats: SolverStats
    factor: Any = None
    status: Tensor | None = None

    def __post_init__(self) -> None:
        if self.status is None:
            self.status = sample_status(self.stats.converged)

    @property
    def converged(self) -> Tensor:
        return self.stats.converged

    @property
    def all_converged(self) -> bool:
        return self.stats.all_converged

    @property
    def z(self) -> Tensor:
        """``value`` (the former ``NewtonResult.z``)."""
        return self.value

    @property
    def cholesky(self) -> Tensor | None:
        """``factor`` when it is a dense Cholesky factor (the former ``NewtonResult.cholesky``)."""
        return self.factor if isinstance(self.factor, Tensor) else None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.value, self.stats))

    def __getitem__(self, index: int) -> Any:
        return (self.value, self.stats)[index]

    def __len__(self) -> int:
        return 2


#: The former name of the objective solvers' result.
NewtonResult = Solution


def check_convergence(stats: SolverStats, policy: str = "warn", what: str = "") -> None:
    """Apply a non-convergence policy: ``"raise"`` (ConvergenceError), ``"warn"``
    (ConvergenceWarning) or ``"ignore"``. The message names how many and which samples failed.
    """
    if policy not in POLICIES:
        raise ValueError(f"on_nonconvergence must be one of {POLICIES}, got {policy!r}")
    if policy == "ignore" or stats.all_converged:
        return
    failed = stats.failed_indices()
    shown = failed[:10]
    more = f" and {len(failed) - len(shown)} more" if len(failed) > len(shown) else ""
    worst = float(stats.residual[~stats.converged].max())
    prefix = f"{what}: " if what else ""
    message = (
        f"{prefix}{stats.solver} did not converge for {len(failed)} of {stats.n_samples} samples "
        f"(indices {shown}{more}); worst {stats.residual_kind} {worst:.3g} after "
        f"{int(stats.iterations.max())} iterations"
    )
    if policy == "raise":
        raise ConvergenceError(message)
    warnings.warn(message, ConvergenceWarning, stacklevel=2)
