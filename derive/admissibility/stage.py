"""The stage interface: a :class:`Context` in, a :class:`StageResult` out.

Every stage of the check (one module each under :mod:`.stages`) is a :class:`Stage`: it has
a ``name`` (the progress label, e.g. ``"fourier@0.25"``), the evidence ``stage`` it reports
under when it breaks down, whether it still runs when the declared domain failed, and
``run(context) -> StageResult``. The checker (:mod:`.checker`) only knows this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from ..family import Family
from ..spec import ETA
from .path import PathEvaluator
from .report import Evidence, TiltCurve


@dataclass(frozen=True)
class Context:
    """What every stage reads: the family, ``A = A_rest + shift * eta`` (the linear term is a
    shift of the measure), the declared domain, the tilts, mpmath callables of ``A``,
    ``A_rest``, ``A_rest'``, ``A''`` and the complex-path evaluator of ``A_rest``."""

    family: Family
    A: sp.Expr
    A_rest: sp.Expr
    shift: sp.Expr
    domain: tuple[sp.Expr, sp.Expr]
    tilts: tuple[float, ...]
    fA: Callable
    fA_rest: Callable
    fdA_rest: Callable
    fd2A: Callable
    evaluator: PathEvaluator


def split_linear(A: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """A = A_rest + b eta, b the coefficient of the terms exactly linear in eta."""
    b = sp.S.Zero
    rest = []
    for t in sp.Add.make_args(A):
        if t.is_polynomial(ETA) and t.has(ETA) and sp.Poly(t, ETA).degree() == 1:
            coeff = sp.Poly(t, ETA).all_coeffs()[0]
            if coeff.is_number:
                b += coeff
                continue
        rest.append(t)
    return sp.Add(*rest), b


def build_context(family: Family, tilts: tuple[float, ...]) -> Context:
    """The :class:`Context` of ``family`` at ``tilts`` (lambdified once for all stages)."""
    A = family.A
    A_rest, b = split_linear(A)
    return Context(
        family=family,
        A=A,
        A_rest=A_rest,
        shift=b,
        domain=family.domain,
        tilts=tilts,
        fA=family.mpmath_function(A),
        fA_rest=family.mpmath_function(A_rest),
        fdA_rest=family.mpmath_function(sp.diff(A_rest, ETA)),
        fd2A=family.mpmath_function(family.dsigma),
        evaluator=PathEvaluator(A_rest),
    )


@dataclass(frozen=True)
class StageResult:
    """What a stage found: its evidence items and the Fourier curves behind them (if any)."""

    evidence: tuple[Evidence, ...]
    curves: tuple[TiltCurve, ...] = ()

    @classmethod
    def of(cls, *evidence: Evidence) -> StageResult:
        """A result of evidence items only."""
        return cls(tuple(evidence))

    def failed(self) -> bool:
        """True when some item failed (``outcome == "fail"``)."""
        return any(e.outcome == "fail" for e in self.evidence)


class Stage(ABC):
    """One stage of the admissibility check.

    Attributes:
        name: progress label (``"domain"``, ``"fourier@0.25"``, ...).
        stage: the evidence stage reported when :meth:`run` breaks down numerically.
        after_bad_domain: still meaningful when the declared domain failed (symbolic stages).
    """

    name: str
    stage: str
    after_bad_domain: bool = False

    @abstractmethod
    def run(self, ctx: Context) -> StageResult:
        """Run the stage on ``ctx``."""
