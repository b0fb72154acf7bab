"""Bounds on the numbers of a spec that drive work (called by ``derive.spec`` and the series
stage of the admissibility check).

``derive.spec`` already bounds every constant (MAX_NUMBER), numeric exponents
(MAX_LITERAL_EXPONENT, MAX_SYMBOLIC_POWER) and fully numeric special-function arguments
(MAX_SPECIAL_ARG). These bounds close the remaining ways a single number makes the work
explode; each was chosen so that every built-in family and every example stays valid, and
so that the worst accepted spec finishes ``check`` + ``generate`` + ``export`` in well under
the default time budget (figures in docs/reliability.md, "Round 2: bounded work"):

- the **order s of polylog(s, w)**, also when it comes from a parameter (Bose-Einstein's
  ``polylog(j + 1, ...)``): the check's exact series uses ``k**s`` (an integer of
  ``s*log2(k)`` bits: one uninterruptible C call for s = 10**9), and mpmath's polylog of a
  negative order costs time ~ |s|**2 per point;
- the **constant offset of a factorial/gamma/loggamma/binomial argument** (``gamma(y + r)``
  with r = 10**6 is rewritten by SymPy into the exact integer ``factorial(r - 1)``);
- the **multiplier c of a log term** ``c*log(u(eta))`` of A: ``exp(A)`` is then ``u**c``, a
  polynomial of degree ~c in ``e^eta`` (Binomial's ``n*log(1 + exp(eta))``), which the series
  stage expands;
- the **length of the exact series** of ``exp(A)`` (:data:`MAX_SERIES_TERMS`): products cost
  ~K**2 big rationals, so a longer polynomial is skipped with a note instead of expanded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sympy as sp

#: largest |s| of polylog(s, w) (Bose-Einstein/Fermi-Dirac use s = j + 1 with j of order 1)
MAX_POLYLOG_ORDER = 100
#: largest |c| of the constant term of a factorial/gamma/loggamma/binomial argument
MAX_SPECIAL_OFFSET = 1000
#: largest |c| of a term c*log(u(eta)) of log_partition (Binomial's n: at most 1000 trials)
MAX_LOG_MULTIPLIER = 1000
#: longest exact series of exp(A) in x = e^eta the check expands (polynomial degree + 1)
MAX_SERIES_TERMS = 256

#: functions whose arguments' constant offsets are bounded by MAX_SPECIAL_OFFSET
_OFFSET_FUNCS = {"factorial", "gamma", "loggamma", "binomial"}


def _number(expr: sp.Expr) -> float | None:
    """``expr`` as a float when it is a real number SymPy can evaluate cheaply, else None."""
    if not (isinstance(expr, sp.Expr) and expr.is_number):
        return None
    try:
        value = complex(sp.N(expr, 15))
    except (TypeError, ValueError, ArithmeticError):
        return None
    return value.real


def check_call_bounds(name: str, args: list[sp.Expr], fail: Callable[[str], Any]) -> None:
    """Bounds on a call ``name(*args)`` before SymPy evaluates it: a numeric polylog order is
    at most MAX_POLYLOG_ORDER in magnitude; the constant term c of each argument of
    factorial/gamma/loggamma/binomial (``gamma(y + c)``) at most MAX_SPECIAL_OFFSET."""
    if name == "polylog" and args:
        s = _number(args[0])
        if s is not None and abs(s) > MAX_POLYLOG_ORDER:
            fail(
                f"polylog order {_short(args[0])} (= {s:.6g}): the order of polylog is limited "
                f"to |s| <= {MAX_POLYLOG_ORDER} (MAX_POLYLOG_ORDER)"
            )
    if name in _OFFSET_FUNCS:
        for a in args:
            if a.is_number:
                continue  # whole numeric arguments: MAX_SPECIAL_ARG in derive.spec
            c = _number(sp.Add.make_args(a)[0]) if isinstance(a, sp.Add) else None
            if c is not None and abs(c) > MAX_SPECIAL_OFFSET:
                fail(
                    f"{name}({_short(a)}): the constant term {c:.6g} of a {name} argument is "
                    f"limited to |c| <= {MAX_SPECIAL_OFFSET} (MAX_SPECIAL_OFFSET)"
                )


def check_log_multipliers(A: sp.Expr, eta: sp.Symbol, fail: Callable[[str], Any]) -> None:
    """Each term ``c*log(u)`` of ``A`` with u depending on eta has |c| <= MAX_LOG_MULTIPLIER
    (``exp(A)`` contains ``u**c``: a polynomial of degree ~|c| in e^eta)."""
    for term in sp.Add.make_args(sp.expand_mul(A) if A.is_Mul else A):
        c, rest = term.as_coeff_Mul()
        logs = [f for f in sp.Mul.make_args(rest) if isinstance(f, sp.log) and f.has(eta)]
        value = _number(c)
        if logs and value is not None and abs(value) > MAX_LOG_MULTIPLIER:
            fail(
                f"term {_short(term)}: the multiplier {value:.6g} of log(...) makes exp(A) a "
                f"power of degree ~{abs(value):.3g}; limited to |c| <= {MAX_LOG_MULTIPLIER} "
                "(MAX_LOG_MULTIPLIER)"
            )


def polynomial_degree_bound(expr: sp.Expr, x: sp.Symbol) -> int:
    """An upper bound of the degree in ``x`` of a polynomial ``expr``, read from the tree
    without expanding it: deg(a + b) <= max, deg(a*b) <= sum, deg(a**n) <= n deg(a)."""
    if not expr.has(x):
        return 0
    if expr == x:
        return 1
    if expr.is_Add:
        return max(polynomial_degree_bound(a, x) for a in expr.args)
    if expr.is_Mul:
        return sum(polynomial_degree_bound(a, x) for a in expr.args)
    if expr.is_Pow and expr.exp.is_Integer and int(expr.exp) >= 0:
        return int(expr.exp) * polynomial_degree_bound(expr.base, x)
    raise ValueError(f"not a polynomial in {x}: {_short(expr)}")


def series_too_long(expr: sp.Expr, x: sp.Symbol) -> str | None:
    """Why the exact series stage should skip the polynomial ``expr`` (None: it may run)."""
    degree = polynomial_degree_bound(expr, x)
    if degree + 1 <= MAX_SERIES_TERMS:
        return None
    return (
        f"exp(A) is a polynomial of degree up to {degree} in x = e^eta; the exact series is "
        f"limited to {MAX_SERIES_TERMS} terms (MAX_SERIES_TERMS)"
    )


def _short(expr: Any, limit: int = 60) -> str:
    text = str(expr)
    return text if len(text) <= limit else text[: limit - 3] + "..."
