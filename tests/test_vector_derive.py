"""Vector families (issue 16, derive side): spec parsing, derivation, generated modules.

References are independent of the derivation: mpmath.diff of the spec's own A at 50 digits
for the mean, closed forms or mpmath.quad over the density for the covariance of T.
"""

from __future__ import annotations

import importlib

import mpmath
import numpy as np
import pytest
import torch

from deqfam.derive.family import load_family
from deqfam.derive.spec import SpecError, parse_spec
from deqfam.derive.vector_builtins import vector_builtin_names, vector_builtin_spec_text
from deqfam.derive.vector_check import hessian_positive_definite
from deqfam.derive.vector_codegen import render_vector
from deqfam.derive.vector_laws import identify_vector_law

VECTOR = ["beta", "categorical", "gamma_shape", "inverse_gaussian", "normal_unknown_variance"]
#: interior points of each family's box
POINTS = {
    "normal_unknown_variance": [(0.3, -0.7), (-2.0, -0.05), (4.0, -3.0)],
    "gamma_shape": [(0.5, -1.0), (-0.6, -0.2), (3.0, -4.0)],
    "beta": [(0.5, 1.5), (2.0, 0.2), (-0.7, -0.3)],  # quad is accurate for bounded densities
    "inverse_gaussian": [(-0.5, -1.0), (-2.0, -0.1), (-0.05, -3.0)],
    "categorical": [(0.3, -1.0, 2.0), (-4.0, 0.0, 1.0), (8.0, 7.5, -3.0)],
}
#: the spec's A written by hand in mpmath (independent of SymPy)
MP_A = {
    "normal_unknown_variance": lambda a, b: -(a**2) / (4 * b) - mpmath.log(-2 * b) / 2,
    "gamma_shape": lambda a, b: mpmath.loggamma(a + 1) - (a + 1) * mpmath.log(-b),
    "beta": lambda a, b: (
        mpmath.loggamma(a + 1) + mpmath.loggamma(b + 1) - mpmath.loggamma(a + b + 2)
    ),
    "inverse_gaussian": lambda a, b: -2 * mpmath.sqrt(a * b) - mpmath.log(-2 * b) / 2,
    "categorical": lambda *e: mpmath.log(1 + sum(mpmath.exp(x) for x in e)),
}


def _module(name):
    return importlib.import_module(f"deqfam.generated.{name}")


def _mp_grad(name, point):
    with mpmath.workdps(50):
        f = MP_A[name]
        k = len(point)
        return [
            mpmath.diff(
                f, tuple(mpmath.mpf(x) for x in point), tuple(int(i == j) for j in range(k))
            )
            for i in range(k)
        ]


def test_vector_builtins_are_the_five():
    assert vector_builtin_names() == VECTOR


@pytest.mark.parametrize("name", VECTOR)
def test_generated_mean_matches_mpmath_gradient(name):
    fam = _module(name).FAMILY
    for point in POINTS[name]:
        got = fam.mean(torch.tensor(point, dtype=torch.float64)).numpy()
        want = np.array([float(v) for v in _mp_grad(name, point)])
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-300)
        with mpmath.workdps(50):
            a_want = float(MP_A[name](*[mpmath.mpf(x) for x in point]))
        assert float(fam.log_partition(torch.tensor(point, dtype=torch.float64))) == (
            pytest.approx(a_want, rel=1e-10)
        )


def _density_covariance(name, point):
    """Cov[T(y)] by mpmath.quad over h(y) exp(<eta, T(y)> - A(eta))."""
    a, b = (mpmath.mpf(x) for x in point)
    if name == "gamma_shape":
        T, lo, hi, logh = (lambda y: (mpmath.log(y), y)), 0, mpmath.inf, lambda y: 0
    elif name == "beta":
        T, lo, hi, logh = (lambda y: (mpmath.log(y), mpmath.log(1 - y))), 0, 1, lambda y: 0
    else:  # inverse Gaussian
        T, lo, hi = (lambda y: (y, 1 / y)), 0, mpmath.inf

        def logh(y):
            return -mpmath.log(2 * mpmath.pi * y**3) / 2

    A = MP_A[name](a, b)

    def moment(f):
        def integrand(y):
            t = T(y)
            return f(t) * mpmath.exp(logh(y) + a * t[0] + b * t[1] - A)

        return mpmath.quad(integrand, [lo, mpmath.mpf("0.5") if hi == 1 else 1, hi], maxdegree=10)

    with mpmath.workdps(30):
        m = [moment(lambda t, i=i: t[i]) for i in range(2)]
        return np.array(
            [
                [float(moment(lambda t, i=i, j=j: t[i] * t[j]) - m[i] * m[j]) for j in range(2)]
                for i in range(2)
            ]
        )


def _closed_covariance(name, point):
    if name == "normal_unknown_variance":
        e1, e2 = point
        s2 = -1 / (2 * e2)
        m = e1 * s2
        return np.array([[s2, 2 * m * s2], [2 * m * s2, 4 * m * m * s2 + 2 * s2 * s2]])
    with mpmath.workdps(40):  # categorical: diag(p) - p p^T
        z = 1 + sum(mpmath.exp(x) for x in point)
        p = np.array([float(mpmath.exp(x) / z) for x in point])
    return np.diag(p) - np.outer(p, p)


@pytest.mark.parametrize("name", VECTOR)
def test_generated_covariance_is_the_covariance_of_T(name):
    fam = _module(name).FAMILY
    for point in POINTS[name][:2]:
        got = fam.covariance(torch.tensor(point, dtype=torch.float64)).numpy()
        if name in ("normal_unknown_variance", "categorical"):
            want = _closed_covariance(name, point)
        else:
            want = _density_covariance(name, point)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * np.abs(want).max())


def test_categorical_is_stable_for_large_parameters():
    fam = _module("categorical").FAMILY
    eta = torch.tensor([800.0, 799.0, -5.0], dtype=torch.float64)
    mu = fam.mean(eta)
    assert torch.isfinite(mu).all() and torch.isfinite(fam.covariance(eta)).all()
    assert float(fam.log_partition(eta)) == pytest.approx(800 + np.log1p(np.exp(-1.0)), rel=1e-14)


@pytest.mark.parametrize("name", ["normal_unknown_variance", "categorical"])
def test_inverse_mean_round_trips(name):
    fam = _module(name).FAMILY
    eta = torch.tensor(POINTS[name][0], dtype=torch.float64)
    torch.testing.assert_close(fam.inverse_mean(fam.mean(eta)), eta, rtol=1e-10, atol=1e-12)


def test_statistics_and_base_measures():
    y = torch.tensor([0.0, 1.0, 3.0, 2.0], dtype=torch.float64)
    onehot = _module("categorical").FAMILY.sufficient_statistic(y)
    assert onehot.tolist() == [[0, 0, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0]]
    ig = _module("inverse_gaussian").FAMILY
    yy = torch.tensor([0.5, 2.0], dtype=torch.float64)
    want = [-0.5 * np.log(2 * np.pi * v**3) for v in (0.5, 2.0)]
    np.testing.assert_allclose(ig.log_base_measure(yy).numpy(), want, rtol=1e-14)


@pytest.mark.parametrize("name", VECTOR)
def test_golden_vector_module_is_current(name):
    text = (importlib.resources.files("deqfam.generated") / f"{name}.py").read_text()
    fam = load_family(name)
    # the verdict recorded in the golden files; the check itself is tested in
    # tests/test_vector_check.py and test_vector_check_family_* below
    assert render_vector(fam, verdict="admissible") == text


@pytest.mark.parametrize("name", VECTOR)
def test_laws_are_identified(name):
    law = {"normal_unknown_variance": "normal"}.get(name, name)
    found = identify_vector_law(load_family(name))
    assert found is not None and found[0] == law
    if name == "categorical":
        assert found[1] == {"categories": 4}


def test_hessian_pd_proof_and_evidence():
    proof = hessian_positive_definite(load_family("normal_unknown_variance"))
    assert proof.outcome == "pass" and proof.strength == "proven"
    assert proof.details["symbolic"] == "proven"
    evidence = hessian_positive_definite(load_family("beta"))
    assert evidence.outcome == "pass" and evidence.strength == "numerical"
    assert evidence.details["symbolic"] == "unproven" and evidence.details["points"] > 0


def test_derive_command_reports_the_convexity_stage(capsys):
    """``deqfam derive`` of a vector spec prints the convexity stage's finding."""
    from deqfam.cli import main

    assert main(["derive", "normal_unknown_variance"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("Hess A"))
    assert line.split()[4] == "proven" and "Sylvester" in line


BAD = "name: v\nsupport: real\nnatural_parameters: [a, b]\n"


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        (
            BAD + "sufficient_statistic: [y]\nlog_partition: a**2 - log(-b)\n"
            "domain: {a: [-oo, oo], b: [-oo, 0]}\n",
            "sufficient_statistic",
            "1 entries but 2",
        ),
        (
            BAD + "sufficient_statistic: [y, y**2]\nlog_partition: a**2 - log(-b)\n"
            "domain: {a: [-oo, oo], c: [-oo, 0]}\n",
            "domain",
            "'c' is not a natural parameter",
        ),
        (
            BAD + "sufficient_statistic: [y, y**2]\nlog_partition: a**2 - lgamm(-b)\n"
            "domain: {a: [-oo, oo], b: [-oo, 0]}\n",
            "log_partition",
            "unknown function 'lgamm'",
        ),
        (
            BAD + "sufficient_statistic: [y, y**2]\nlog_partition: a**2\n"
            "domain: {a: [-oo, oo], b: [-oo, 0]}\n",
            "log_partition",
            "must depend on b",
        ),
    ],
)
def test_spec_errors_name_field_and_line(text, field, words):
    with pytest.raises(SpecError) as err:
        load_family(parse_spec(text, source="v.yaml"))
    assert err.value.field == field and words in str(err.value)
    assert (
        err.value.line
        == text.splitlines().index(next(l for l in text.splitlines() if l.startswith(field))) + 1
    )


@pytest.mark.slow  # derives categorical twice (K=4 and K=6): about 11 s
def test_categories_parameter_override():
    fam = load_family("categorical", K=6)
    assert fam.k == 5 and len(fam.grad) == 5
    assert "categories: K" in vector_builtin_spec_text("categorical")


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_runtime_polygamma_matches_mpmath(n):
    from deqfam.runtime.special_polygamma import polygamma

    xs = [1e-3, 0.3, 1.5, 3.0, 10.0, 250.0]
    got = polygamma(n, torch.tensor(xs, dtype=torch.float64)).numpy()
    want = np.array([float(mpmath.psi(n, x)) for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-13)


@pytest.mark.parametrize("name", ["normal_unknown_variance", "categorical"])
def test_vector_check_family_proves_known_laws(name):
    """The k-dimensional stages plus the known-law identity: admissible, by proof."""
    from deqfam.derive.vector_check import check_vector_family

    report = check_vector_family(load_family(name))
    assert report.verdict == "admissible" and report.strength == "proven"
    assert report.stage("known_law")[0].outcome == "pass"
