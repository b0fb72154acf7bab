"""Atoms of the registry: known Laplace transforms ``exp(A(u)) = int exp(u y) nu(dy)``.

Each :class:`Atom` is data: a key, its formula in ``u``, the law it is the transform of,
whether that law is infinitely divisible, the natural domain of ``u``, and a matcher that
recognises the atom in a signed term of ``A`` and returns ``(a, c)`` with ``u = a eta + c``.
:func:`register_atom` adds one (a user's own known transform); :func:`recognise` in
:mod:`.registry` proves admissibility from these atoms and closure rules.

Order matters: the first atom whose matcher accepts a term decides it (as the original
if-chain did); a registered atom goes last unless ``first=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from ..spec import ETA

Affine = tuple[sp.Expr, sp.Expr]

#: The Gaussian rule is not an atom (quadratic terms are collected first); its description.
GAUSSIAN_STEP = "Gaussian: e^{a u^2} = E e^{u Y}, Y ~ N(0, 2a)"


@dataclass(frozen=True)
class Atom:
    """A known Laplace transform: ``exp(A(u)) = int e^{u y} nu(dy)``, ``nu >= 0``, for ``u``
    in ``natural``. ``match(term)`` returns ``(a, c)`` when ``term`` (with its sign) is
    ``A(a eta + c)``, else None; ``formula(term)`` names ``A`` (default: :attr:`name`)."""

    key: str
    name: str
    law: str
    infinitely_divisible: bool
    natural: tuple[sp.Expr, sp.Expr]
    match: Callable[[sp.Expr], Affine | None]
    formula: Callable[[sp.Expr], str] | None = None

    def describe(self, term: sp.Expr, aff: Affine) -> str:
        """``"<formula> at u = a eta + c"`` for the recognised term."""
        name = self.formula(term) if self.formula is not None else self.name
        a, c = aff
        return f"{name} at u = {sp.nsimplify(a * ETA + c)}"


def affine(u: sp.Expr) -> Affine | None:
    """(a, c) with u = a eta + c, a != 0 real, or None."""
    if not u.has(ETA) or not u.is_polynomial(ETA):
        return None
    poly = sp.Poly(u, ETA)
    if poly.degree() != 1:
        return None
    a, c = poly.all_coeffs()
    if not (a.is_number and c.is_number and a.is_real and c.is_real and a != 0):
        return None
    return a, c


def exp_affine(e: sp.Expr) -> Affine | None:
    """(a, c) with e = C exp(a eta + c'), C > 0, folded into c = c' + log C."""
    factors = sp.Mul.make_args(e)
    consts = sp.Mul(*[f for f in factors if f.is_number])
    rest = [f for f in factors if not f.is_number]
    if len(rest) != 1 or not isinstance(rest[0], sp.exp) or not consts.is_positive:
        return None
    aff = affine(rest[0].args[0])
    if aff is None:
        return None
    return aff[0], aff[1] + sp.log(consts)


def split_sign(term: sp.Expr) -> tuple[bool, sp.Expr]:
    """(negated, body) with term = -body when a factor -1 is present, else (False, term)."""
    factors = sp.Mul.make_args(term)
    if sp.S.NegativeOne in factors:
        return True, sp.Mul(*[f for f in factors if f != sp.S.NegativeOne])
    return False, term


def _log_arg(term: sp.Expr, negated: bool) -> sp.Expr | None:
    """The argument w of term = +-log(w) (sign as requested), else None."""
    neg, body = split_sign(term)
    if neg != negated or not isinstance(body, sp.log):
        return None
    return body.args[0]


def _plain_sum(w: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """(constant part, rest) of a sum w without logs whose constant part is positive."""
    if not (w.is_Add and not w.has(sp.log)):
        return None
    consts = sp.Add(*[t for t in w.args if t.is_number])
    rest = sp.Add(*[t for t in w.args if not t.is_number])
    if consts.is_positive and rest != 0:
        return consts, rest
    return None


def _match_poisson(term: sp.Expr) -> Affine | None:
    """exp(u)."""
    return affine(term.args[0]) if isinstance(term, sp.exp) else None


def _match_rademacher(term: sp.Expr) -> Affine | None:
    """log cosh u."""
    w = _log_arg(term, negated=False)
    return affine(w.args[0]) if isinstance(w, sp.cosh) else None


def _match_bernoulli(term: sp.Expr) -> Affine | None:
    """log(k (1 + C e^{a eta})), k, C > 0."""
    w = _log_arg(term, negated=False)
    parts = None if w is None or isinstance(w, sp.cosh) else _plain_sum(w)
    return exp_affine(parts[1] / parts[0]) if parts else None


def _match_geometric(term: sp.Expr) -> Affine | None:
    """-log(k (1 - C e^{a eta})), k, C > 0."""
    w = _log_arg(term, negated=True)
    parts = None if w is None or isinstance(w, sp.cosh) else _plain_sum(w)
    return exp_affine(-parts[1] / parts[0]) if parts else None


def _match_exponential(term: sp.Expr) -> Affine | None:
    """-log(v), v = a eta + c > 0: the exponential law in u = -v."""
    w = _log_arg(term, negated=True)
    v = None if w is None or isinstance(w, sp.cosh) else affine(w)
    return (-v[0], -v[1]) if v is not None else None


def _match_uniform(term: sp.Expr) -> Affine | None:
    """log((e^u - 1)/u), written as a sum or a product."""
    w = _log_arg(term, negated=False)
    if w is None or isinstance(w, sp.cosh):
        return None
    if not (w.is_Mul or (w.is_Add and not w.has(sp.log))):
        return None
    num, den = sp.fraction(sp.together(w))
    for sgn in (1, -1):
        u = affine(sgn * den)
        if u is not None and sp.simplify(sgn * num - (sp.exp(u[0] * ETA + u[1]) - 1)) == 0:
            return u
    return None


def _match_compound_poisson(term: sp.Expr) -> Affine | None:
    """Li_s(e^u), s real."""
    if not isinstance(term, sp.polylog):
        return None
    s, w = term.args
    return exp_affine(w) if s.is_number and s.is_real else None


_NEG_HALF_LINE = (-sp.oo, sp.S.Zero)
_LINE = (-sp.oo, sp.oo)

_BUILTIN_ATOMS = (
    Atom("poisson", "exp(u)", "Poisson: exp(e^u) = sum_y e^{u y}/y!", True, _LINE, _match_poisson),
    Atom(
        "rademacher",
        "log cosh u",
        "Rademacher: cosh u = (delta_-1 + delta_1)/2",
        False,
        _LINE,
        _match_rademacher,
    ),
    Atom(
        "bernoulli",
        "log(1 + e^u)",
        "Bernoulli: 1 + e^u = delta_0 + delta_1",
        False,
        _LINE,
        _match_bernoulli,
    ),
    Atom(
        "geometric",
        "-log(1 - e^u)",
        "geometric: 1/(1 - e^u) = sum_y e^{u y} (u < 0)",
        True,
        _NEG_HALF_LINE,
        _match_geometric,
    ),
    Atom(
        "exponential",
        "-log(-u)",
        "exponential: -1/u = int_0^oo e^{u y} dy (u < 0)",
        True,
        _NEG_HALF_LINE,
        _match_exponential,
    ),
    Atom(
        "uniform",
        "log((e^u - 1)/u)",
        "uniform[0,1]: (e^u - 1)/u = int_0^1 e^{u y} dy",
        False,
        _LINE,
        _match_uniform,
    ),
    Atom(
        "compound_poisson",
        "Li_s(e^u)",
        "compound Poisson: exp(Li_s(e^u)) = exp(sum_k k^-s e^{k u}), Levy masses k^-s > 0 (u < 0)",
        True,
        _NEG_HALF_LINE,
        _match_compound_poisson,
        formula=lambda term: f"Li_{{{term.args[0]}}}(e^u)",
    ),
)

#: The registry, in matching order (the built-ins, then registered atoms).
ATOMS: list[Atom] = list(_BUILTIN_ATOMS)


def register_atom(atom: Atom, *, first: bool = False) -> Atom:
    """Add a known Laplace transform to the registry (replacing one with the same key).

    The caller vouches for the mathematics: ``exp(A(u))`` must be the Laplace transform of a
    nonnegative measure for every ``u`` in ``atom.natural``; a wrong atom makes wrong proofs.
    ``first=True`` tries it before the built-ins. Returns ``atom``.
    """
    unregister_atom(atom.key)
    ATOMS.insert(0, atom) if first else ATOMS.append(atom)
    return atom


def unregister_atom(key: str) -> Atom | None:
    """Remove the atom named ``key`` from the registry; returns it (None if absent)."""
    for i, atom in enumerate(ATOMS):
        if atom.key == key:
            return ATOMS.pop(i)
    return None


def find_atom(term: sp.Expr) -> tuple[Atom, Affine] | None:
    """The first registered atom whose matcher accepts ``term``, and its affine map."""
    for atom in ATOMS:
        aff = atom.match(term)
        if aff is not None:
            return atom, aff
    return None
