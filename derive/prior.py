"""Symbolic prior activation ``rho`` of the kGLM-DEQ (seed ``declarative-nets-kglm-deq``).

The kGLM inner problem (5) carries a log-concave prior ``q`` on the predictor values,

    alpha* = argmin -alpha^T K T(Y) + 1^T A(K alpha) - log q(K alpha) + lam/2 alpha^T K alpha,

and Theorem 3 turns it into the DEQ (7) ``z = sigma(W1 z + W2 T(Y) + W3 rho(z))`` with the second
activation

    rho = Q' o (A')^{-1},        Q = -log q  (convex, so rho is monotone non-decreasing).

For a Gaussian-process prior ``q`` is constant and ``rho = 0``. Assumption 2 needs
``sup |I + diag rho'|`` = ``1 + sup rho'``; by the chain rule, with ``mu = A'(eta)``,

    rho'(mu) = Q''(eta) / A''(eta),                                   eta = (A')^{-1}(mu),

so the supremum over the mean range equals the supremum of ``Q''/A''`` over the natural domain.

This module is SymPy only: it returns the expressions; ``derive.emit.render_prior`` prints them
into a generated module (``templates/prior.py.j2``) that ``deqfam.api.torch_prior`` imports, so
``derive`` never imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import sympy as sp

from .family import Family, load_family
from .spec import ETA, SpecError, parse_expression

#: The predictor-value symbol ``f`` in which ``Q = -log q`` is written.
F = sp.Symbol("f", real=True)


@dataclass(frozen=True)
class Prior:
    """A log-concave prior ``q`` on predictor values and its DEQ activation ``rho``.

    Attributes:
        family_name: the exponential family ``rho`` was derived for (``rho`` depends on ``A``).
        name: label of the prior.
        neg_log_q: ``Q(f) = -log q(f)`` (up to a constant), in the symbol :data:`F`.
        rho: ``rho(mu) = Q'((A')^{-1}(mu))`` in ``Family.mu`` (``0`` for a constant ``q``).
        drho: ``rho'(mu)``.
        mean_range: the open interval ``A'(domain)`` on which ``rho`` is defined.
        sup_drho: ``sup rho'`` over ``mean_range`` (``math.inf`` if unbounded, ``None`` if
            unknown); ``sup_drho_method`` says whether it is a proof (``"symbolic"``) or
            numerical evidence (``"numeric: ..."``, with the grid).
    """

    family_name: str
    name: str
    neg_log_q: sp.Expr
    rho: sp.Expr
    drho: sp.Expr
    mean_range: tuple[sp.Expr, sp.Expr]
    sup_drho: float | None
    sup_drho_method: str


def _is_elementary_rational(expr: sp.Expr, var: sp.Symbol) -> bool:
    return not expr.atoms(sp.Function) and expr.is_rational_function(var)


def _simplest(expr: sp.Expr, var: sp.Symbol, probes: list[float]) -> sp.Expr:
    """The simplest of a few rewritings of ``expr`` that agrees with it (real values, 1e-10
    relative) at ``probes``; rational functions are preferred (no log/tanh of saturated means)."""
    candidates = [expr]
    for rewrite in (
        sp.simplify,
        lambda e: sp.simplify(e.rewrite(sp.exp)),
        lambda e: sp.factor(sp.cancel(sp.simplify(e.rewrite(sp.exp)))),
    ):
        try:
            candidates.append(rewrite(expr))
        except (TypeError, ValueError, NotImplementedError, RecursionError):  # pragma: no cover
            continue
    ref = [complex(sp.N(expr.subs(var, p), 30)) for p in probes]

    def agrees(c: sp.Expr) -> bool:
        try:
            vals = [complex(sp.N(c.subs(var, p), 30)) for p in probes]
        except TypeError:
            return False
        return all(
            abs(v.imag) <= 1e-12 * (1 + abs(v)) and abs(v - r) <= 1e-10 * (1 + abs(r))
            for v, r in zip(vals, ref, strict=True)
        )

    good = [c for c in candidates if agrees(c)] or [expr]
    return min(good, key=lambda c: (not _is_elementary_rational(c, var), sp.count_ops(c)))


def _mean_range(fam: Family) -> tuple[sp.Expr, sp.Expr]:
    lo, hi = fam.domain
    return sp.limit(fam.sigma, ETA, lo, "+"), sp.limit(fam.sigma, ETA, hi, "-")


def _probe_etas(fam: Family) -> list[float]:
    rng = np.random.default_rng(0)
    return [float(e) for e in fam.sample_points(5, rng, width=4.0)]


def _sup_drho(
    drho: sp.Expr, mean_range: tuple[sp.Expr, sp.Expr], d2Q_eta: sp.Expr, fam: Family
) -> tuple[float | None, str]:
    """``sup rho'`` over the mean range = ``sup_eta Q''(eta)/A''(eta)`` over the domain.

    Symbolic when SymPy finds the maximum of ``rho'`` on the mean range or of the ratio on the
    domain (or an infinite limit at an end); otherwise numerical evidence: the maximum of
    ``Q''/A''`` (``A''`` in its stable form) over a 4001-point grid refined by a bounded scalar
    search, with the finite limits at the ends.
    """
    try:
        sup = sp.calculus.util.maximum(drho, Family.mu, sp.Interval.open(*mean_range))
        if sup == sp.oo:
            return math.inf, "symbolic"
        if sup.is_real and sup.is_finite:
            return float(sup), "symbolic"
    except (NotImplementedError, ValueError, TypeError):
        pass
    ratio = d2Q_eta / fam.dsigma
    lo, hi = fam.domain
    ends = []
    for end, side in ((lo, "+"), (hi, "-")):
        try:
            ends.append(sp.limit(ratio, ETA, end, side))
        except (NotImplementedError, ValueError, TypeError):  # pragma: no cover
            ends.append(None)
    if any(e is not None and (e == sp.oo or e.has(sp.oo)) for e in ends):
        return math.inf, "symbolic (infinite limit at a domain end)"
    try:
        sup = sp.calculus.util.maximum(ratio, ETA, sp.Interval.open(lo, hi))
        if sup.is_real and sup.is_finite:
            return float(sup), "symbolic"
    except (NotImplementedError, ValueError, TypeError):
        pass
    num = sp.lambdify(ETA, d2Q_eta, modules=["numpy", "scipy"])
    den = fam.numpy_function("activation_grad")

    def fn(t):
        return num(t) / den(t)

    flo, fhi = fam.domain_floats
    a = max(flo, -60.0)
    b = min(fhi, 60.0)
    span = b - a
    grid = a + span * (np.linspace(0.0, 1.0, 4001)[1:-1])
    with np.errstate(all="ignore"):
        vals = np.asarray(fn(grid), dtype=float) * np.ones_like(grid)
    finite = np.isfinite(vals)
    if not finite.any():
        return None, "unknown (no finite value on the grid)"
    k = int(np.argmax(np.where(finite, vals, -np.inf)))
    best = float(vals[k])
    left, right = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    if right > left:
        res = scipy.optimize.minimize_scalar(
            lambda t: -float(fn(t)),
            bounds=(left, right),
            method="bounded",
            options={"xatol": 1e-12},
        )
        best = max(best, -float(res.fun))
    end_vals = [float(e) for e in ends if e is not None and e.is_finite and e.is_real]
    best = max([best, *end_vals])
    return best, f"numeric (4001-point grid on ({a:g}, {b:g}) + bounded refinement)"


def derive_prior(
    family: Family | str,
    neg_log_q: str | sp.Expr | None,
    *,
    name: str | None = None,
    parameters: dict[str, float] | None = None,
) -> Prior:
    """Derive ``rho = Q' o (A')^{-1}`` (Theorem 3) for ``Q = -log q`` written in ``f``.

    Args:
        family: a :class:`Family` or anything ``load_family`` accepts.
        neg_log_q: ``Q(f)`` as a whitelisted expression string (the spec grammar, in the symbol
            ``f`` and the names in ``parameters``) or a SymPy expression in :data:`F`; ``None``
            or a constant means a Gaussian-process prior (``rho = 0``).
        name: label (defaults to the expression text).
        parameters: numeric values of extra symbols in ``neg_log_q``.

    Raises:
        SpecError: unparsable ``Q``, a ``Q`` not convex (``q`` not log-concave: ``Q''`` is
            negative somewhere on a probe grid), or a family without a closed-form inverse link.
    """
    fam = family if isinstance(family, Family) else load_family(family)
    parameters = dict(parameters or {})
    if neg_log_q is None:
        Q: sp.Expr = sp.Integer(0)
    elif isinstance(neg_log_q, sp.Expr):
        Q = neg_log_q
    else:
        symbols = {"f": F, **{k: sp.Symbol(k, real=True) for k in parameters}}
        Q = parse_expression(neg_log_q, symbols, source="<prior>", field="neg_log_q")
    Q = Q.subs(
        {sp.Symbol(k, real=True): sp.Rational(repr(float(v))) for k, v in parameters.items()}
    )
    extra = Q.free_symbols - {F}
    if extra:
        raise SpecError(
            f"prior -log q has unknown symbols {sorted(map(str, extra))}; pass their values in "
            "parameters",
            source="<prior>",
            field="neg_log_q",
        )
    label = name or (str(Q) if Q != 0 else "gaussian_process")
    mu = Family.mu
    lo_mu, hi_mu = _mean_range(fam)
    dQ = sp.diff(Q, F)
    if dQ == 0:
        return Prior(
            fam.name, label, Q, sp.Integer(0), sp.Integer(0), (lo_mu, hi_mu), 0.0, "symbolic"
        )
    d2Q = sp.diff(dQ, F)
    _check_convex(Q, d2Q)
    if fam.inverse_link is None:
        raise SpecError(
            f"family {fam.name!r} has no closed-form inverse link (A')^-1, so rho = Q' o (A')^-1 "
            "cannot be derived symbolically",
            source="<prior>",
        )
    etas = _probe_etas(fam)
    probes = [float(sp.N(fam.sigma.subs(ETA, e), 30)) for e in etas]
    rho = _simplest(dQ.subs(F, fam.inverse_link), mu, probes)
    drho = _simplest(sp.diff(rho, mu), mu, probes)
    sup, method = _sup_drho(drho, (lo_mu, hi_mu), d2Q.subs(F, ETA), fam)
    return Prior(fam.name, label, Q, rho, drho, (lo_mu, hi_mu), sup, method)


def _check_convex(Q: sp.Expr, d2Q: sp.Expr) -> None:
    """``Q'' >= 0`` (log-concave ``q``): a proof when SymPy decides the sign, otherwise a check
    on 2001 points of [-50, 50]; a negative value is an error."""
    nonneg = d2Q.is_nonnegative
    if nonneg:
        return
    fn = sp.lambdify(F, d2Q, modules=["numpy", "scipy"])
    grid = np.linspace(-50.0, 50.0, 2001)
    with np.errstate(all="ignore"):
        vals = np.asarray(fn(grid), dtype=float) * np.ones_like(grid)
    bad = np.isfinite(vals) & (vals < -1e-12)
    if nonneg is False or bad.any():
        where = float(grid[np.argmax(bad)]) if bad.any() else float("nan")
        raise SpecError(
            f"prior -log q = {Q} is not convex (Q'' < 0 near "
            f"f = {where:g}): q must be log-concave (Theorem 3)",
            source="<prior>",
            field="neg_log_q",
        )


__all__ = ["F", "Prior", "derive_prior"]
