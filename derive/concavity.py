"""Is an activation admissible for a positive concave DEQ (pcDEQ)? Symbolic answers.

A pcDEQ layer (Gabor, Piotrowski, Cavalcante, ICML 2024) is ``T_x(z) = sigma(W z + x)`` with
``W >= 0`` elementwise, ``x >= 0`` and ``z`` in the nonnegative orthant. Its pre-activations
``W z + x`` then range over ``[lower, oo)`` with ``lower = min x >= 0``, and nonlinear
Perron-Frobenius theory (standard interference mappings) needs, on ``[lower, oo)``:

* ``sigma' >= 0`` (monotone),
* ``sigma'' <= 0`` (concave; for piecewise-linear ``sigma`` the distributional second
  derivative, e.g. ``-delta(t - 6)`` for ReLU6, must be a nonpositive measure),
* ``sigma(lower) > 0`` or, when ``sigma(lower) = 0``, a strictly positive input ``x > 0``
  (positivity of ``T(0) = sigma(x)``),
* existence: ``sigma`` bounded, or the asymptotic slope ``s_inf = lim_{t->oo} sigma(t)/t``
  times ``rho(W)`` below 1 (the asymptotic mapping is ``T_inf(z) = s_inf W z``).

For an exponential family ``sigma = A'`` is always nondecreasing (``sigma' = A'' > 0``, the
variance), so the question is concavity, ``A''' <= 0`` on ``[0, oo)``, and whether the natural
parameter domain contains ``[0, oo)`` at all.

Method of proof (``prove_sign``): ``eta = lower + t`` with ``t`` a positive SymPy symbol;
Heaviside/DiracDelta factors of distributional derivatives become nonnegative symbols; SymPy's
assumption system is asked for the sign, then again after rewriting in ``exp`` and substituting
``e^t = 1 + s`` (``s > 0``), which turns logistic/hyperbolic expressions into rational
functions of ``s`` whose sign SymPy reads off the factored form. If no proof is found, the sign
is evaluated with mpmath at 40 digits on a grid: a strict violation is a counterexample
(``disproven``), otherwise the verdict is ``numerical`` (evidence, not proof), with the grid
and the worst value recorded.

Result for the built-in families (checked in ``tests/test_pcdeq.py``), on ``[0, oo)``:

=====================  ==========  ==================================================
family                 verdict     why
=====================  ==========  ==================================================
bernoulli              proven      ``A''' = -s(s+1)/(s+2)^3``, ``e^t = 1+s``; bounded,
                                   ``sigma(0) = 1/2 > 0``
binomial (n)           proven      ``n`` times the Bernoulli case; ``sigma(0) = n/2``
ising (tanh)           proven      ``A''' = -8s(s+1)^2(s+2)/(s^2+2s+2)^3``; bounded,
                                   ``sigma(0) = 0``: needs ``x > 0``
gaussian (identity)    proven      ``A''' = 0`` (affine); unbounded, ``s_inf = 1``: needs
                                   ``rho(W) < 1`` and ``x > 0``
continuous_bernoulli   numerical   Langevin-type ``1/2 + L(t/2)/2``; SymPy cannot sign
                                   ``A'''``, grid evidence only; bounded, ``sigma(0)=1/2``
poisson (exp)          disproven   ``A''' = e^t > 0``: convex
gamma, negative_bin.,  n/a         natural domain ``(-oo, 0)`` misses the orthant
bose_einstein,
fermi_dirac
=====================  ==========  ==================================================

Why one module of this size (just over 400 lines): the named activations and the symbolic
sign tests that certify them are read together as one proof procedure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import mpmath
import sympy as sp

from deqfam.vocab import Finding, Outcome, Strength

from .family import Family, builtin_names, load_family
from .primitives import StablePrimitive, to_definition

ETA = sp.Symbol("eta", real=True)
_T = sp.Symbol("t", positive=True)
_S = sp.Symbol("s", positive=True)

#: Standard activations in the symbol ``eta`` (their behaviour on [0, oo) is what matters).
NAMED_ACTIVATIONS: dict[str, sp.Expr] = {
    "tanh": sp.tanh(ETA),
    "softsign": ETA / (1 + sp.Abs(ETA)),
    "sigmoid": 1 / (1 + sp.exp(-ETA)),
    "relu6": sp.Min(sp.Max(ETA, 0), 6),
    "relu": sp.Max(ETA, 0),
    "identity": ETA,
    "softplus": sp.log(1 + sp.exp(ETA)),
    "exp": sp.exp(ETA),
}

#: Grid (offsets from ``lower``) of the numerical fallback and of counterexample searches.
_GRID = [sp.Rational(k, 8) for k in range(1, 81)] + [sp.Integer(k) for k in (12, 16, 25, 40, 64)]


@dataclass(frozen=True)
class SignVerdict:
    """Outcome of deciding ``expr >= 0`` (or ``<= 0``) for every ``eta > lower``.

    ``status`` is ``proven`` (symbolic), ``disproven`` (symbolic, or an mpmath counterexample at
    40 digits: ``witness``), ``numerical`` (no violation on the grid; ``worst`` is the value
    closest to violating), or ``unknown``.
    """

    status: str
    method: str
    witness: float | None = None
    worst: float | None = None

    @property
    def finding(self) -> Finding:
        """This verdict in the shared vocabulary (:mod:`deqfam.vocab`): ``proven`` passes by
        proof, ``numerical`` by evidence (value: the worst grid value), ``disproven`` fails by
        proof (a symbolic sign or a 40-digit counterexample, value: the witness), ``unknown``
        and ``not_applicable`` are undecided."""
        outcome, strength, value = {
            "proven": (Outcome.PASS, Strength.PROVEN, self.worst),
            "numerical": (Outcome.PASS, Strength.NUMERICAL, self.worst),
            "disproven": (Outcome.FAIL, Strength.PROVEN, self.witness),
        }.get(self.status, (Outcome.UNDECIDED, None, None))
        return Finding(outcome, strength, value, self.method)


@dataclass(frozen=True)
class ConcavityVerdict:
    """Is ``sigma`` admissible for a pcDEQ on ``[lower, oo)``? (module docstring).

    Attributes:
        name: family or activation name.
        applicable: the domain of ``sigma`` contains ``[lower, oo)``.
        monotone, concave: ``SignVerdict`` statuses of ``sigma' >= 0`` and ``sigma'' <= 0``.
        bounded: ``sup_{t >= lower} sigma(t) < oo`` (``None``: SymPy could not take the limit).
        asymptotic_slope: ``s_inf = lim sigma(t)/t`` (0 for bounded ``sigma``).
        value_at_lower: ``sigma(lower)`` (as a limit where ``sigma`` has a removable singularity).
        needs_positive_input: ``sigma(lower) <= 0``: positivity needs ``x > lower``.
        needs_spectral_condition: unbounded ``sigma``: existence needs ``s_inf rho(W) < 1``.
        evidence: methods and worst values of the sign checks.
    """

    name: str
    lower: float
    applicable: bool
    monotone: str
    concave: str
    bounded: bool | None
    asymptotic_slope: float | None
    value_at_lower: float | None
    needs_positive_input: bool
    needs_spectral_condition: bool
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def admissible(self) -> bool:
        """Monotone and concave on ``[lower, oo)`` (proven or numerically supported)."""
        ok = ("proven", "numerical")
        return self.applicable and self.monotone in ok and self.concave in ok

    @property
    def proven(self) -> bool:
        """Admissibility holds by symbolic proof (not just numerical evidence)."""
        return self.applicable and self.monotone == "proven" and self.concave == "proven"

    @property
    def verdict(self) -> str:
        """``proven`` / ``numerical`` / ``disproven`` / ``not_applicable`` / ``unknown``."""
        if not self.applicable:
            return "not_applicable"
        if "disproven" in (self.monotone, self.concave):
            return "disproven"
        if self.proven:
            return "proven"
        if self.admissible:
            return "numerical"
        return "unknown"

    @property
    def findings(self) -> dict[str, Finding]:
        """``monotone`` and ``concave`` in the shared vocabulary (:mod:`deqfam.vocab`);
        skipped, with the reason, when the domain does not contain ``[lower, oo)``."""
        if not self.applicable:
            reason = str(self.evidence.get("reason", "not applicable"))
            skipped = Finding(Outcome.SKIPPED, None, None, reason)
            return {"monotone": skipped, "concave": skipped}
        return {k: SignVerdict(**self.evidence[k]).finding for k in ("monotone", "concave")}

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(verdict=self.verdict, admissible=self.admissible, proven=self.proven)
        return out


def _plain(expr: sp.Expr) -> sp.Expr:
    """Replace stable primitives by their elementary definitions."""
    return to_definition(expr) if expr.has(StablePrimitive) else expr


def _distributions_to_symbols(expr: sp.Expr) -> sp.Expr:
    """Heaviside(u) in [0, 1] and DiracDelta(u) >= 0 become nonnegative symbols, so a
    distributional derivative's sign is read off like an ordinary expression's."""
    reps: dict[sp.Expr, sp.Expr] = {}
    for k, h in enumerate(expr.atoms(sp.Heaviside)):
        reps[h] = sp.Symbol(f"_heaviside{k}", nonnegative=True)
    for k, d in enumerate(expr.atoms(sp.DiracDelta)):
        reps[d] = sp.Symbol(f"_dirac{k}", nonnegative=True)
    return expr.xreplace(reps) if reps else expr


def _sign_by_assumptions(expr: sp.Expr, want: str) -> str | None:
    """``proven``/``disproven``/None for ``expr >= 0`` (want='nonneg') or ``<= 0``."""
    try:
        good = expr.is_nonnegative if want == "nonneg" else expr.is_nonpositive
        bad = expr.is_negative if want == "nonneg" else expr.is_positive
    except (TypeError, RecursionError, ValueError):  # pragma: no cover - SymPy internals
        return None
    if good:
        return "proven"
    if bad:
        return "disproven"
    return None


def prove_sign(expr: sp.Expr, want: str, lower: sp.Expr | int = 0) -> SignVerdict:
    """Decide ``expr(eta) >= 0`` (``want='nonneg'``) or ``<= 0`` (``'nonpos'``) for all
    ``eta > lower`` (module docstring: assumptions, then ``e^t = 1 + s``, then a grid)."""
    if want not in ("nonneg", "nonpos"):
        raise ValueError(f"want must be 'nonneg' or 'nonpos', got {want!r}")
    lower = sp.nsimplify(lower)
    shifted = _distributions_to_symbols(_plain(expr).subs(ETA, lower + _T))
    attempts = [("SymPy assumptions, eta = lower + t (t > 0)", lambda: shifted)]
    attempts.append(("SymPy assumptions after simplify", lambda: sp.simplify(shifted)))

    def exp_substitution() -> sp.Expr:
        e = sp.simplify(shifted.rewrite(sp.exp))
        return sp.factor(sp.together(sp.simplify(sp.expand(e.subs(_T, sp.log(1 + _S))))))

    attempts.append(("rational form after exp(t) = 1 + s (s > 0)", exp_substitution))
    for method, build in attempts:
        try:
            candidate = build()
        except (TypeError, ValueError, NotImplementedError, RecursionError):
            continue
        status = _sign_by_assumptions(candidate, want)
        if status is not None:
            return SignVerdict(status, method)
    return _numerical_sign(shifted, want)


def _numerical_sign(shifted: sp.Expr, want: str) -> SignVerdict:
    """Evaluate ``expr(lower + t)`` at 40 digits on the grid ``_GRID``."""
    if shifted.free_symbols - {_T}:
        return SignVerdict("unknown", "free symbols other than eta: no numerical check")
    f = sp.lambdify(_T, shifted, modules="mpmath")
    worst_value, worst_t = None, None
    with mpmath.workdps(40):
        for t in _GRID:
            try:
                v = f(mpmath.mpf(t.p) / t.q)
            except (ZeroDivisionError, ValueError, TypeError, OverflowError):
                continue
            v = mpmath.re(v)
            signed = v if want == "nonneg" else -v  # >= 0 means OK
            if worst_value is None or signed < worst_value:
                worst_value, worst_t = signed, float(t)
            # A counterexample: clearly beyond 40-digit rounding.
            if signed < -(mpmath.mpf(10) ** -30) * (1 + abs(v)):
                return SignVerdict(
                    "disproven",
                    f"counterexample at eta = lower + {float(t):g} (mpmath, 40 digits)",
                    witness=float(t),
                    worst=float(v),
                )
    if worst_value is None:
        return SignVerdict("unknown", "could not evaluate on the grid")
    grid = f"grid lower + t, t in (0, 64] ({len(_GRID)} points), mpmath 40 digits"
    sign = 1 if want == "nonneg" else -1
    method = f"no violation on {grid} (no symbolic proof)"
    return SignVerdict("numerical", method, worst_t, sign * float(worst_value))


def _branch_near(expr: sp.Expr, point: sp.Expr) -> sp.Expr:
    """For Min/Max/Piecewise in ``t``: the piece that holds as ``t -> point`` (``0+`` or
    ``oo``), chosen by evaluating the conditions beyond every numeric breakpoint."""
    if not expr.has(sp.Min, sp.Max, sp.Piecewise):
        return expr
    pw = sp.piecewise_fold(expr.rewrite(sp.Piecewise))
    if not isinstance(pw, sp.Piecewise):
        return pw
    cuts = [
        float(a)
        for cond in pw.args
        for rel in cond.cond.atoms(sp.Rel)
        for a in rel.args
        if a.is_number and a.is_finite
    ]
    positive = [c for c in cuts if c > 0]
    probe = max(cuts, default=0.0) + 1.0 if point == sp.oo else min(positive, default=1.0) / 2
    for piece, cond in pw.args:
        if bool(cond.subs(_T, probe)):
            return piece
    return expr


def _limit(expr: sp.Expr, point: sp.Expr, direction: str = "+") -> sp.Expr | None:
    """``lim_{t -> point} expr`` in the positive symbol ``t`` (None if SymPy cannot tell)."""
    expr = _branch_near(expr, point)
    try:
        value = sp.limit(expr, _T, point, direction)
    except (NotImplementedError, ValueError, TypeError, ZeroDivisionError, RecursionError):
        return None
    return None if value.has(sp.Limit) or value is sp.nan else value


def _as_float(value: sp.Expr | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def activation_concavity(
    sigma: sp.Expr | str,
    name: str | None = None,
    lower: float | sp.Expr = 0,
    domain: tuple[sp.Expr, sp.Expr] = (-sp.oo, sp.oo),
    dsigma: sp.Expr | None = None,
    d2sigma: sp.Expr | None = None,
    monotone_proof: SignVerdict | None = None,
) -> ConcavityVerdict:
    """pcDEQ admissibility of ``sigma(eta)`` on ``[lower, oo)`` (module docstring).

    ``sigma`` is a SymPy expression in ``ETA`` or a name in ``NAMED_ACTIVATIONS``. ``dsigma``,
    ``d2sigma`` default to SymPy derivatives; ``monotone_proof`` may carry an existing proof of
    ``sigma' > 0`` (e.g. the strict convexity of ``A`` for an exponential family).
    """
    if isinstance(sigma, str):
        if sigma not in NAMED_ACTIVATIONS:
            raise KeyError(f"unknown activation {sigma!r}; known: {sorted(NAMED_ACTIVATIONS)}")
        name = name or sigma
        sigma = NAMED_ACTIVATIONS[sigma]
    name = name or str(sigma)
    lower = sp.nsimplify(lower)
    lo, hi = domain
    applicable = bool(hi == sp.oo) and bool(sp.sympify(lo) <= lower)
    if not applicable:
        return ConcavityVerdict(
            name,
            float(lower),
            False,
            "not_applicable",
            "not_applicable",
            None,
            None,
            None,
            False,
            False,
            {"reason": f"domain ({lo}, {hi}) does not contain [{lower}, oo)"},
        )
    sigma_plain = _plain(sigma)
    d1 = sp.diff(sigma_plain, ETA) if dsigma is None else _plain(dsigma)
    d2 = sp.diff(d1, ETA) if d2sigma is None else _plain(d2sigma)
    mono = monotone_proof or prove_sign(d1, "nonneg", lower)
    conc = prove_sign(d2, "nonpos", lower)
    # Limits in t = eta - lower > 0, where Max/Min/Abs of eta already simplify.
    shifted = sigma_plain.subs(ETA, lower + _T)
    sup = _limit(shifted, sp.oo, "-")
    slope = _limit(shifted / _T, sp.oo, "-")
    bounded = None if sup is None else bool(sup.is_finite)
    if bounded:
        slope = sp.Integer(0)
    at_lower = _limit(shifted, sp.Integer(0), "+")
    value_at_lower = _as_float(at_lower)
    slope_f = _as_float(slope)
    evidence = {
        "sigma": str(sigma_plain),
        "monotone": asdict(mono),
        "concave": asdict(conc),
        "sup": str(sup),
        "asymptotic_slope": str(slope),
    }
    return ConcavityVerdict(
        name=name,
        lower=float(lower),
        applicable=True,
        monotone=mono.status,
        concave=conc.status,
        bounded=bounded,
        asymptotic_slope=slope_f,
        value_at_lower=value_at_lower,
        needs_positive_input=value_at_lower is None or value_at_lower <= 0,
        needs_spectral_condition=not bounded,
        evidence=evidence,
    )


def family_concavity(family: Family | str, lower: float = 0) -> ConcavityVerdict:
    """pcDEQ admissibility of an exponential family's activation ``sigma = A'``.

    Monotonicity is inherited from the family's strict-convexity proof (``A'' > 0``) when that
    proof exists; concavity is ``A''' <= 0`` on ``[lower, oo)`` (``prove_sign``).
    """
    fam = load_family(family)
    mono = None
    if fam.convexity.proven:
        mono = SignVerdict("proven", f"A'' > 0 on the domain ({fam.convexity.method})")
    return activation_concavity(
        fam.sigma,
        name=fam.name,
        lower=lower,
        domain=fam.domain,
        dsigma=fam.dsigma,
        d2sigma=fam.d2sigma,
        monotone_proof=mono,
    )


def builtin_concavity_table(lower: float = 0) -> dict[str, ConcavityVerdict]:
    """``family_concavity`` for every built-in family (the table in the module docstring)."""
    return {name: family_concavity(name, lower) for name in builtin_names()}


__all__ = [
    "NAMED_ACTIVATIONS",
    "ConcavityVerdict",
    "SignVerdict",
    "activation_concavity",
    "builtin_concavity_table",
    "family_concavity",
    "prove_sign",
]
