"""Derivation of a vector family: gradient, Hessian and stable forms of ``A(eta_1..eta_k)``.

For ``p(y|eta) = h(y) exp(<eta, T(y)> - A(eta))`` with ``k`` natural parameters:

* the mean of ``T`` (the activation) is ``mu = grad A``, ``mu_i = dA/d eta_i``;
* the covariance of ``T`` is the Hessian ``C_ij = d^2 A / d eta_i d eta_j`` (symmetric; only
  ``i <= j`` is differentiated, the rest mirrored);
* third derivatives are not derived: the runtime gets them from torch autograd through the
  printed covariance (``runtime/vector_family.py``);
* stable forms: ``log(1 + sum exp)`` -> ``logsumexp0`` (``derive.vector_primitives``), then
  the scalar stabiliser (``derive.stable``), applied to ``A`` and to every derivative;
* integer-order Bessel functions are reduced to ``I_0`` and ``I_1`` (the orders torch has);
* the inverse mean ``(grad A)^{-1}`` where SymPy solves ``grad A = mu`` in closed form within
  the optional-step budget, checked by a round trip at an interior point;
* positive definiteness of the Hessian on the box is the admissibility stage
  :mod:`deqfam.derive.admissibility.vector.convexity` (``vector_check.hessian_positive_definite``).

Parameters are substituted by value; a ``categories`` spec is expanded to its ``K - 1``
natural parameters first. The whole derivation runs behind the trust boundary of
``derive.spec_derivation`` (time budget, SymPy failures as :class:`SpecError`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from .family import log_of_base_measure, spec_with_parameters
from .primitive_table import reduce_besseli
from .primitives import StablePrimitive, to_definition
from .spec import SpecError, Y, _key_lines
from .spec_derivation import optional_step, run_derivation
from .stable import stabilize
from .vector_primitives import stabilize_logsumexp, to_plain
from .vector_spec import VectorFamilySpec, check_categories, expand_categories

#: functions sp.solve may see when the inverse mean is attempted
_SOLVABLE = (sp.exp, sp.log)
#: largest operation count of the gradient for which sp.solve is attempted
_MAX_SOLVE_OPS = 60


@dataclass(frozen=True)
class VectorFamily:
    """A derived vector family (parameters substituted by their values).

    ``grad`` and ``hessian`` are the plain SymPy derivatives of ``A``; the ``*_stable``
    versions are the same functions on stable primitives. ``inverse_mean`` is
    ``eta_i(mu_1..mu_k)`` in the symbols :attr:`mean_symbols`, or None.
    """

    spec: VectorFamilySpec = field(repr=False)
    name: str
    parameters: dict[str, sp.Rational]
    etas: tuple[sp.Symbol, ...]
    A: sp.Expr
    T: tuple[sp.Expr, ...]
    h: sp.Expr | None
    domain: tuple[tuple[sp.Expr, sp.Expr], ...]
    grad: tuple[sp.Expr, ...]
    hessian: tuple[tuple[sp.Expr, ...], ...]
    A_stable: sp.Expr
    grad_stable: tuple[sp.Expr, ...]
    hessian_stable: tuple[tuple[sp.Expr, ...], ...]
    inverse_mean: tuple[sp.Expr, ...] | None
    support_max: sp.Expr | None = None

    y = Y

    @property
    def k(self) -> int:
        return len(self.etas)

    @property
    def support(self) -> str:
        return self.spec.support

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def mean_symbols(self) -> tuple[sp.Symbol, ...]:
        """The symbols ``mu_1..mu_k`` of :attr:`inverse_mean`."""
        return tuple(sp.Symbol(f"mu{i + 1}", real=True) for i in range(self.k))

    @property
    def spec_sha256(self) -> str:
        return hashlib.sha256(self.spec.text.encode("utf-8")).hexdigest()

    @property
    def domain_floats(self) -> tuple[tuple[float, float], ...]:
        return tuple((float(lo), float(hi)) for lo, hi in self.domain)

    @property
    def log_base_measure(self) -> sp.Expr | None:
        """log h(y) with gamma functions as log-gamma, or None (as ``Family``)."""
        return log_of_base_measure(self.h)

    def plain(self, expr: sp.Expr) -> sp.Expr:
        """``expr`` with every stable primitive replaced by its definition (for mpmath)."""
        expr = to_plain(expr)
        return to_definition(expr) if expr.has(StablePrimitive) else expr

    def numpy_function(self, expr: sp.Expr):
        """float64 numpy evaluation of ``expr`` as a function of ``(eta_1, ..., eta_k)``."""
        return sp.lambdify(self.etas, self.plain(expr), modules=["numpy", "scipy"])

    def interior_point(self) -> tuple[float, ...]:
        """A point inside the box: 0 where allowed, else one unit inside a finite end (the
        midpoint of a finite interval)."""
        out = []
        for lo, hi in self.domain_floats:
            if lo < 0.0 < hi:
                out.append(0.0)
            elif math.isfinite(lo) and math.isfinite(hi):
                out.append((lo + hi) / 2)
            else:
                out.append(lo + 1.0 if math.isfinite(lo) else hi - 1.0)
        return tuple(out)

    def with_parameters(self, **values: float) -> VectorFamily:
        """The family re-derived at other parameter values (each finite and inside its
        declared range; the digest text records the overrides, as ``Family``'s)."""
        spec = spec_with_parameters(self.spec, values)
        return self if spec is None else derive_vector_family(spec)


def _symmetric_hessian(grad: tuple[sp.Expr, ...], etas, post) -> tuple[tuple[sp.Expr, ...], ...]:
    """``H_ij = d grad_i / d eta_j`` for ``i <= j``, mirrored; ``post`` maps each entry."""
    k = len(etas)
    upper = {(i, j): post(sp.diff(grad[i], etas[j])) for i in range(k) for j in range(i, k)}
    return tuple(tuple(upper[min(i, j), max(i, j)] for j in range(k)) for i in range(k))


def _stable(expr: sp.Expr) -> sp.Expr:
    return stabilize(stabilize_logsumexp(reduce_besseli(expr)))


def _round_trip(grad, etas, mus, solution: dict, point) -> bool:
    """Whether ``eta(mu(eta0)) = eta0`` at ``point`` to 1e-9."""
    at = dict(zip(etas, point, strict=True))
    mu_values = {m: g.subs(at) for m, g in zip(mus, grad, strict=True)}
    try:
        back = [complex(sp.N(solution[e].subs(mu_values))) for e in etas]
    except (TypeError, KeyError):
        return False
    return all(abs(b - p) < 1e-9 * max(1.0, abs(p)) for b, p in zip(back, point, strict=True))


def solve_inverse_mean(fam_grad, etas, mus, point) -> tuple[sp.Expr, ...] | None:
    """Solve ``grad A(eta) = mu`` for ``eta`` in closed form when the gradient uses only
    rational functions, powers, exp and log; keep the branch that round-trips at ``point``."""
    funcs = {type(f) for g in fam_grad for f in g.atoms(sp.Function)}
    if not all(issubclass(f, _SOLVABLE) for f in funcs):
        return None
    if sum(sp.count_ops(g) for g in fam_grad) > _MAX_SOLVE_OPS:
        return None
    equations = [sp.Eq(g, m) for g, m in zip(fam_grad, mus, strict=True)]
    try:
        solutions = sp.solve(equations, list(etas), dict=True)
    except (NotImplementedError, ValueError, TypeError):
        return None
    for sol in solutions:
        if all(e in sol for e in etas) and _round_trip(fam_grad, etas, mus, sol, point):
            return tuple(sp.simplify(sol[e]) for e in etas)
    return None


def vector_derivatives(fam: VectorFamily) -> list[tuple[str, sp.Expr]]:
    """(label, expression) of ``A``, every ``dA/d eta_i`` and every ``d2A/d eta_i d eta_j``
    (what must not be undefined)."""
    out = [("A", fam.A)]
    out += [(f"dA/d{e}", g) for e, g in zip(fam.etas, fam.grad, strict=True)]
    out += [
        (f"d2A/d{fam.etas[i]}d{fam.etas[j]}", fam.hessian[i][j])
        for i in range(fam.k)
        for j in range(i, fam.k)
    ]
    return out


def derive_vector_family(spec: VectorFamilySpec, *, time_limit: float | None = None):
    """Derive a :class:`VectorFamily` from a parsed vector spec behind the trust boundary of
    :func:`deqfam.derive.spec_derivation.run_derivation` (parameter values checked, within
    ``time_limit`` seconds, default ``DERIVE_TIME_LIMIT``; SymPy failures, overruns and
    undefined derivatives are :class:`SpecError`)."""
    return run_derivation(spec, _derive, time_limit, derived=vector_derivatives)


def _substituted(spec: VectorFamilySpec) -> VectorFamilySpec:
    """``spec`` with parameter values substituted and ``categories`` expanded."""
    subs = {spec.parameter_symbols[k]: v for k, v in spec.parameters.items()}
    if spec.categories is not None:
        lines = _key_lines(spec.text)

        def fail(msg: str):
            raise SpecError(
                msg, source=spec.source, field="categories", line=lines.get("categories")
            )

        spec = expand_categories(spec, check_categories(spec.categories.subs(subs), fail))
    return dataclasses.replace(
        spec,
        sufficient_statistic=tuple(t.subs(subs) for t in spec.sufficient_statistic),
        log_partition=spec.log_partition.subs(subs),
        base_measure=None if spec.base_measure is None else spec.base_measure.subs(subs),
        domain=tuple((lo.subs(subs), hi.subs(subs)) for lo, hi in spec.domain),
        support_max=None if spec.support_max is None else spec.support_max.subs(subs),
    )


def _derive(spec: VectorFamilySpec) -> VectorFamily:
    s = _substituted(spec)
    etas = s.natural_parameters
    A = reduce_besseli(s.log_partition)
    grad = tuple(sp.diff(A, e) for e in etas)
    hessian = _symmetric_hessian(grad, etas, lambda x: x)
    A_stable = _stable(A)
    grad_stable = tuple(_stable(sp.diff(A_stable, e)) for e in etas)
    hessian_stable = _symmetric_hessian(grad_stable, etas, _stable)
    fam = VectorFamily(
        spec=spec,
        name=spec.name,
        parameters=dict(spec.parameters),
        etas=etas,
        A=A,
        T=s.sufficient_statistic,
        h=s.base_measure,
        domain=s.domain,
        grad=grad,
        hessian=hessian,
        A_stable=A_stable,
        grad_stable=grad_stable,
        hessian_stable=hessian_stable,
        inverse_mean=None,
        support_max=s.support_max,
    )
    mus = fam.mean_symbols
    inverse = optional_step(lambda: solve_inverse_mean(grad, etas, mus, fam.interior_point()))[0]
    return dataclasses.replace(fam, inverse_mean=inverse)


def evaluate_matrix(fam: VectorFamily, rows, point) -> np.ndarray:
    """float64 value of a matrix of expressions (e.g. ``fam.hessian_stable``) at ``point``."""
    fns = [[fam.numpy_function(e) for e in row] for row in rows]
    return np.array([[float(f(*point)) for f in row] for row in fns])


__all__ = ["VectorFamily", "derive_vector_family", "evaluate_matrix", "solve_inverse_mean"]
