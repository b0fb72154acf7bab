"""Solver options: one frozen ``SolverConfig`` that every solver reads (each the fields that
concern it), validated once, with a 'did you mean' message for misspelt option names."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from typing import Any

import torch


@dataclass(frozen=True)
class SolverConfig:
    """Options shared by all solvers (each solver reads the ones that concern it).

    Convergence of sample ``s`` is ``residual_s <= tol + rtol * scale_s`` where ``scale_s`` is
    the magnitude of the terms whose cancellation gives the residual (for Newton
    ``lam|z| + | |W|^T (|T(Y)| + |sigma|) |``, for the generic solvers ``|f(z)|``), so that a
    tolerance below rounding level is not demanded of large-count data.

    Attributes:
        tol: absolute tolerance on the residual.
        rtol: relative tolerance; ``None`` means ``100 * eps`` of the working dtype.
        max_iter: maximum number of (outer) iterations.
        damping: relaxation ``beta`` in ``z <- (1 - beta) z + beta f(z)`` (fixed_point, anderson)
            or the step length of the Broyden step.
        memory: history length of Anderson acceleration / rank limit of Broyden's inverse.
        anderson_reg: Tikhonov regularisation of Anderson's least squares, relative to the
            mean squared residual in the history.
        restart_growth: generic solvers restart from the best iterate (clearing their history)
            when the residual exceeds ``restart_growth`` times the best residual so far.
        divergence_factor: a sample whose residual exceeds this factor times its initial
            residual (or is not finite) under ``fixed_point`` is marked failed and frozen at its
            best iterate.
        armijo_c: sufficient-decrease constant ``c`` in ``J(z + t d) <= J(z) + c t grad^T d``.
        backtrack_factor: step shrink factor of the line search.
        line_search_steps: number of trial steps ``t_k = scale * factor^k`` evaluated at once
            (batched) per Newton iteration, so the line search costs no host synchronisation.
        min_step: a sample whose admissible step falls below this is declared stalled (failed).
        cg_rtol: relative residual tolerance of conjugate gradients in implicit backward solves
            and the final Newton-CG steps.
        cg_max_iter: maximum CG iterations per solve (``None``: ``2 * latent_dim + 20``).
    """

    tol: float = 1e-10
    rtol: float | None = None
    max_iter: int = 100
    damping: float = 1.0
    memory: int = 5
    anderson_reg: float = 1e-10
    restart_growth: float = 1e3
    divergence_factor: float = 1e10
    armijo_c: float = 1e-4
    backtrack_factor: float = 0.5
    line_search_steps: int = 3
    min_step: float = 1e-20
    cg_rtol: float = 1e-12
    cg_max_iter: int | None = None

    def __post_init__(self) -> None:
        positive = (
            "tol",
            "anderson_reg",
            "restart_growth",
            "divergence_factor",
            "min_step",
            "cg_rtol",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"solver option {name} must be > 0, got {getattr(self, name)!r}")
        if self.rtol is not None and self.rtol < 0:
            raise ValueError(f"solver option rtol must be >= 0, got {self.rtol!r}")
        for name in ("max_iter", "memory", "line_search_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"solver option {name} must be an integer >= 1, got {value!r}")
        if self.cg_max_iter is not None and self.cg_max_iter < 1:
            raise ValueError(f"solver option cg_max_iter must be >= 1, got {self.cg_max_iter!r}")
        if not 0 < self.damping <= 2:
            raise ValueError(f"solver option damping must be in (0, 2], got {self.damping!r}")
        if not 0 < self.armijo_c < 0.5:
            raise ValueError(f"solver option armijo_c must be in (0, 0.5), got {self.armijo_c!r}")
        if not 0 < self.backtrack_factor < 1:
            raise ValueError(
                f"solver option backtrack_factor must be in (0, 1), got {self.backtrack_factor!r}"
            )

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, options: dict[str, Any] | None) -> SolverConfig:
        """Build a config, rejecting unknown keys with a 'did you mean' suggestion."""
        options = dict(options or {})
        valid = cls.option_names()
        for key in options:
            if key not in valid:
                close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.4)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"unknown solver option {key!r}{hint} (valid options: {', '.join(valid)})"
                )
        return cls(**options)

    def resolved_rtol(self, dtype: torch.dtype) -> float:
        """``rtol`` or its dtype-dependent default ``100 * eps``."""
        if self.rtol is not None:
            return self.rtol
        return 100.0 * torch.finfo(dtype).eps


def make_config(**options: Any) -> SolverConfig:
    """``SolverConfig.from_dict(options)``: keyword form, same validation."""
    return SolverConfig.from_dict(options)


def as_config(config: SolverConfig | dict[str, Any] | None) -> SolverConfig:
    """Accept a SolverConfig, a dict of options (validated) or None (defaults)."""
    if isinstance(config, SolverConfig):
        return config
    return SolverConfig.from_dict(config)
