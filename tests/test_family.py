"""Derivation: stable forms against mpmath finite differences and independent references."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from oracles.high_precision import high_precision_derivative
from scipy import stats

from deqfam.derive.family import builtin_names, load_family
from deqfam.derive.primitives import logexpm1x
from deqfam.derive.spec import SpecError

BUILTINS = builtin_names()
N_POINTS = 50
# Stable forms are float64 expressions of a handful of operations: a few ulps of relative
# error each, so 1e-10 leaves ample room while catching any wrong derivative or branch.
RTOL = 1e-10


def test_catalogue_is_complete():
    assert set(BUILTINS) == {
        "gaussian",
        "bernoulli",
        "ising",
        "continuous_bernoulli",
        "poisson",
        "binomial",
        "bose_einstein",
        "fermi_dirac",
        "gamma",
        "negative_binomial",
    }


@pytest.mark.parametrize("name", BUILTINS)
def test_stable_forms_match_mpmath_finite_differences(name):
    fam = load_family(name)
    rng = np.random.default_rng(1234)
    etas = fam.sample_points(N_POINTS, rng)
    for role, order in (("log_partition", 0), ("activation", 1), ("activation_grad", 2)):
        got = fam.numpy_function(role)(etas) * np.ones_like(etas)
        ref = np.array([high_precision_derivative(fam, e, order) for e in etas])
        np.testing.assert_allclose(got, ref, rtol=RTOL, atol=0, err_msg=f"{name} {role}")


def _reference_moments(name: str, fam, eta: float) -> tuple[float, float] | None:
    p = dict(fam.parameters)
    if name == "gaussian":
        d = stats.norm(loc=eta, scale=1.0)
    elif name == "bernoulli":
        d = stats.bernoulli(1 / (1 + math.exp(-eta)))
    elif name == "poisson":
        d = stats.poisson(math.exp(eta))
    elif name == "binomial":
        d = stats.binom(int(p["n"]), 1 / (1 + math.exp(-eta)))
    elif name == "gamma":
        d = stats.gamma(a=float(p["k"]), scale=-1 / eta)
    elif name == "negative_binomial":
        d = stats.nbinom(float(p["r"]), -math.expm1(eta))
    elif name == "bose_einstein":
        j, beta = float(p["j"]), float(p["beta"])
        z = mpmath.exp(beta * eta)
        return (
            float(mpmath.polylog(j, z) / beta**j),
            float(mpmath.polylog(j - 1, z) / beta ** (j - 1)),
        )
    else:
        return None
    return float(d.mean()), float(d.var())


@pytest.mark.parametrize("name", BUILTINS)
def test_moments_match_independent_references(name):
    fam = load_family(name)
    rng = np.random.default_rng(99)
    mean_f, var_f = fam.numpy_function("activation"), fam.numpy_function("activation_grad")
    checked = 0
    for eta in fam.sample_points(10, rng, width=5.0):
        ref = _reference_moments(name, fam, float(eta))
        if ref is None:
            continue
        checked += 1
        np.testing.assert_allclose([mean_f(eta), var_f(eta)], ref, rtol=1e-9)
    if name in {
        "gaussian",
        "bernoulli",
        "poisson",
        "binomial",
        "gamma",
        "negative_binomial",
        "bose_einstein",
    }:
        assert checked == 10


@pytest.mark.parametrize("name", ["bernoulli", "ising", "poisson", "binomial", "negative_binomial"])
def test_base_measure_sums_to_exp_log_partition(name):
    """sum_y h(y) e^{eta T(y)} = e^{A(eta)}: the spec's h and A describe one law."""
    fam = load_family(name)
    support = {"binary": range(2), "plus_minus_one": (-1, 1)}.get(fam.support, range(400))
    if name == "binomial":
        support = range(int(fam.parameters["n"]) + 1)
    h = sp.lambdify(fam.y, fam.h, "mpmath")
    T = sp.lambdify(fam.y, fam.T, "mpmath")
    A = fam.mpmath_function(fam.A)
    with mpmath.workdps(40):
        for eta in (-1.7, -0.3):
            total = mpmath.fsum(
                h(mpmath.mpf(v)) * mpmath.exp(eta * T(mpmath.mpf(v))) for v in support
            )
            assert abs(total / mpmath.exp(A(mpmath.mpf(eta))) - 1) < 1e-25


def test_logarithmic_example_base_measure():
    fam = load_family("examples/logarithmic.yaml")
    with mpmath.workdps(40):
        eta = mpmath.mpf(-0.8)
        total = mpmath.nsum(lambda y: mpmath.exp(eta * y) / y, [1, mpmath.inf])
        assert abs(total - mpmath.exp(fam.mpmath_function(fam.A)(eta))) < 1e-30


@pytest.mark.parametrize("eta", [-700.0, 700.0])
def test_logistic_forms_do_not_overflow(eta):
    for name, scale in (("bernoulli", 1), ("binomial", 16)):
        fam = load_family(name)
        with np.errstate(all="raise"):
            a = fam.numpy_function("log_partition")(eta)
            s = fam.numpy_function("activation")(eta)
            ds = fam.numpy_function("activation_grad")(eta)
        assert np.isfinite([a, s, ds]).all()
        assert s == pytest.approx(scale if eta > 0 else 0.0, abs=1e-300)
        assert a == pytest.approx(scale * max(eta, 0.0), rel=1e-15, abs=1e-300)
    fam = load_family("ising")
    assert fam.numpy_function("log_partition")(eta) == pytest.approx(abs(eta) - math.log(2))


def test_continuous_bernoulli_removable_singularity():
    fam = load_family("continuous_bernoulli")
    sigma = fam.numpy_function("activation")
    etas = np.linspace(-1e-8, 1e-8, 101)
    np.testing.assert_allclose(sigma(etas), 0.5 + etas / 12, atol=1e-12, rtol=0)
    assert np.isfinite(sigma(np.array([-700.0, 0.0, 700.0]))).all()


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_logexpm1x_branches_agree_with_mpmath(k):
    xs = np.array([-700, -30, -2.0, -0.51, -0.49, -1e-3, 0.0, 1e-6, 0.3, 0.5, 0.51, 4.0, 700])
    got = logexpm1x.numpy_impl(k, xs)
    f = lambda x: mpmath.log(mpmath.expm1(x) / x)  # noqa: E731
    with mpmath.workdps(60):
        ref = [
            float(mpmath.diff(f, mpmath.mpf(x) if x != 0 else mpmath.mpf("1e-40"), k)) for x in xs
        ]
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-30)


@pytest.mark.parametrize("name", BUILTINS)
def test_strict_convexity_is_proven_symbolically(name):
    fam = load_family(name)
    assert fam.convexity.proven, fam.convexity


def test_nonconvex_is_not_proven(tmp_spec):
    fam = load_family(
        tmp_spec("name: wave\nsupport: real\nlog_partition: sin(eta)\ndomain: [-oo, oo]\n")
    )
    assert not fam.convexity.proven


@pytest.mark.parametrize(
    "name", ["gaussian", "bernoulli", "ising", "poisson", "binomial", "gamma", "negative_binomial"]
)
def test_inverse_link_round_trips(name):
    fam = load_family(name)
    assert fam.inverse_link is not None
    inv = sp.lambdify(fam.mu, fam.inverse_link, "mpmath")
    sig = fam.mpmath_function(fam.sigma)
    for eta in fam.sample_points(5, np.random.default_rng(5), width=4.0):
        assert abs(float(inv(sig(mpmath.mpf(eta)))) - eta) < 1e-10


def test_polylog_family_has_no_closed_inverse():
    assert load_family("bose_einstein").inverse_link is None


def test_parameters_override_and_rederive():
    fam = load_family("binomial", n=10)
    assert sp.simplify(fam.sigma - 10 * sp.exp(fam.eta) / (1 + sp.exp(fam.eta))) == 0
    with pytest.raises(SpecError, match="unknown parameter"):
        load_family("binomial", m=3)


def test_unknown_family_name():
    with pytest.raises(SpecError, match="no built-in family"):
        load_family("poison")
