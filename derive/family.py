"""Derivation: a :class:`Family` holds everything a DEQ layer needs, derived from A(eta).

For a minimal regular exponential family p(y|eta) = h(y) exp(eta T(y) - A(eta)) (seed
``scoring-deq-expfam-pca``, eq. (1), Table 1, Appendix A.1):

* activation sigma = A' (the mean of T(y)), its slope sigma' = A'' (the variance of T(y),
  > 0 by strict convexity), and sigma'' = A''' (used by Newton on the latents' Hessian),
* the inverse link (A')^{-1} where SymPy can solve mu = A'(eta) in closed form,
* numerically stable forms of A, A', A'', A''' on the primitives of ``derive.primitives``,
* a symbolic strict-convexity check of A'' > 0 on the declared domain.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from . import primitive_table
from .builtin_specs import builtin_names, builtin_spec_text
from .primitives import StablePrimitive, to_definition
from .spec import ETA, FamilySpec, SpecError, Y, parse_spec, read_spec
from .spec_derivation import optional_step, run_derivation
from .stable import stabilize

_T = sp.Symbol("t", positive=True)
_ELEMENTARY_SOLVE_FUNCS = (sp.exp, sp.log, sp.tanh, sp.cosh, sp.sinh)


@dataclass(frozen=True)
class ConvexityProof:
    """Outcome of the symbolic check A''(eta) > 0 on the domain."""

    proven: bool
    method: str
    expression: sp.Expr

    @property
    def status(self) -> str:
        return "proven" if self.proven else "unproven"


@dataclass(frozen=True)
class Family:
    """A derived exponential family (parameters substituted by their values).

    Attributes ``A``, ``sigma``, ``dsigma``, ``d2sigma`` are the plain SymPy derivatives
    A, A', A'', A'''; the ``*_stable`` versions are the same functions on stable primitives.
    """

    spec: FamilySpec = field(repr=False)
    name: str
    parameters: dict[str, sp.Rational]
    A: sp.Expr
    T: sp.Expr
    h: sp.Expr | None
    domain: tuple[sp.Expr, sp.Expr]
    sigma: sp.Expr
    dsigma: sp.Expr
    d2sigma: sp.Expr
    A_stable: sp.Expr
    sigma_stable: sp.Expr
    dsigma_stable: sp.Expr
    d2sigma_stable: sp.Expr
    inverse_link: sp.Expr | None
    convexity: ConvexityProof

    eta = ETA
    y = Y
    mu = sp.Symbol("mu", real=True)

    @property
    def support(self) -> str:
        return self.spec.support

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def mean(self) -> sp.Expr:
        """E[T(y)] = A'(eta)."""
        return self.sigma

    @property
    def variance(self) -> sp.Expr:
        """Var[T(y)] = A''(eta)."""
        return self.dsigma

    @property
    def log_base_measure(self) -> sp.Expr | None:
        """log h(y) with factorials/binomials as log-gamma (finite for large y), or None."""
        return log_of_base_measure(self.h)

    @property
    def domain_floats(self) -> tuple[float, float]:
        return float(self.domain[0]), float(self.domain[1])

    @property
    def spec_sha256(self) -> str:
        return hashlib.sha256(self.spec.text.encode("utf-8")).hexdigest()

    def stable_forms(self) -> dict[str, sp.Expr]:
        """The stable forms by role: log_partition, activation, activation_grad, ..."""
        return {
            "log_partition": self.A_stable,
            "activation": self.sigma_stable,
            "activation_grad": self.dsigma_stable,
            "activation_grad2": self.d2sigma_stable,
        }

    def numpy_function(self, role: str):
        """float64 numpy evaluation of a stable form (role as in :meth:`stable_forms`)."""
        expr = self.stable_forms()[role]
        return sp.lambdify(ETA, expr, modules=[primitive_table.numpy_module(), "numpy", "scipy"])

    def mpmath_function(self, expr: sp.Expr):
        """High-precision evaluation of ``expr`` (primitives replaced by their definitions)."""
        plain = to_definition(expr) if expr.has(StablePrimitive) else expr
        return sp.lambdify(ETA, plain, modules="mpmath")

    @property
    def support_max(self) -> float | None:
        """The largest value of y (the spec's ``support_max`` at these parameter values, e.g.
        binomial's ``n``), or None when the support has no upper end beyond its type."""
        bound = self.spec.support_max
        if bound is None:
            return None
        subs = {self.spec.parameter_symbols[k]: v for k, v in self.parameters.items()}
        value = float(sp.sympify(bound).subs(subs))
        if value != value:  # NaN: the bound is undefined at these parameters
            raise SpecError(f"support_max {bound} is undefined at {subs}", source=self.spec.source)
        return value

    def with_parameters(self, **values: float) -> Family:
        """The same family re-derived at other parameter values.

        Each value must be finite and inside the parameter's declared range (the open
        interval of ``parameter_ranges``). The spec text used for digests gets a comment
        naming the overrides, so a family at other parameters never shares a digest (and
        so a generated module or custom-op name) with the spec's defaults.
        """
        spec = spec_with_parameters(self.spec, values)
        return self if spec is None else derive_family(spec)

    def sample_points(self, n: int, rng: np.random.Generator, width: float = 8.0) -> np.ndarray:
        """n random points strictly inside the domain (within ``width`` of a finite end)."""
        lo, hi = self.domain_floats
        lo_ = max(lo, (hi if np.isfinite(hi) else 0.0) - width)
        hi_ = min(hi, (lo if np.isfinite(lo) else 0.0) + width)
        if not np.isfinite(lo) and not np.isfinite(hi):
            lo_, hi_ = -width / 2, width / 2
        margin = 1e-3 * (hi_ - lo_)
        return rng.uniform(lo_ + margin, hi_ - margin, size=n)


def log_of_base_measure(h: sp.Expr | None) -> sp.Expr | None:
    """``log h(y)`` with gamma functions (factorials, binomials) as ``loggamma`` so that it
    stays finite for large ``y``, and the ``y``-free part folded into one 30-digit constant;
    None when ``h`` is None. Serves scalar and vector families alike."""
    if h is None:
        return None
    expr = sp.expand_log(sp.log(h.rewrite(sp.gamma)), force=True)
    expr = expr.replace(
        lambda e: isinstance(e, sp.log) and isinstance(e.args[0], sp.gamma),
        lambda e: sp.loggamma(e.args[0].args[0]),
    )
    const, rest = expr.as_independent(Y, as_Add=True)
    return rest + (sp.Float(sp.N(const, 30), 30) if const != 0 else 0)


def spec_with_parameters(spec: Any, values: dict[str, float]) -> Any | None:
    """``spec`` (a scalar or vector spec) with parameter ``values`` overriding its defaults,
    or None when nothing changes.

    Each value must be a declared parameter, finite, and inside its declared range (the open
    interval of ``parameter_ranges``). The spec text used for digests gets a comment naming
    the overrides, so a family at other parameters never shares a digest (and so a generated
    module or custom-op name) with the spec's defaults.
    """
    where = {"source": spec.source, "field": "parameters"}
    unknown = set(values) - set(spec.parameters)
    if unknown:
        raise SpecError(
            f"unknown parameter(s) {sorted(unknown)}; the spec declares "
            f"{sorted(spec.parameters) or 'none'}",
            **where,
        )
    params = dict(spec.parameters)
    for k, v in values.items():
        if not math.isfinite(float(v)):
            raise SpecError(f"parameter {k}={v} must be finite", **where)
        value = sp.Rational(repr(float(v)))
        lo, hi = spec.parameter_ranges.get(k, (-sp.oo, sp.oo))
        if not bool(lo < value < hi):
            raise SpecError(f"parameter {k}={v} lies outside its range ({lo}, {hi})", **where)
        params[k] = value
    changed = {k: v for k, v in params.items() if v != spec.parameters[k]}
    if not changed:
        return None
    note = ", ".join(f"{k}={v}" for k, v in sorted(changed.items()))
    text = spec.text.rstrip("\n") + f"\n# parameters overridden: {note}\n"
    return dataclasses.replace(spec, parameters=params, text=text)


def _positive_substitution(domain: tuple[sp.Expr, sp.Expr]) -> dict[sp.Symbol, sp.Expr] | None:
    """eta -> an expression in a positive symbol t that sweeps the domain exactly."""
    lo, hi = domain
    if lo == -sp.oo and hi == sp.oo:
        return {}
    if lo == -sp.oo:
        return {ETA: hi - _T}
    if hi == sp.oo:
        return {ETA: lo + _T}
    u = sp.Symbol("u", real=True)
    return {ETA: lo + (hi - lo) * sp.exp(u) / (1 + sp.exp(u))}


def prove_convexity(d2: sp.Expr, d2_plain: sp.Expr, domain) -> ConvexityProof:
    """Try to prove A''(eta) > 0 for every eta in the open domain, symbolically.

    Eta is replaced by an expression of a positive (or real) symbol sweeping the domain, and
    SymPy's assumption system is asked whether the result is positive, first on the stable
    form (whose primitives carry positivity facts), then on the simplified plain form.
    """
    sub = _positive_substitution(domain)
    for label, expr in (("stable form", d2), ("simplified", sp.simplify(d2_plain))):
        cand = expr.subs(sub) if sub else expr
        try:
            if cand.is_positive:
                return ConvexityProof(True, f"SymPy assumptions on the {label} of A''", expr)
        except (TypeError, RecursionError):  # pragma: no cover - SymPy internals
            continue
    return ConvexityProof(False, "SymPy could not decide the sign of A''", d2)


def _inverse_link(sigma: sp.Expr, domain) -> sp.Expr | None:
    """Solve mu = sigma(eta) for eta when sigma is elementary; pick the branch that round-trips."""
    mu = Family.mu
    funcs = {type(f) for f in sigma.atoms(sp.Function)}
    if not all(issubclass(f, _ELEMENTARY_SOLVE_FUNCS) for f in funcs) or sp.count_ops(sigma) > 40:
        return None
    try:
        sols = sp.solve(sp.Eq(sigma, mu), ETA)
    except (NotImplementedError, ValueError, TypeError):
        return None
    lo, hi = (float(b) for b in domain)
    probe = (max(lo, -2.0) + min(hi, 2.0)) / 2 if np.isfinite(lo) or np.isfinite(hi) else 0.3
    probe = probe if lo < probe < hi else (lo + 1 if np.isfinite(lo) else hi - 1)
    for sol in sols:
        back = sol.subs(mu, sigma.subs(ETA, probe))
        try:
            if abs(complex(sp.N(back)) - probe) < 1e-9:
                return sol
        except TypeError:
            continue
    return None


def _convexity_or_unproven(d2: sp.Expr, d2_plain: sp.Expr, domain) -> ConvexityProof:
    """``prove_convexity`` within the optional-step budget; "unproven" if it overruns."""
    proof, why = optional_step(lambda: prove_convexity(d2, d2_plain, domain))
    return proof or ConvexityProof(False, f"SymPy could not decide the sign of A'' ({why})", d2)


def derive_family(spec: FamilySpec, *, time_limit: float | None = None) -> Family:
    """Derive a :class:`Family` from a parsed spec (parameters substituted by value).

    The spec is a trust boundary (``spec_derivation.run_derivation``): a derivation that
    fails inside SymPy or runs past ``time_limit`` seconds is a :class:`SpecError` naming the field.
    """
    if not isinstance(spec, FamilySpec):  # a vector spec (derive/vector_spec.py)
        from .vector_derivation import derive_vector_family

        return derive_vector_family(spec, time_limit=time_limit)
    return run_derivation(spec, _derive, time_limit)


def _derive(spec: FamilySpec) -> Family:
    subs = {spec.parameter_symbols[k]: v for k, v in spec.parameters.items()}
    A = spec.log_partition.subs(subs)
    T = spec.sufficient_statistic.subs(subs)
    h = spec.base_measure.subs(subs) if spec.base_measure is not None else None
    domain = tuple(sp.sympify(b).subs(subs) for b in spec.domain)
    sigma = sp.diff(A, ETA)
    dsigma = sp.diff(sigma, ETA)
    d2sigma = sp.diff(dsigma, ETA)
    A_stable = stabilize(A)
    sigma_stable = stabilize(sp.diff(A_stable, ETA))
    dsigma_stable = stabilize(sp.diff(sigma_stable, ETA))
    d2sigma_stable = stabilize(sp.diff(dsigma_stable, ETA))
    return Family(
        spec=spec,
        name=spec.name,
        parameters=dict(spec.parameters),
        A=A,
        T=T,
        h=h,
        domain=domain,  # type: ignore[arg-type]
        sigma=sigma,
        dsigma=dsigma,
        d2sigma=d2sigma,
        A_stable=A_stable,
        sigma_stable=sigma_stable,
        dsigma_stable=dsigma_stable,
        d2sigma_stable=d2sigma_stable,
        inverse_link=optional_step(lambda: _inverse_link(sigma, domain))[0],
        convexity=_convexity_or_unproven(dsigma_stable, dsigma, domain),
    )


def _vector_builtins():
    """The vector built-ins (``specs/vector/``; a lazy import: they import this module)."""
    from . import vector_builtins

    return vector_builtins


def load_family(spec: Any, **parameters: float) -> Family:
    """Load a family: a built-in name, a path to a YAML spec, a FamilySpec or a Family.
    A vector spec or built-in (``derive.vector_spec``) gives a ``VectorFamily``.

    Keyword arguments override parameter values (e.g. ``load_family("binomial", n=10)``).
    """
    if isinstance(spec, Family) or _vector_builtins().is_vector_family(spec):
        fam = spec
    elif isinstance(spec, FamilySpec) or _vector_builtins().is_vector_spec(spec):
        fam = derive_family(spec)
    elif isinstance(spec, str | Path):
        text = str(spec)
        if isinstance(spec, str) and text in builtin_names():
            fam = derive_family(parse_spec(builtin_spec_text(text), source=f"builtin:{text}"))
        elif isinstance(spec, str) and text in _vector_builtins().vector_builtin_names():
            fam = _vector_builtins().load_vector_builtin(text)
        elif Path(text).is_file():
            fam = derive_family(read_spec(text))
        else:
            raise SpecError(
                f"no built-in family or spec file named {text!r}; built-ins: "
                + ", ".join(builtin_names()),
                source=text,
            )
    else:
        raise TypeError(f"cannot load a family from {type(spec).__name__}")
    return fam.with_parameters(**parameters) if parameters else fam
