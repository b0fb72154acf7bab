"""Which known law a vector family *is* (for ``FAMILY.exact_sampler``), proven symbolically.

As for scalar families (``derive/laws.py``), a spec's name decides nothing. A family is the
law of a row of :data:`VECTOR_LAWS` when its support is the law's, its statistic ``T`` equals
the law's entry by entry, and ``grad (A_family - A_law) = 0`` simplifies to zero: with the
same ``T``, ``A`` up to a constant fixes the moment generating function of ``T(y)`` at every
``eta``, hence the law. The sampler ([vecrun], ``runtime``) draws from natural parameters
``eta``; the only law parameter is the categorical's number of categories.

=====================  ==================  ===============================================
law                    T(y)                A(eta)
=====================  ==================  ===============================================
normal                 (y, y^2)            -eta1^2/(4 eta2) - log(-2 eta2)/2
gamma_shape            (log y, y)          lgamma(eta1 + 1) - (eta1 + 1) log(-eta2)
beta                   (log y, log(1-y))   lgamma(eta1+1) + lgamma(eta2+1) - lgamma(eta1+eta2+2)
inverse_gaussian       (y, 1/y)            -2 sqrt(eta1 eta2) - log(-2 eta2)/2
categorical            ([y == i])_i        log(1 + sum_i exp(eta_i)), K = k + 1
=====================  ==================  ===============================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from deqfam.vocab import Support

from .codegen import float_literal
from .spec import Y
from .spec_derivation import optional_step
from .vector_derivation import VectorFamily

#: seconds allowed for identifying one family's law
IDENTIFY_TIME_LIMIT = 5.0


@dataclass(frozen=True)
class VectorLaw:
    """A known law: its statistic and log-partition in the family's own symbols."""

    name: str
    support: Support
    statistic: Callable[[int], tuple[sp.Expr, ...] | None]
    log_partition: Callable[[tuple[sp.Symbol, ...]], sp.Expr | None]
    parameters: Callable[[int], dict[str, int]] = lambda k: {}


def _two(fn):
    """A law defined for k = 2 only."""
    return lambda x: fn(*x) if len(x) == 2 else None


def _categorical_A(etas):
    return sp.log(1 + sp.Add(*(sp.exp(e) for e in etas)))


VECTOR_LAWS: tuple[VectorLaw, ...] = (
    VectorLaw(
        "normal",
        Support.REAL,
        lambda k: (Y, Y**2) if k == 2 else None,
        _two(lambda a, b: -(a**2) / (4 * b) - sp.log(-2 * b) / 2),
    ),
    VectorLaw(
        "gamma_shape",
        Support.POSITIVE_REAL,
        lambda k: (sp.log(Y), Y) if k == 2 else None,
        _two(lambda a, b: sp.loggamma(a + 1) - (a + 1) * sp.log(-b)),
    ),
    VectorLaw(
        "beta",
        Support.UNIT_INTERVAL,
        lambda k: (sp.log(Y), sp.log(1 - Y)) if k == 2 else None,
        _two(lambda a, b: sp.loggamma(a + 1) + sp.loggamma(b + 1) - sp.loggamma(a + b + 2)),
    ),
    VectorLaw(
        "inverse_gaussian",
        Support.POSITIVE_REAL,
        lambda k: (Y, 1 / Y) if k == 2 else None,
        _two(lambda a, b: -2 * sp.sqrt(a * b) - sp.log(-2 * b) / 2),
    ),
    VectorLaw(
        "categorical",
        Support.NONNEGATIVE_INTEGERS,
        lambda k: tuple(sp.KroneckerDelta(Y, i) for i in range(1, k + 1)),
        _categorical_A,
        lambda k: {"categories": k + 1},
    ),
)


def _matches(fam: VectorFamily, law: VectorLaw) -> bool:
    if Support(fam.support) is not law.support:
        return False
    T = law.statistic(fam.k)
    if T is None or any(sp.simplify(a - b) != 0 for a, b in zip(fam.T, T, strict=True)):
        return False
    A_law = law.log_partition(fam.etas)
    return all(sp.simplify(sp.diff(fam.A - A_law, e)) == 0 for e in fam.etas)


def identify_vector_law(fam: VectorFamily) -> tuple[str, dict[str, int]] | None:
    """``(law name, law parameters)`` of the law ``fam`` provably is, or None (also when the
    proof does not finish within IDENTIFY_TIME_LIMIT)."""

    def find():
        for law in VECTOR_LAWS:
            if _matches(fam, law):
                return law.name, law.parameters(fam.k)
        return None

    return optional_step(find, IDENTIFY_TIME_LIMIT)[0]


def exact_sampler_literal(fam: VectorFamily) -> str:
    """The ``ExactSampler(...)`` expression of the generated module, or ``None``."""
    found = identify_vector_law(fam)
    if found is None:
        return "None"
    law, params = found
    body = ", ".join(f'"{k}": {float_literal(v)}' for k, v in params.items())
    return f'ExactSampler(law="{law}", parameters={{{body}}})'


__all__ = ["VECTOR_LAWS", "VectorLaw", "exact_sampler_literal", "identify_vector_law"]
