"""The context every vector stage reads, and the vector stage interface.

:class:`VectorContext` holds the view, ``A`` with its gradient and Hessian as SymPy
expressions, their float64 (numpy/scipy) and mpmath callables, and the seed of every random
choice (lines, sample points), so a check is deterministic. A :class:`VectorStage` maps the
context to a :class:`..stage.StageResult` (the scalar check's result type).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..stage import StageResult
from .view import VectorSpecView


@dataclass(frozen=True)
class VectorContext:
    """The view, ``A``, ``grad A``, ``Hess A`` (SymPy), their numpy and mpmath callables
    (arguments: the ``k`` coordinates), and the seed of the check."""

    view: VectorSpecView
    A: sp.Expr
    grad: tuple[sp.Expr, ...]
    hessian: sp.Matrix
    fA: Callable
    fhess: Callable
    mp_A: Callable
    mp_hess: Callable
    seed: int

    @property
    def etas(self) -> tuple[sp.Symbol, ...]:
        return self.view.etas

    def hessian_at(self, point: np.ndarray) -> np.ndarray:
        """Hess A at one point in float64 (a k x k array; NaN where not evaluable)."""
        with np.errstate(all="ignore"):
            try:
                H = np.asarray(self.fhess(*point), dtype=float)
            except (ArithmeticError, ValueError, TypeError):
                return np.full((self.view.k, self.view.k), np.nan)
        return H.reshape(self.view.k, self.view.k)


def build_vector_context(view: VectorSpecView, seed: int = 0) -> VectorContext:
    """Differentiate A twice and lambdify (numpy/scipy for grids, mpmath for witnesses)."""
    A = view.plain_A
    etas = view.etas
    grad = tuple(sp.diff(A, e) for e in etas)
    H = sp.Matrix(view.k, view.k, lambda i, j: sp.diff(grad[i], etas[j]))
    modules = ["scipy", "numpy"]
    return VectorContext(
        view=view,
        A=A,
        grad=grad,
        hessian=H,
        fA=sp.lambdify(etas, A, modules=modules),
        fhess=sp.lambdify(etas, H, modules=modules),
        mp_A=sp.lambdify(etas, A, modules="mpmath"),
        mp_hess=sp.lambdify(etas, H, modules="mpmath"),
        seed=seed,
    )


class VectorStage(ABC):
    """One stage of the vector check: ``name`` (progress label), ``stage`` (the evidence
    stage reported if :meth:`run` breaks down numerically)."""

    name: str
    stage: str

    @abstractmethod
    def run(self, ctx: VectorContext) -> StageResult:
        """Run the stage on ``ctx``."""
