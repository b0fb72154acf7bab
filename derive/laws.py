"""Which known law a family *is*: symbolic identification for the exact samplers.

A spec's name says nothing about its law (a user spec called ``poisson`` may have
``A = 2 e^eta``), so the generated module's ``FAMILY.exact_sampler`` is chosen here from the
family's own expressions. Each known law is a row of :data:`LAWS`: its support, its
log-partition ``A_law(eta; theta)`` in SymPy with the law's parameters ``theta``, a pattern
(SymPy ``Wild`` s) that proposes ``theta`` from the family's ``A``, and the range of valid
``theta``.

A family matches a law when ``T(y) = y``, the supports agree and
``d/d eta [A_family(eta) - A_law(eta; theta)] = 0`` simplifies to zero. That is enough: with
``T(y) = y`` the moment generating function of ``y`` under ``eta`` is
``exp(A(eta + t) - A(eta))`` near ``t = 0``, so ``A`` up to an additive constant determines
the law (``h`` and the constant only normalise it). The pattern only proposes ``theta``; the
derivative identity is the proof. The whole identification runs under a time bound
(:data:`IDENTIFY_TIME_LIMIT`); a family that matches nothing, or whose identity SymPy cannot
prove within it, gets the generic sampler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import mpmath
import sympy as sp

from deqfam.vocab import Support

from .family import Family
from .spec import ETA, Y
from .spec_derivation import optional_step

#: seconds allowed for identifying one family's law
IDENTIFY_TIME_LIMIT = 5.0

Params = dict[str, sp.Expr]


def _wild(name: str) -> sp.Wild:
    """A pattern variable that stands for a constant (free of eta)."""
    return sp.Wild(name, exclude=[ETA])


def _positive(*names: str) -> Callable[[Params], bool]:
    return lambda p: all(bool(p[n].is_positive) for n in names)


def _positive_integer(p: Params, name: str) -> bool:
    return bool(p[name].is_integer) and bool(p[name].is_positive)


@dataclass(frozen=True)
class Law:
    """A known law: ``A_law(eta; theta)`` on ``support``, with a pattern proposing ``theta``.

    Attributes:
        name: the law's sampler name (``runtime.sampling.EXACT_SAMPLERS``).
        support: the law's support.
        log_partition: ``A_law`` as a function of the parameter values ``theta``.
        pattern: a SymPy pattern (with ``Wild`` s) in ``eta`` that ``A_family`` may match.
        bind: ``theta`` from the pattern's match.
        valid: whether ``theta`` lies in the law's parameter range.
    """

    name: str
    support: Support
    log_partition: Callable[[Params], sp.Expr]
    pattern: sp.Expr
    bind: Callable[[dict], Params]
    valid: Callable[[Params], bool]


_C, _S, _B = _wild("c"), _wild("s"), _wild("b")
_E = sp.exp(ETA)

LAWS: tuple[Law, ...] = (
    Law(
        "gaussian",  # N(v eta, v): A = v eta^2 / 2
        Support.REAL,
        lambda p: p["variance"] * ETA**2 / 2,
        _C * ETA**2,
        lambda m: {"variance": 2 * m[_C]},
        _positive("variance"),
    ),
    Law(
        "bernoulli",  # P(y = 1) = sigmoid(eta): A = log(1 + e^eta)
        Support.BINARY,
        lambda p: sp.log(1 + _E),
        sp.log(1 + _E),
        lambda m: {},
        lambda p: True,
    ),
    Law(
        "ising",  # y in {-1, 1}, P(y = 1) = sigmoid(2 eta): A = log cosh(eta) (+ log 2)
        Support.PLUS_MINUS_ONE,
        lambda p: sp.log(sp.cosh(ETA)),
        sp.log(sp.cosh(ETA)),
        lambda m: {},
        lambda p: True,
    ),
    Law(
        "poisson",  # Poisson(c e^eta): A = c e^eta
        Support.NONNEGATIVE_INTEGERS,
        lambda p: p["scale"] * _E,
        _C * _E,
        lambda m: {"scale": m[_C]},
        _positive("scale"),
    ),
    Law(
        "binomial",  # Binomial(n, sigmoid(eta)): A = n log(1 + e^eta)
        Support.NONNEGATIVE_INTEGERS,
        lambda p: p["n"] * sp.log(1 + _E),
        _C * sp.log(1 + _E),
        lambda m: {"n": m[_C]},
        lambda p: _positive_integer(p, "n"),
    ),
    Law(
        "gamma",  # Gamma(shape k, rate -eta): A = -k log(-eta)
        Support.POSITIVE_REAL,
        lambda p: -p["k"] * sp.log(-ETA),
        _C * sp.log(-ETA),
        lambda m: {"k": -m[_C]},
        _positive("k"),
    ),
    Law(
        "negative_binomial",  # r failures, success probability e^eta: A = -r log(1 - e^eta)
        Support.NONNEGATIVE_INTEGERS,
        lambda p: -p["r"] * sp.log(1 - _E),
        _C * sp.log(1 - _E),
        lambda m: {"r": -m[_C]},
        _positive("r"),
    ),
    Law(
        "continuous_bernoulli",  # density prop. to e^{eta y} on [0, 1]
        Support.UNIT_INTERVAL,
        lambda p: sp.log((_E - 1) / ETA),
        sp.log((_E - 1) / ETA),
        lambda m: {},
        lambda p: True,
    ),
    Law(
        "bose_einstein",  # A = Li_{j+1}(e^{beta eta}) / beta^{j+1}, compound Poisson on beta N
        Support.NONNEGATIVE_INTEGERS,
        lambda p: sp.polylog(p["j"] + 1, sp.exp(p["beta"] * ETA)) / p["beta"] ** (p["j"] + 1),
        _C * sp.polylog(_S, sp.exp(_B * ETA)),
        lambda m: {"j": m[_S] - 1, "beta": m[_B]},
        # integer beta keeps the law's support beta * N inside the nonnegative integers
        lambda p: _positive_integer(p, "beta") and bool(p["j"].is_real),
    ),
)


@dataclass(frozen=True)
class LawMatch:
    """The law a family was proven to be, with the law's parameter values."""

    law: str
    parameters: dict[str, float]


def _candidate_forms(A: sp.Expr) -> list[sp.Expr]:
    """``A`` and ``A`` with its additive constant dropped (also after expanding logs, so that
    ``log(2 cosh eta)`` offers ``log(cosh eta)``): the pattern match is structural."""
    forms = [A]
    for expr in (A, sp.expand_log(A, force=True)):
        rest = expr.as_independent(ETA, as_Add=True)[1]
        if rest not in forms:
            forms.append(rest)
    return forms


def _probe_points(family: Family) -> list[float]:
    """Three points inside the domain (for the quick numeric screen)."""
    lo, hi = family.domain_floats
    if hi == float("inf") and lo == float("-inf"):
        return [-0.7, 0.3, 1.1]
    if hi == float("inf"):
        return [lo + 0.3, lo + 1.1, lo + 2.5]
    if lo == float("-inf"):
        return [hi - 0.3, hi - 1.1, hi - 2.5]
    return [lo + (hi - lo) * t for t in (0.2, 0.5, 0.7)]


def _same_up_to_constant(family: Family, A_law: sp.Expr) -> bool:
    """``d/d eta (A_family - A_law) == 0``: screened numerically (mpmath, 30 digits) at three
    domain points, then proven by ``sp.simplify``."""
    diff = sp.diff(family.A - A_law, ETA)
    with mpmath.workdps(30):
        for x in _probe_points(family):
            value = complex(diff.subs(ETA, sp.Float(x, 30)).evalf(30))
            if not abs(value) < 1e-20:
                return False
    return sp.simplify(diff) == 0


def _match_law(family: Family, law: Law) -> LawMatch | None:
    for form in _candidate_forms(family.A):
        found = form.match(law.pattern)
        if found is None:
            continue
        params = {k: sp.nsimplify(v) for k, v in law.bind(found).items()}
        if law.valid(params) and _same_up_to_constant(family, law.log_partition(params)):
            return LawMatch(law.name, {k: float(v) for k, v in params.items()})
    return None


def find_law(family: Family) -> LawMatch | None:
    """The first law of :data:`LAWS` that ``family`` provably is (no time bound)."""
    if sp.simplify(family.T - Y) != 0:
        return None
    for law in LAWS:
        if str(law.support) != str(family.support):
            continue
        found = _match_law(family, law)
        if found is not None:
            return found
    return None


def identify_law(family: Family, seconds: float = IDENTIFY_TIME_LIMIT) -> LawMatch | None:
    """:func:`find_law` within ``seconds``; ``None`` (the generic sampler) when it runs out or
    SymPy fails."""
    found, _reason = optional_step(lambda: find_law(family), seconds)
    return found


__all__ = ["IDENTIFY_TIME_LIMIT", "LAWS", "Law", "LawMatch", "find_law", "identify_law"]
