"""Rewrite expressions onto the stable primitives of :mod:`deqfam.derive.primitives`.

A bottom-up pass recognises the numerically fragile patterns of log-partition functions
and replaces them by primitives whose derivatives stay inside the primitive set:

* ``log(1 + e^u)``        -> ``softplus(u)``       (overflows at u ~ 710 in float64)
* ``log(1 - e^u)``        -> ``-polylog_exp(1, u)`` (cancellation near u -> 0-)
* ``log(cosh u)``         -> ``logcosh(u)``
* ``log((e^u - 1)/u)``    -> ``logexpm1x(0, u)``  (removable singularity at 0)
* ``log(e^u - 1)``        -> ``logexpm1(u)``      (overflows at u ~ 710; expm1 for small u)
* ``log(e^(e^u) - 1)``    -> ``logexpm1exp(0, u)`` (nested: inf at u = -40, nan from u = 7
  as printed plainly; its derivatives stay on the same primitive, so A', A'' keep their
  accuracy as u -> -oo where the chain rule would cancel)
* ``e^u - Li_1(e^(-e^u))`` (the hand-written ``e^u + log(1 - exp(-e^u))``) -> ``logexpm1exp(0, u)``
* ``polylog(s, e^u)``     -> ``polylog_exp(s, u)``; ``polylog(s, -e^u)`` -> ``-fermi_dirac(s, u)``
* ``e^u / (1 + e^u)``     -> ``sigmoid(u)``
* ``1 - tanh(u)^2``        -> ``4 sigmoid(2u) sigmoid(-2u)`` (cancellation for large |u|)

after which the rules that entries of :mod:`deqfam.derive.primitive_table` declare are tried
(e.g. ``log(polylog_exp(1, u))`` -> ``logli1exp(0, u)``, log Li_1(e^u) of the logarithmic
series, whose derivatives cancel as u -> -oo when printed through Li_0/Li_1).

We do not run ``sympy.codegen.rewriting.optimize`` here: it turns ``log(1 + exp(-|x|))``
into a form that overflows.
"""

from __future__ import annotations

import sympy as sp

from .primitive_table import rules_for
from .primitives import (
    fermi_dirac,
    logcosh,
    logexpm1,
    logexpm1exp,
    logexpm1x,
    polylog_exp,
    sigmoid,
    softplus,
)


def _exp_arg(e: sp.Expr) -> sp.Expr | None:
    """u if ``e`` is exp(u), else None."""
    return e.args[0] if isinstance(e, sp.exp) else None


def _one_plus_exp(e: sp.Expr, sign: int) -> sp.Expr | None:
    """u if ``e`` is 1 + sign*exp(u), else None."""
    if not (isinstance(e, sp.Add) and len(e.args) == 2 and sp.S.One in e.args):
        return None
    return _exp_arg(sign * (e - 1))


def _exp_minus_one(e: sp.Expr) -> sp.Expr | None:
    """u if ``e`` is exp(u) - 1, else None."""
    if not (isinstance(e, sp.Add) and len(e.args) == 2 and sp.S.NegativeOne in e.args):
        return None
    return _exp_arg(e + 1)


def _rewrite_nested_log1mexp(e: sp.Add) -> sp.Expr | None:
    """exp(u) - polylog_exp(1, -exp(u)) + rest -> logexpm1exp(0, u) + rest.

    log(e^(e^u) - 1) = e^u + log(1 - e^(-e^u)): a user's hand-stabilised spelling, which the
    log rule has already turned into exp(u) - polylog_exp(1, -exp(u)). Its derivatives would
    cancel as u -> -oo (e^u and e^u Li_0(e^(-e^u)) ~ 1 both grow terms of size 1/e^u^k).
    """
    for term in e.args:
        if isinstance(term, sp.Mul) and term.args[0] == -1 and len(term.args) == 2:
            li = term.args[1]
            if isinstance(li, polylog_exp) and li.args[0] == 1:
                inner = _exp_arg(-li.args[1])
                if inner is not None and sp.exp(inner) in e.args:
                    return e - sp.exp(inner) - term + logexpm1exp(0, inner)
    return None


def _expm1_over_u(e: sp.Expr) -> sp.Expr | None:
    """u if ``e`` is (exp(u) - 1)/u, else None."""
    num, den = sp.fraction(sp.together(e))
    u = _exp_arg(sp.expand(num + 1))
    if u is not None and sp.simplify(den - u) == 0:
        return u
    u = _exp_arg(sp.expand(1 - num))  # (1 - e^u)/(-u)
    if u is not None and sp.simplify(den + u) == 0:
        return u
    return None


def _rewrite_log(arg: sp.Expr) -> sp.Expr | None:
    u = _one_plus_exp(arg, +1)
    if u is not None:
        return softplus(u)
    u = _one_plus_exp(arg, -1)
    if u is not None:
        return -polylog_exp(1, u)
    u = _exp_minus_one(arg)
    if u is not None:
        inner = _exp_arg(u)
        return logexpm1exp(0, inner) if inner is not None else logexpm1(u)
    if isinstance(arg, sp.cosh):
        return logcosh(arg.args[0])
    if isinstance(arg, sp.exp):
        return arg.args[0]
    if arg.has(sp.exp):
        u = _expm1_over_u(arg)
        if u is not None:
            return logexpm1x(0, u)
    return None


def _rewrite_polylog(s: sp.Expr, z: sp.Expr) -> sp.Expr | None:
    u = _exp_arg(z)
    if u is not None:
        return polylog_exp(s, u)
    u = _exp_arg(-z)
    if u is not None:
        return -fermi_dirac(s, u)
    return None


def _rewrite_sigmoid(e: sp.Expr) -> sp.Expr | None:
    """exp(u)/(1 + exp(u)) -> sigmoid(u)."""
    num, den = sp.fraction(e)
    u = _exp_arg(num)
    if u is not None and sp.expand(den - num - 1) == 0:
        return sigmoid(u)
    return None


def _rewrite_sech2(e: sp.Expr) -> sp.Expr | None:
    """1 - tanh(u)^2 -> 4 sigmoid(2u) sigmoid(-2u) (no cancellation for large |u|)."""
    if not (isinstance(e, sp.Add) and len(e.args) == 2 and sp.S.One in e.args):
        return None
    rest = -(e - 1)
    if isinstance(rest, sp.Pow) and rest.exp == 2 and isinstance(rest.base, sp.tanh):
        u = rest.base.args[0]
        return 4 * sigmoid(2 * u) * sigmoid(-2 * u)
    return None


def _rewrite_node(e: sp.Expr) -> sp.Expr:
    new = None
    if isinstance(e, sp.Add):
        new = _rewrite_sech2(e)
        new = new if new is not None else _rewrite_nested_log1mexp(e)
    elif isinstance(e, sp.log):
        new = _rewrite_log(e.args[0])
    elif isinstance(e, sp.polylog):
        new = _rewrite_polylog(*e.args)
    elif isinstance(e, sp.Mul):
        new = _rewrite_sigmoid(e)
    for rule in rules_for(e) if new is None else ():
        new = rule(e)
        if new is not None:
            break
    return e if new is None else new


def stabilize(expr: sp.Expr) -> sp.Expr:
    """Rewrite ``expr`` bottom-up onto stable primitives (mathematically equal)."""
    if expr.is_Atom or not expr.args:
        return expr
    args = [stabilize(a) for a in expr.args]
    rebuilt = expr.func(*args) if args != list(expr.args) else expr
    return _rewrite_node(rebuilt)
