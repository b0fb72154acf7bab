"""The registry: prove ``exp(A)`` a Laplace transform from the form of ``A``.

Atoms (known transforms, :mod:`.atoms`) combine by closure rules: affine changes of
variable, sums (convolutions), positive integer multiples (convolution powers) and positive
real multiples of infinitely divisible laws.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ..primitives import StablePrimitive, to_definition
from ..spec import ETA
from .atoms import GAUSSIAN_STEP, find_atom


@dataclass(frozen=True)
class Recognised:
    """A proof that exp(A) is a Laplace transform: the law and whether it is infinitely
    divisible (then exp(t A) is a Laplace transform for every t > 0)."""

    law: str
    infinitely_divisible: bool
    steps: tuple[str, ...]


def image(domain: tuple[sp.Expr, sp.Expr], a: sp.Expr, c: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """The interval {a eta + c : eta in domain}."""
    lo, hi = domain
    ends = (a * lo + c, a * hi + c) if a > 0 else (a * hi + c, a * lo + c)
    return tuple(sp.sympify(e) for e in ends)  # type: ignore[return-value]


def recognise_atom(term: sp.Expr, domain) -> Recognised | None:
    """``term`` (with its sign) as one registered atom in an affine u = a eta + c whose
    natural domain contains the image of the declared domain."""
    found = find_atom(term)
    if found is None:
        return None
    atom, aff = found
    ulo, uhi = image(domain, *aff)
    if not (bool(ulo >= atom.natural[0]) and bool(uhi <= atom.natural[1])):
        return None
    return Recognised(atom.describe(term, aff), atom.infinitely_divisible, (atom.law,))


def recognise(A: sp.Expr, domain: tuple[sp.Expr, sp.Expr]) -> Recognised | None:
    """Prove exp(A) a Laplace transform of a nonnegative measure on ``domain`` from its form.

    Registry atoms (:data:`.atoms.ATOMS`; u = a eta + c affine, a != 0, natural domain
    containing the image of ``domain``): ``a eta^2`` (a > 0), ``exp(u)``, ``log(1 + e^u)``,
    ``log cosh u``, ``log((e^u - 1)/u)``, ``-log(-u)``, ``-log(1 - e^u)``, ``polylog(s, e^u)``
    (any real s; the Levy masses k^-s are positive), and any atom added with
    :func:`.atoms.register_atom`. Closure rules:

    * affine change: exp(A(a eta + c) + b eta + d) = e^d int e^{eta (a y + b)} e^{c y} mu(dy);
    * sums A1 + A2: exp(A1 + A2) is the Laplace transform of the convolution mu1 * mu2;
    * n A for a positive integer n: the n-fold convolution;
    * t A for real t > 0 when mu is infinitely divisible (Gaussian, Poisson, compound
      Poisson, gamma, negative binomial, Bose-Einstein ...): mu^{*t} exists.

    Returns None when the form is not recognised (which proves nothing either way).
    """
    A = to_definition(A) if A.has(StablePrimitive) else A
    return _recognise_sum(A, domain)


def _recognise_sum(A: sp.Expr, domain) -> Recognised | None:
    terms = sp.Add.make_args(A)
    poly = sp.Add(*[t for t in terms if t.is_polynomial(ETA)])
    others = [t for t in terms if not t.is_polynomial(ETA)]
    laws: list[Recognised] = []
    if poly.has(ETA):
        p = sp.Poly(poly, ETA)
        if p.degree() > 2 or not all(c.is_number and c.is_real for c in p.all_coeffs()):
            return None
        if p.degree() == 2:
            a = p.all_coeffs()[0]
            if not a.is_positive:
                return None
            laws.append(Recognised(f"N(0, {2 * a})", True, (GAUSSIAN_STEP,)))
    for t in others:
        r = _recognise_term(t, domain)
        if r is None:
            return None
        laws.append(r)
    if not laws:
        return None
    if len(laws) == 1:
        law = laws[0]
    else:
        law = Recognised(
            " * ".join(f"[{x.law}]" for x in laws),
            all(x.infinitely_divisible for x in laws),
            (*[s for x in laws for s in x.steps], "sum of log-Laplace transforms = convolution"),
        )
    if poly.has(ETA) and sp.Poly(poly, ETA).degree() <= 2 and sp.Poly(poly, ETA).degree() >= 1:
        law = Recognised(law.law, law.infinitely_divisible, (*law.steps, "affine terms: shift"))
    return law


def _recognise_term(t: sp.Expr, domain) -> Recognised | None:
    factors = sp.Mul.make_args(t)
    coef = sp.Mul(*[f for f in factors if f.is_number])
    body = sp.Mul(*[f for f in factors if not f.is_number])
    if not (coef.is_real and coef != 0):
        return None
    sign = 1 if coef.is_positive else -1
    mag = sp.Abs(coef)
    if body.is_Add:
        inner = _recognise_sum(body, domain) if sign > 0 else None
    else:
        inner = recognise_atom(sign * body, domain)
    if inner is None:
        return None
    if mag == 1:
        return inner
    if mag.is_Integer:
        return Recognised(
            f"{mag}-fold convolution of [{inner.law}]",
            inner.infinitely_divisible,
            (*inner.steps, f"{mag} A: {mag}-fold convolution"),
        )
    if inner.infinitely_divisible:
        return Recognised(
            f"[{inner.law}]^(*{mag})",
            True,
            (*inner.steps, f"{mag} A with {mag} > 0: power of an infinitely divisible law"),
        )
    return None
