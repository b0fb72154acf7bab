"""Bounded derivation: an optional SymPy step, a parameter substitution and a whole
derivation run within wall-clock budgets, with every SymPy failure, overrun or undefined
result turned into a :class:`~deqfam.derive.spec.SpecError` naming the field and its line.
The budgets are :mod:`deqfam.derive.spec`'s ``OPTIONAL_STEP_TIME_LIMIT`` and
``DERIVE_TIME_LIMIT``, read at call time so that they can be changed there."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import sympy as sp

from . import spec as spec_module
from .bounds import check_log_multipliers
from .budget import DeadlineExceeded, deadline
from .spec import ETA, FamilySpec, SpecError, Y, _Guard, _key_lines, _short, check_complexity

T_ = TypeVar("T_")


def optional_step(fn: Callable[[], T_], seconds: float | None = None) -> tuple[T_ | None, str]:
    """Run an optional derivation step (inverse link, convexity proof) within ``seconds``
    (default OPTIONAL_STEP_TIME_LIMIT). Returns ``(result, "")``, or ``(None, reason)`` when
    it timed out or SymPy failed in it, so the caller can fall back instead of refusing the
    spec. An enclosing :func:`run_derivation` budget still applies."""
    limit = spec_module.OPTIONAL_STEP_TIME_LIMIT if seconds is None else seconds
    try:
        with deadline(limit):
            return fn(), ""
    except DeadlineExceeded:
        return None, f"timed out after {limit:g} s"
    except RecursionError:
        return None, "SymPy exceeded the recursion limit"
    except (ArithmeticError, TypeError, ValueError, NotImplementedError, AttributeError) as exc:
        return None, f"SymPy failed: {type(exc).__name__}: {_short(exc, 120)}"


def _substitute_checked(expr: sp.Expr, values: dict[sp.Symbol, sp.Expr], guard: _Guard):
    """``expr.subs(values)`` rebuilt bottom-up through the guard, so that parameter values
    cannot produce a runaway constant (``c**c**c`` with ``c = 1000``)."""
    if not expr.has(*values):
        return expr
    if isinstance(expr, sp.Symbol):
        return values[expr]
    args = [_substitute_checked(a, values, guard) for a in expr.args]
    return guard.make(expr.func, args)


def _checked_fields(spec) -> list[tuple[str, sp.Expr | None, tuple[sp.Symbol, ...]]]:
    """(field, expression, its variables) of every expression of a scalar or vector spec that
    parameter values are substituted into (a vector statistic gives one entry per ``T_i``; a
    ``categories`` spec has no log-partition before it is expanded)."""
    if isinstance(spec, FamilySpec):
        return [
            ("log_partition", spec.log_partition, (ETA,)),
            ("sufficient_statistic", spec.sufficient_statistic, (Y,)),
            ("base_measure", spec.base_measure, (Y,)),
        ]
    return [
        ("log_partition", spec.log_partition, spec.natural_parameters),
        *(("sufficient_statistic", t, (Y,)) for t in spec.sufficient_statistic),
        ("base_measure", spec.base_measure, (Y,)),
    ]


def check_parameter_values(spec) -> None:
    """Check that substituting ``spec.parameters`` into the expressions of a scalar or vector
    spec stays within the limits of this module (finite, real, bounded constants; bounded
    powers; size, per variable)."""
    subs = {spec.parameter_symbols[k]: v for k, v in spec.parameters.items()}
    if not subs:
        return
    lines = _key_lines(spec.text)
    shown = ", ".join(f"{k}={v}" for k, v in spec.parameters.items())
    for fld, expr, variables in _checked_fields(spec):
        if expr is None:
            continue

        def fail(msg: str, fld: str = fld) -> None:
            raise SpecError(
                f"with parameters {shown}: {msg}",
                source=spec.source,
                field=fld,
                line=lines.get(fld),
            )

        value = _substitute_checked(expr, subs, _Guard(fail))
        if isinstance(value, sp.Expr) and value.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            fail("the expression becomes infinite or undefined")
        for var in variables:
            if var is not Y:
                check_log_multipliers(value, var, fail)
            check_complexity(value, var, fail)


_DERIVATIVES = (("A", "A"), ("sigma", "A'"), ("dsigma", "A''"), ("d2sigma", "A'''"))


def scalar_derivatives(family) -> list[tuple[str, sp.Basic]]:
    """(label, expression) of A and its first three derivatives of a derived ``Family``."""
    return [(what, getattr(family, name, None)) for name, what in _DERIVATIVES]


def run_derivation(
    spec: FamilySpec,
    derive: Callable[[FamilySpec], T_],
    time_limit: float | None = None,
    derived: Callable[[T_], list[tuple[str, sp.Basic]]] = scalar_derivatives,
) -> T_:
    """Run ``derive(spec)`` (the SymPy derivation of a scalar or vector spec) behind the
    trust boundary.

    Parameter values are checked first (:func:`check_parameter_values`), the derivation gets
    ``time_limit`` seconds (default DERIVE_TIME_LIMIT), and any SymPy failure, overrun or
    undefined derivative (``zoo``/``nan`` in an expression of ``derived(result)``, a list of
    ``(label, expression)``: by default A and its first three derivatives) becomes a
    :class:`SpecError` naming the field ``log_partition`` and its line.
    """
    lines = _key_lines(spec.text)
    fld = "log_partition"

    def error(msg: str) -> SpecError:
        return SpecError(msg, source=spec.source, field=fld, line=lines.get(fld))

    check_parameter_values(spec)
    limit = spec_module.DERIVE_TIME_LIMIT if time_limit is None else time_limit
    try:
        with deadline(limit):
            result = derive(spec)
            for what, expr in derived(result):
                if isinstance(expr, sp.Basic) and expr.has(sp.zoo, sp.nan):
                    raise error(f"{what} of log_partition is undefined: {_short(expr)}")
    except SpecError:
        raise
    except DeadlineExceeded:
        raise error(
            f"deriving the family took longer than {limit:g} s; log_partition is too complex "
            "for the symbolic derivation (simplify it)"
        ) from None
    except RecursionError:
        raise error(
            "the symbolic derivation exceeded the recursion limit; log_partition is too complex"
        ) from None
    except MemoryError:
        raise error("the symbolic derivation ran out of memory") from None
    except Exception as exc:  # SymPy internals: report, chained for debugging
        raise error(
            f"SymPy failed while deriving the family: {type(exc).__name__}: {_short(exc, 200)}"
        ) from exc
    return result
