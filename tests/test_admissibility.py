"""Admissibility verifier (Lemma 1): verdicts, their strength, and the evidence behind them.

Every numeric claim is checked against something computed another way: SymPy series (exact
rationals), scipy.stats laws, closed forms of |phi|, an mpmath quadrature of the damped
Fourier integral, or the spec's own base measure h (which the checker never uses to decide).
"""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from scipy import stats
from sympy import QQ
from sympy.polys.ring_series import rs_exp
from sympy.polys.rings import ring as PolyRing

from deqfam.derive.admissibility import (
    EXIT_CODES,
    Report,
    check,
    default_tilts,
    plot_report,
    recognise,
)
from deqfam.derive.family import builtin_names, derive_family, load_family
from deqfam.derive.spec import ETA, parse_spec

VALID_BUILTINS = [n for n in builtin_names() if n != "fermi_dirac"]
BOSE_EINSTEIN_J = [0, 0.5, 1, 2]

_X = sp.Symbol("x")


def user_family(log_partition: str, domain: str = "[-oo, oo]", support: str = "real", **kw):
    """A user spec (YAML text) parsed and derived exactly as the CLI would."""
    params = kw.pop("parameters", "{}")
    name = kw.pop("name", "user_family")
    text = (
        f"name: {name}\nsupport: {support}\nlog_partition: {log_partition}\n"
        f"parameters: {params}\ndomain: {domain}\n"
    )
    return derive_family(parse_spec(text, source="<test>"))


def series_coeffs(expr: sp.Expr, order: int) -> list[sp.Rational]:
    """Taylor coefficients of expr in _X at 0 by SymPy's own series (independent engine)."""
    ser = sp.series(expr, _X, 0, order).removeO()
    return [sp.nsimplify(ser.coeff(_X, k)) for k in range(order)]


def exp_series(coeffs: dict[int, sp.Rational], order: int) -> list[sp.Rational]:
    """Coefficients of exp(sum_k c_k x^k) up to x^(order-1), exactly, by SymPy's ring_series
    (``rs_exp`` over QQ): an engine independent of the checker's own."""
    ring, x = PolyRing("x", QQ)
    p = sum(
        (QQ(int(sp.Rational(c).p), int(sp.Rational(c).q)) * x**k for k, c in coeffs.items()),
        ring.zero,
    )
    e = rs_exp(p, x, order)
    return [QQ.to_sympy(e.coeff(x**k) if k else e.coeff(1)) for k in range(order)]


def assert_no_false_rejection(rep: Report) -> None:
    bad = [e for e in rep.evidence if e.outcome not in ("pass", "skipped")]
    assert not bad, [f"{e.stage}: {e.summary}" for e in bad]
    assert len(rep.stage("base_measure")) == len(rep.tilts)
    assert len(rep.stage("bound")) == len(rep.tilts)


# --------------------------------------------------------------------------------------------
# Valid families: admissible, never rejected at any tilt, recovered h equal to the spec's h
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALID_BUILTINS)
def test_valid_builtins_are_admissible_at_every_tilt(name):
    fam = load_family(name)
    rep = check(fam)
    assert rep.verdict == "admissible" and rep.strength == "proven", rep.format_text()
    assert rep.exit_code == 0
    assert_no_false_rejection(rep)
    assert rep.convexity["status"] == "proven"
    lo, hi = fam.domain_floats
    assert all(lo < t < hi for t in rep.tilts)
    # the recovered tilted law, mapped back to h(y) = p(y) e^{A(theta0) - theta0 y}, agrees with
    # the spec's base measure (the checker never used it): lattice masses relative, smoothed
    # continuous densities against scipy quad of h convolved with N(0, s^2)
    for e in rep.stage("base_measure"):
        d = e.details
        assert abs(d["total_mass"] - 1.0) < 1e-9
        if "spec_base_measure_max_rel_error" in d:
            assert d["spec_base_measure_max_rel_error"] < 1e-6, d
            assert d["mass_outside_declared_support"] == 0.0
        if "spec_base_measure_max_abs_error" in d:
            assert d["spec_base_measure_max_abs_error"] < 1e-9, d


@pytest.mark.parametrize("j", BOSE_EINSTEIN_J)
def test_bose_einstein_admissible_for_each_order(j):
    fam = load_family("bose_einstein", j=j)
    rep = check(fam)
    assert rep.verdict == "admissible" and rep.strength == "proven", rep.format_text()
    assert_no_false_rejection(rep)
    # the domain is (-oo, 0): exp(A(i r)) is undefined, so every tilt is negative
    assert all(t < 0 for t in rep.tilts)
    series = rep.stage("series")[0]
    assert series.outcome == "pass" and series.details["min_coefficient"] >= 0


def test_bose_einstein_masses_match_sympy_series():
    """j = 1: exp(Li_2(x)) = sum c_n x^n; the DFT masses at theta0 are c_n e^{n theta0 - A}."""
    fam = load_family("bose_einstein", j=1)
    rep = check(fam, tilts=(-1.0,))
    curve = rep.curves[0]
    assert curve.method == "lattice"
    c = exp_series({k: sp.Rational(1, k**2) for k in range(1, 13)}, 12)
    A0 = float(mpmath.polylog(2, mpmath.exp(-1)))
    for n in range(12):
        expected = float(c[n]) * math.exp(-n - A0)
        got = curve.values[curve.y == n][0]
        assert abs(got - expected) < 1e-14 + 1e-10 * expected, (n, got, expected)


def test_recovered_lattice_masses_match_scipy():
    theta = 0.25
    for name, law in (
        ("poisson", stats.poisson(math.exp(theta))),
        ("binomial", stats.binom(16, 1 / (1 + math.exp(-theta)))),
    ):
        curve = check(name, tilts=(theta,)).curves[0]
        ks = np.arange(0, 30)
        got = np.array([curve.values[curve.y == k][0] for k in ks])
        np.testing.assert_allclose(got, law.pmf(ks), atol=1e-14, rtol=0, err_msg=name)
    theta = -1.0
    curve = check("negative_binomial", tilts=(theta,)).curves[0]
    ks = np.arange(0, 40)
    got = np.array([curve.values[curve.y == k][0] for k in ks])
    ref = stats.nbinom(3, 1 - math.exp(theta)).pmf(ks)
    np.testing.assert_allclose(got, ref, atol=1e-14, rtol=0)


def test_recovered_gaussian_density_is_the_smoothed_normal():
    """Gaussian at theta0: mu_theta0 = N(theta0, 1), damped by s: N(theta0, 1 + s^2)."""
    rep = check("gaussian", tilts=(0.7,))
    curve = rep.curves[0]
    s = rep.stage("base_measure")[0].details["damping_s"]
    ref = stats.norm(0.7, math.sqrt(1 + s**2)).pdf(curve.y)
    assert np.max(np.abs(curve.values - ref)) < 1e-14


def test_continuous_bernoulli_removable_singularity_is_not_a_domain_error():
    rep = check("continuous_bernoulli")
    dom = rep.stage("domain")[0]
    assert dom.outcome == "pass"
    assert dom.details["grid_range"][0] < 0 < dom.details["grid_range"][1]
    assert rep.verdict == "admissible"


def test_logarithmic_example_is_admissible_numerically():
    """A = log(-log(1 - e^eta)) is in no registry: the numerical stages decide."""
    rep = check("examples/logarithmic.yaml")
    assert rep.verdict == "admissible", rep.format_text()
    assert rep.strength == "numerical"
    assert_no_false_rejection(rep)
    # exp(A) = -log(1 - x) = sum_{y>=1} x^y / y: masses at theta0 in closed form
    theta = rep.tilts[1]
    x = math.exp(theta)
    curve = next(c for c in rep.curves if c.tilt == theta)
    for y in range(1, 15):
        expected = x**y / y / -math.log1p(-x)
        assert abs(curve.values[curve.y == y][0] - expected) < 1e-14
    assert abs(curve.values[curve.y == 0][0]) < 1e-14
    series = rep.stage("series")[0]
    assert series.outcome == "pass" and series.strength == "numerical"
    assert series.details["coefficients"][:4] == ["0", "1", "1/2", "1/3"]
    for e in rep.stage("base_measure"):
        assert e.details["spec_base_measure_max_rel_error"] < 1e-6


# --------------------------------------------------------------------------------------------
# Fermi-Dirac: determined at high precision (the paper only says "not shown")
# --------------------------------------------------------------------------------------------


def test_fermi_dirac_is_not_admissible_with_exact_witness():
    """Proof that A = -Li_3(-e^eta) (fermi_dirac, j = 2) is not a log-partition function.

    For eta < 0, x = e^eta lies in (0, 1), inside the disc of convergence of
    -Li_3(-x) = sum_k (-1)^{k+1} x^k / k^3, so exp(A(eta)) = sum_n c_n x^n with the c_n real
    and sum |c_n| x^n < oo: exp(A) is the Laplace transform of the signed measure
    nu = sum_n c_n delta_n. Two-sided Laplace transforms are unique on any open interval, so if
    exp(A) were the transform of a nonnegative mu, then mu = nu. But, in exact rationals,

        c_6 = -46529/93312000 < 0,

    a negative mass at y = 6. Hence no nonnegative base measure exists.
    """
    rep = check("fermi_dirac")
    assert rep.verdict == "not_admissible" and rep.strength == "proven"
    assert rep.exit_code == 1
    ser = rep.stage("series")[0]
    assert ser.outcome == "fail" and ser.strength == "proven"
    assert ser.details["mode"] == "exact rationals"
    assert ser.details["first_negative_index"] == 6
    assert sp.Rational(ser.details["first_negative"]) == sp.Rational(-46529, 93312000)
    # independent: SymPy's series of exp of the truncated polylog series (exact rationals)
    c = exp_series({k: sp.Rational((-1) ** (k + 1), k**3) for k in range(1, 10)}, 9)
    assert c[6] == sp.Rational(-46529, 93312000)
    assert all(ck >= 0 for ck in c[:6])
    # and the DFT of phi at theta0 = -1 sees that mass: c_6 e^{-6} / exp(A(-1)), A by mpmath
    A0 = float(-mpmath.polylog(3, -mpmath.exp(-1)))
    expected = float(c[6]) * math.exp(-6 - A0)
    neg = next(e for e in rep.stage("base_measure") if e.details["tilt"] == -1.0)
    assert neg.outcome == "fail" and neg.details["at_y"] == 6.0
    assert abs(neg.details["most_negative_mass"] - expected) < 1e-12


def test_fermi_dirac_other_orders():
    """j = 1: first negative coefficient at x^4, -1/288; j = 0 is softplus (Bernoulli)."""
    rep1 = check(load_family("fermi_dirac", j=1))
    ser = rep1.stage("series")[0]
    assert rep1.verdict == "not_admissible" and ser.details["first_negative_index"] == 4
    c = exp_series({k: sp.Rational((-1) ** (k + 1), k**2) for k in range(1, 8)}, 6)
    assert sp.Rational(ser.details["first_negative"]) == c[4] == sp.Rational(-1, 288)
    rep0 = check(load_family("fermi_dirac", j=0))
    assert rep0.verdict == "admissible"
    assert_no_false_rejection(rep0)


# --------------------------------------------------------------------------------------------
# Convex but not admissible, and not convex
# --------------------------------------------------------------------------------------------


def test_sextic_polynomial_only_the_structural_rule_catches_it():
    """eta^2/2 + 1e-6 eta^6 is strictly convex, |phi| <= 1 and no negative mass is visible at
    the checker's resolution; Marcinkiewicz's theorem rejects it for certain."""
    fam = user_family("eta**2/2 + 1e-6*eta**6")
    rep = check(fam)
    assert rep.verdict == "not_admissible" and rep.strength == "proven"
    struct = rep.stage("structure")[0]
    assert struct.outcome == "fail" and struct.details["polynomial_degree"] == 6
    assert "Marcinkiewicz" in rep.reason
    others = [e for e in rep.evidence if e.stage != "structure"]
    assert all(e.outcome in ("pass", "skipped") for e in others), rep.format_text()
    numeric_only = check(fam, structural=False)
    assert numeric_only.verdict == "admissible" and numeric_only.strength == "numerical"


def test_sextic_1e4_negative_density_confirmed_by_quadrature():
    """With coefficient 1e-4 the damped inversion itself finds negative density at
    theta0 = 1.75 (>= 1e6 x the floor); an mpmath quadrature of the same integral agrees."""
    rep = check(user_family("eta**2/2 + 1e-4*eta**6"))
    assert rep.verdict == "not_admissible" and rep.strength == "proven"
    assert rep.stage("structure")[0].outcome == "fail"
    e = next(e for e in rep.stage("base_measure") if e.details["tilt"] == 1.75)
    assert e.outcome == "fail" and e.strength == "numerical"
    d = e.details
    assert -d["most_negative_density"] >= 1e6 * d["error_floor"]
    with mpmath.workdps(20):
        th, y, s = mpmath.mpf(1.75), mpmath.mpf(d["at_y"]), mpmath.mpf(d["damping_s"])

        def A(z):
            return z**2 / 2 + mpmath.mpf("1e-4") * z**6

        def integrand(r):
            phase = A(th + 1j * r) - A(th) - 1j * r * y
            return mpmath.re(mpmath.exp(phase)) * mpmath.exp(-(s**2) * r**2 / 2)

        ref = mpmath.quad(integrand, mpmath.linspace(0, 12, 25)) / mpmath.pi
    assert abs(float(ref) - d["most_negative_density"]) < 1e-6 * abs(float(ref))
    assert ref < 0


def test_half_bernoulli_rejected_by_series_and_base_measure():
    """0.5 log(1 + e^eta): Bernoulli is not infinitely divisible, and exp(A) = sqrt(1 + x)
    has coefficient binomial(1/2, 2) = -1/8 at x^2."""
    fam = user_family("0.5*log(1 + exp(eta))", support="nonnegative_integers")
    rep = check(fam)
    assert rep.verdict == "not_admissible" and rep.strength == "proven"
    assert rep.stage("structure")[0].outcome == "skipped"  # 1/2 A of a non-ID law: no rule
    ser = rep.stage("series")[0]
    assert ser.details["first_negative_index"] == 2
    assert sp.Rational(ser.details["first_negative"]) == sp.binomial(sp.Rational(1, 2), 2)
    assert series_coeffs(sp.sqrt(1 + _X), 3)[2] == sp.Rational(-1, 8)
    # numerically: at theta0 = -1.5 the DFT mass at y = 2 is -(1/8) x^2 / sqrt(1 + x)
    e = next(e for e in rep.stage("base_measure") if e.details["tilt"] == -1.5)
    x = math.exp(-1.5)
    assert e.outcome == "fail" and e.details["at_y"] == 2.0
    assert abs(e.details["most_negative_mass"] - (-(x**2) / 8 / math.sqrt(1 + x))) < 1e-14
    assert -e.details["most_negative_mass"] >= 1e6 * e.details["error_floor"]


def test_compound_poisson_like_turns_negative_only_at_order_11():
    """A = e^eta - e^{2 eta}/50: a 'Levy measure' with a negative atom at 2. A'' > 0 on
    (-oo, log 12.5); coefficients of exp(A) are positive up to x^10, negative at x^11."""
    fam = user_family("exp(eta) - exp(2*eta)/50", "[-oo, 2.5]", "nonnegative_integers")
    rep = check(fam)
    assert rep.verdict == "not_admissible" and rep.strength == "proven"
    assert rep.stage("convexity")[0].outcome == "pass"
    ser = rep.stage("series")[0]
    assert ser.details["first_negative_index"] == 11
    c = exp_series({1: 1, 2: sp.Rational(-1, 50)}, 12)
    assert all(ck > 0 for ck in c[:11])
    assert sp.Rational(ser.details["first_negative"]) == c[11] == sp.Rational(-1321, 3248437500000)
    worst = next(e for e in rep.stage("base_measure") if e.details["tilt"] == 2.2)
    assert worst.outcome == "fail"


def test_bound_violation_gives_a_gram_witness():
    """exp(A) = 1 - x/10 + x^2 (signed masses 1, -1/10, 1): convex on (-3, 3) but
    |phi(pi)| = (1 + x/10 + x^2)/(1 - x/10 + x^2) > 1."""
    fam = user_family("log(1 - exp(eta)/10 + exp(2*eta))", "[-3, 3]", "nonnegative_integers")
    rep = check(fam)
    assert rep.verdict == "not_admissible" and rep.strength == "proven"
    assert rep.stage("convexity")[0].outcome == "pass"
    bound = next(e for e in rep.stage("bound") if e.details["tilt"] == 1.8)
    assert bound.outcome == "fail" and bound.strength == "proven"
    w = bound.details["witness"]
    x = math.exp(1.8)
    closed = (1 + x / 10 + x**2) / (1 - x / 10 + x**2)
    assert abs(bound.details["argmax_r"] - math.pi) < 1e-12
    assert abs(float(w["abs_phi"]) - closed) < 1e-12
    gram = np.array([[1.0, -closed], [-closed, 1.0]])  # phi(pi) is real and negative here
    assert np.linalg.eigvalsh(gram)[0] < 0
    assert float(w["determinant"]) == pytest.approx(1 - closed**2, rel=1e-12)
    # the zero of exp(A) on the unit circle makes theta0 = 0 undecidable, not a false verdict
    mid = next(e for e in rep.stage("bound") if e.details["tilt"] == 0.0)
    assert mid.outcome == "inconclusive"


def test_non_convex_fails_at_the_convexity_stage():
    rep = check(user_family("sin(eta)"))
    assert rep.verdict == "not_admissible" and rep.strength == "proven"
    conv = rep.stage("convexity")[0]
    assert conv.outcome == "fail" and conv.strength == "proven"
    assert rep.convexity["status"] == "violated"
    t = conv.details["argmin"]
    assert -math.sin(t) < 0 and float(conv.details["min_A2"]) == pytest.approx(-math.sin(t))


def test_linear_A_is_not_strictly_convex():
    rep = check(user_family("2*eta + 1"))
    assert rep.verdict == "not_admissible"
    assert rep.stage("convexity")[0].outcome == "fail"


def test_declared_domain_beyond_the_natural_one_is_rejected():
    """-log(1 - e^eta) is complex for eta > 0: declaring (-oo, 1) is a bad domain."""
    rep = check(user_family("-log(1 - exp(eta))", "[-oo, 1]", "nonnegative_integers"))
    assert rep.verdict == "not_admissible"
    dom = rep.stage("domain")[0]
    assert dom.outcome == "fail" and all(t > 0 for t in dom.details["bad_points"])
    assert rep.stage("structure")[0].outcome == "skipped"  # registry checks the domain too


# --------------------------------------------------------------------------------------------
# Registry and closure rules: recognised from the form of A, never from the name
# --------------------------------------------------------------------------------------------


def test_registry_closure_rules():
    oo = sp.oo
    rec = recognise(3 * sp.log(1 + sp.exp(2 * ETA + 1)) + sp.exp(ETA) + ETA**2 + 5 * ETA, (-oo, oo))
    assert rec is not None and not rec.infinitely_divisible
    rec = recognise(sp.Rational(7, 10) * sp.polylog(2, sp.exp(ETA)), (-oo, 0))
    assert rec is not None and rec.infinitely_divisible
    assert recognise(-sp.Rational(3, 2) * sp.log(2 - ETA), (-oo, 1)) is not None
    assert recognise(sp.log((sp.exp(3 * ETA) - 1) / (3 * ETA)), (-oo, oo)) is not None
    # t A, t not an integer, of a non-infinitely-divisible law: no rule applies
    assert recognise(sp.log(1 + sp.exp(ETA)) / 2, (-oo, oo)) is None
    assert recognise(sp.Rational(1, 2) * (sp.log(sp.cosh(ETA)) + sp.exp(ETA)), (-oo, oo)) is None
    # the atom's natural domain must contain the declared one
    assert recognise(-sp.log(1 - sp.exp(ETA)), (-oo, 1)) is None
    assert recognise(-sp.log(1 - sp.exp(ETA)), (-oo, -1)) is not None
    # negative Levy mass, or the Fermi-Dirac form: not in the registry
    assert recognise(sp.exp(ETA) - sp.exp(2 * ETA) / 50, (-oo, 2)) is None
    assert recognise(-sp.polylog(3, -sp.exp(ETA)), (-oo, 0)) is None


def test_verdict_depends_on_A_not_on_the_name():
    impostor = user_family(
        "-polylog(3, -exp(eta))", "[-oo, 0]", "nonnegative_integers", name="bose_einstein"
    )
    assert check(impostor).verdict == "not_admissible"
    renamed = user_family("polylog(2, exp(eta))", "[-oo, 0]", "nonnegative_integers", name="zz")
    rep = check(renamed)
    assert rep.verdict == "admissible" and rep.strength == "proven"


# --------------------------------------------------------------------------------------------
# Report API
# --------------------------------------------------------------------------------------------


def test_inconclusive_when_phi_vanishes_on_every_path():
    """Ising at theta0 = 0: phi(r) = cos r vanishes at pi/2; without the registry nothing
    decides, and the report says so (exit code 3)."""
    rep = check("ising", tilts=(0.0,), structural=False)
    assert rep.verdict == "inconclusive" and rep.strength is None
    assert rep.exit_code == 3


def test_tilts_must_lie_inside_the_domain():
    with pytest.raises(ValueError, match="not inside"):
        check(load_family("bose_einstein", j=0), tilts=(0.0,))
    assert default_tilts((-sp.oo, sp.Integer(0))) == (-3.0, -1.0, -0.3)
    assert default_tilts((sp.Integer(-3), sp.Integer(3))) == pytest.approx((-1.8, 0.0, 1.8))


def test_report_serialisation_text_and_plot(tmp_path, capsys):
    rep = check("bernoulli", progress=True)
    d = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert {"name", "verdict", "strength", "convexity", "evidence"} <= set(d)
    assert d["name"] == "bernoulli" and d["verdict"] == "admissible"
    assert all({"stage", "outcome", "details"} <= set(e) for e in d["evidence"])
    hankel = next(e for e in d["evidence"] if e["stage"] == "hankel")
    assert hankel["details"]["finitely_many_atoms"] == 2  # two atoms: a zero pivot, not a fail
    text = rep.format_text()
    assert "bernoulli: admissible (proven)" in text and "base_measure" in text
    png = plot_report(rep, tmp_path / "bernoulli.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = check(user_family("0.5*log(1 + exp(eta))", support="nonnegative_integers"))
    json.dumps(bad.to_dict(), allow_nan=False)
    plot_report(bad, tmp_path / "bad.png")
    assert EXIT_CODES == {"admissible": 0, "not_admissible": 1, "inconclusive": 3}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("binomial", {"n": 1}),
        ("binomial", {"n": 40}),
        ("negative_binomial", {"r": 0.5}),
        ("negative_binomial", {"r": 7}),
        ("gamma", {"k": 0.3}),
        ("gamma", {"k": 5}),
        ("bose_einstein", {"j": -0.5}),
        ("bose_einstein", {"j": 3}),
        ("bose_einstein", {"j": 1.5, "beta": 0.5}),
        ("bose_einstein", {"j": 1.5, "beta": 2}),
    ],
)
def test_no_false_rejection_across_parameters(name, params):
    rep = check(load_family(name, **params))
    assert rep.verdict == "admissible" and rep.strength == "proven"
    assert_no_false_rejection(rep)
