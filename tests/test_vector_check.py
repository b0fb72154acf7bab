"""Admissibility in k dimensions (issue 16): check_vector on the built-in vector families,
the multivariate Marcinkiewicz rule, non-convex A and closure of separable sums.

The views are built here from SymPy expressions (the A of the shared design), independent of
how vector specs are parsed. Independent checks: the categorical masses recovered by the
k-dimensional DFT equal the softmax probabilities (closed form), and the Gaussian one's
Hessian determinant equals the closed form -1/(4 eta2^3).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import sympy as sp

from deqfam.derive.admissibility.vector import VectorSpecView, build_vector_context, check_vector
from deqfam.derive.spec import Y
from deqfam.vocab import Outcome, Strength, Verdict

E1, E2, E3 = sp.symbols("eta1 eta2 eta3", real=True)
OO = sp.oo
PLANE = ((-OO, OO), (-OO, OO))


def builtin_views() -> dict[str, VectorSpecView]:
    """The five built-in vector families of the shared design, with their base measures."""
    return {
        "normal_unknown_variance": VectorSpecView(
            "normal_unknown_variance",
            -(E1**2) / (4 * E2) - sp.log(-2 * E2) / 2,
            (E1, E2),
            ((-OO, OO), (-OO, 0)),
            "real",
            (Y, Y**2),
            1 / sp.sqrt(2 * sp.pi),
        ),
        "gamma_shape": VectorSpecView(
            "gamma_shape",
            sp.loggamma(E1 + 1) - (E1 + 1) * sp.log(-E2),
            (E1, E2),
            ((-1, OO), (-OO, 0)),
            "positive_real",
            (sp.log(Y), Y),
            sp.Integer(1),
        ),
        "beta": VectorSpecView(
            "beta",
            sp.loggamma(E1 + 1) + sp.loggamma(E2 + 1) - sp.loggamma(E1 + E2 + 2),
            (E1, E2),
            ((-1, OO), (-1, OO)),
            "unit_interval",
            (sp.log(Y), sp.log(1 - Y)),
            sp.Integer(1),
        ),
        "inverse_gaussian": VectorSpecView(
            "inverse_gaussian",
            -2 * sp.sqrt(E1 * E2) - sp.log(-2 * E2) / 2,
            (E1, E2),
            ((-OO, 0), (-OO, 0)),
            "positive_real",
            (Y, 1 / Y),
            1 / sp.sqrt(2 * sp.pi * Y**3),
        ),
        "categorical": VectorSpecView(
            "categorical",
            sp.log(1 + sp.exp(E1) + sp.exp(E2) + sp.exp(E3)),
            (E1, E2, E3),
            ((-OO, OO),) * 3,
            "nonnegative_integers",
            tuple(sp.KroneckerDelta(Y, i) for i in (1, 2, 3)),
            sp.Integer(1),
            parameters={"K": 4},
            support_max=3,
        ),
    }


@pytest.mark.parametrize("name", sorted(builtin_views()))
def test_builtin_vector_families_are_admissible(name):
    report = check_vector(builtin_views()[name], lines=1)
    assert report.verdict == Verdict.ADMISSIBLE, report.format_text()
    assert report.exit_code == 0
    assert not [e for e in report.evidence if e.outcome == Outcome.FAIL]
    # the JSON form keeps the scalar report's keys
    data = json.loads(json.dumps(report.to_dict()))
    assert {"name", "verdict", "convexity", "evidence", "domain"} <= set(data)
    assert list(data["domain"]) == [str(e) for e in builtin_views()[name].etas]


def test_categorical_dft_masses_are_the_softmax_probabilities():
    report = check_vector(builtin_views()["categorical"], lines=0)
    dft = next(e for e in report.stage("base_measure") if "DFT" in e.summary)
    theta = np.array(dft.details["tilt"])
    probs = np.exp(np.concatenate([[0.0], theta]))
    probs /= probs.sum()  # softmax with the reference category 0
    h = {tuple(v): m for v, m in dft.details["recovered_h_on_T_image"]}
    # h = mass * exp(A(theta) - <theta, T>) must be the counting measure (h = 1) on the image
    assert set(h) == {(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)}
    for hv in h.values():
        assert hv == pytest.approx(1.0, abs=1e-12)
    A0 = math.log(1 + np.exp(theta).sum())
    for v, hv in h.items():
        category = v.index(1) + 1 if 1 in v else 0
        mass = hv * math.exp(float(np.dot(theta, v)) - A0)
        assert mass == pytest.approx(probs[category], rel=1e-12)
    assert dft.details["mass_off_T_image"] == 0


def test_gaussian_hessian_and_symbolic_convexity():
    view = builtin_views()["normal_unknown_variance"]
    ctx = build_vector_context(view)
    rng = np.random.default_rng(0)
    for _ in range(5):
        p = np.array([rng.normal(), -rng.uniform(0.1, 3.0)])
        assert np.linalg.det(ctx.hessian_at(p)) == pytest.approx(-1 / (4 * p[1] ** 3), rel=1e-10)
    report = check_vector(view, lines=0)
    assert report.convexity["status"] == Strength.PROVEN


@pytest.mark.parametrize(
    ("A", "degree"),
    [
        ((E1 + E2) ** 4 + E1**2 + E2**2, 4),
        (E1**2 + E2**4 + E1 * E2, 4),
        (sp.log(1 + sp.exp(E1 - E2)) + (E1 + E2) ** 4, 4),
        (sp.exp(E1) + E2**3 + E2**2, 3),
    ],
)
def test_polynomial_along_a_line_is_rejected_by_marcinkiewicz(A, degree):
    view = VectorSpecView("quartic", A, (E1, E2), PLANE, "real", (Y, Y**2))
    report = check_vector(view, lines=0)
    assert report.verdict == Verdict.NOT_ADMISSIBLE
    assert report.strength == Strength.PROVEN
    assert report.reason.startswith("structure:")
    assert "Marcinkiewicz" in report.reason and f"degree {degree}" in report.reason
    # independent: the line found really carries a polynomial of that degree
    e = report.stage("structure")[0]
    d = e.details.get("direction")
    if d is not None:
        t = sp.Symbol("t")
        g = A.subs(
            {E1: sp.Rational(1, 3) + t * sp.S(d[0]), E2: sp.Rational(-1, 7) + t * sp.S(d[1])}
        )
        assert sp.Poly(sp.expand(g), t).degree() == degree


def test_non_convex_vector_A_is_rejected():
    # softplus(eta1) + softplus(eta2) - 3 eta1 eta2: Hessian [[<=1/4, -3], [-3, <=1/4]] is
    # indefinite everywhere (determinant <= 1/16 - 9 < 0)
    A = sp.log(1 + sp.exp(E1)) + sp.log(1 + sp.exp(E2)) - 3 * E1 * E2
    view = VectorSpecView("saddle", A, (E1, E2), PLANE, "nonnegative_integers", (Y, Y))
    report = check_vector(view, lines=0)
    assert report.verdict == Verdict.NOT_ADMISSIBLE
    assert report.reason.startswith("convexity:")
    w = report.stage("convexity")[0].details["witness"]
    H = np.array(
        [[1 / (4 * math.cosh(w[0] / 2) ** 2), -3.0], [-3.0, 1 / (4 * math.cosh(w[1] / 2) ** 2)]]
    )
    assert np.linalg.eigvalsh(H)[0] < 0


def test_quadratic_with_indefinite_hessian_is_rejected():
    view = VectorSpecView("saddle_poly", E1**2 - E2**2, (E1, E2), PLANE, "real", (Y, Y**2))
    report = check_vector(view, lines=0)
    assert (report.verdict, report.strength) == (Verdict.NOT_ADMISSIBLE, Strength.PROVEN)


def test_positive_definite_quadratic_is_a_gaussian():
    A = E1**2 + E1 * E2 + E2**2 + 3 * E1
    view = VectorSpecView("gauss2", A, (E1, E2), PLANE, "real", (Y, Y**2))
    report = check_vector(view, lines=0)
    assert (report.verdict, report.strength) == (Verdict.ADMISSIBLE, Strength.PROVEN)
    assert report.reason.startswith("structure:")


def test_separable_sum_is_admissible_by_closure():
    # Poisson in eta1 plus Bernoulli in eta2: exp(A) is the Laplace transform of the product
    A = sp.exp(E1) + sp.log(1 + sp.exp(E2))
    view = VectorSpecView("poisson_bernoulli", A, (E1, E2), PLANE, "nonnegative_integers", (Y, Y))
    report = check_vector(view)
    assert (report.verdict, report.strength) == (Verdict.ADMISSIBLE, Strength.PROVEN)
    closure = report.stage("closure")[0]
    assert closure.details["separable"] is True
    assert [p["direction"] for p in closure.details["parts"]] == [["1", "0"], ["0", "1"]]


def test_sum_in_linear_forms_is_admissible_by_closure():
    # affine maps: softplus(eta1 + eta2) + exp(eta1 - eta2) spans R^2 with (1, 1), (1, -1)
    A = sp.log(1 + sp.exp(E1 + E2)) + sp.exp(E1 - E2)
    view = VectorSpecView("mixed", A, (E1, E2), PLANE, "real", (Y, Y**2))
    report = check_vector(view)
    assert (report.verdict, report.strength) == (Verdict.ADMISSIBLE, Strength.PROVEN)
    assert report.stage("closure")[0].details["separable"] is False


def test_single_linear_form_is_not_strictly_convex():
    # softplus(eta1 + eta2) is flat along (1, -1): not minimal
    A = sp.log(1 + sp.exp(E1 + E2))
    view = VectorSpecView("flat", A, (E1, E2), PLANE, "real", (Y, Y**2))
    report = check_vector(view, lines=0)
    assert report.verdict == Verdict.NOT_ADMISSIBLE
    assert "affine along" in report.reason


def test_view_validates_its_shape():
    with pytest.raises(ValueError, match="2 natural parameters"):
        VectorSpecView("bad", E1 + E2, (E1, E2), PLANE[:1], "real", (Y, Y**2))
    with pytest.raises(ValueError):
        VectorSpecView("bad", E1 + E2, (E1, E2), PLANE, "reals", (Y, Y**2))
