"""``deqfam.ExponentialFamilyPCA``: the scikit-learn estimator (deqfam/estimator.py).

scikit-learn's own ``check_estimator`` suite runs on the Gaussian family (every check
applies: its support is the real line, like the checks' random data) and on the Poisson
family, where the checks that fit on the suite's random real-valued data cannot apply
(listed with the reason in ``POISSON_NOT_APPLICABLE``)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import optimize, stats

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from deqfam import ExponentialFamilyPCA  # noqa: E402
from deqfam.runtime.family import TorchFamily  # noqa: E402

#: why each of these checks cannot apply to a Poisson model: the suite fits on random
#: real-valued (often negative) data, outside the Poisson support (nonnegative integers),
#: which the estimator refuses with a ValueError naming the row and column. The same checks
#: pass on the Gaussian family below.
_NON_INTEGER = "the check's random data are non-integer reals, outside the Poisson support"
POISSON_NOT_APPLICABLE = {
    name: _NON_INTEGER
    for name in (
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit",
        "check_estimators_dtypes",
        "check_dtype_object",
        "check_pipeline_consistency",
        "check_estimators_nan_inf",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
        "check_transformer_n_iter",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_fit2d_1sample",
        "check_fit2d_1feature",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit2d_predict1d",
        "check_fit_score_takes_y",
    )
}


def _expected_failures(estimator):
    return POISSON_NOT_APPLICABLE if estimator.family == "poisson" else {}


@parametrize_with_checks(
    [ExponentialFamilyPCA(family="gaussian"), ExponentialFamilyPCA(family="poisson")],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_check_estimator(estimator, check):
    torch.set_num_threads(1)
    check(estimator)


def _counts(n: int = 40, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts from a rank-2 log-rate, and a binary label (the sign of latent 0)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    W = rng.normal(scale=0.6, size=(d, 2))
    return rng.poisson(np.exp(z @ W.T + 0.5)).astype(float), (z[:, 0] > 0).astype(int)


@pytest.fixture(scope="module")
def poisson_fit():
    X, y = _counts()
    return ExponentialFamilyPCA("poisson", 2).fit(X), X, y


def test_transform_is_the_map_latent_found_by_scipy(poisson_fit):
    """z* = argmin_z lam/2 |z|^2 - z^T W^T x + sum_j exp(W z + B)_j, by BFGS in scipy."""
    est, X, _ = poisson_fit
    W, B, lam = est.components_.T, est.offsets_, est.lam
    Z = est.transform(X[:5])
    for x, z in zip(X[:5], Z, strict=True):

        def J(v, x=x):
            eta = W @ v + B
            return 0.5 * lam * v @ v - x @ eta + np.exp(eta).sum()

        def grad(v, x=x):
            return lam * v - W.T @ (x - np.exp(W @ v + B))

        ref = optimize.minimize(J, np.zeros(2), jac=grad, method="BFGS", options={"gtol": 1e-12})
        np.testing.assert_allclose(z, ref.x, atol=1e-8)


def test_inverse_transform_is_the_poisson_mean(poisson_fit):
    est = poisson_fit[0]
    Z = np.random.default_rng(1).normal(size=(4, 2))
    np.testing.assert_allclose(
        est.inverse_transform(Z), np.exp(Z @ est.components_ + est.offsets_), rtol=1e-12
    )
    with pytest.raises(ValueError, match="n_components=2"):
        est.inverse_transform(np.zeros((2, 3)))


def test_score_is_the_scipy_log_likelihood_at_the_map_latents(poisson_fit):
    est, X, _ = poisson_fit
    rate = np.exp(est.transform(X) @ est.components_ + est.offsets_)
    ref = stats.poisson.logpmf(X, rate).sum(1)
    np.testing.assert_allclose(est.score_samples(X), ref, rtol=1e-10)
    assert math.isclose(est.score(X), ref.mean(), rel_tol=1e-10)


def test_fit_attributes_and_defaults_match_deqfam_fit(poisson_fit):
    """The estimator's fit is ``deqfam fit``'s second-order fit at the same defaults."""
    from deqfam.fitting import fit

    est, X, _ = poisson_fit
    res = fit(torch.as_tensor(X), "poisson", 2, progress=False, threads=1)
    np.testing.assert_allclose(est.components_, res.model.W.detach().numpy().T, atol=1e-10)
    np.testing.assert_allclose(est.offsets_, res.model.B.detach().numpy(), atol=1e-10)
    assert est.n_features_in_ == 6 and est.converged_ and est.stop_reason_ == "converged"
    assert est.n_iter_ == res.history.iterations
    np.testing.assert_allclose(est.transform(X), res.latents, atol=1e-7)


def test_validation_errors(poisson_fit):
    est, X, _ = poisson_fit
    with pytest.raises(NotFittedError):
        ExponentialFamilyPCA().transform(X)
    with pytest.raises(ValueError, match="X has 5 features, but ExponentialFamilyPCA"):
        est.transform(X[:, :5])
    bad = X.copy()
    bad[3, 4] = 2.5
    with pytest.raises(ValueError, match=r"row 3, column 4 is outside the family's support"):
        est.transform(bad)
    with pytest.raises(ValueError, match="n_components=7 must be an integer between 1 and"):
        ExponentialFamilyPCA(n_components=7).fit(X)
    with pytest.raises(ValueError, match="no built-in family or spec file named"):
        ExponentialFamilyPCA(family="no_such_family").fit(X)


def test_score_needs_a_base_measure():
    """A family without ``log h`` fits and transforms, but has no likelihood to score."""
    no_h = TorchFamily(
        name="gaussian_without_h",
        domain=(-math.inf, math.inf),
        log_partition=lambda eta: eta * eta / 2,
        activation=lambda eta: eta,
        activation_grad=torch.ones_like,
        sufficient_statistic=lambda y: y,
    )
    X = np.random.default_rng(0).normal(size=(20, 3))
    est = ExponentialFamilyPCA(no_h, 1).fit(X)
    assert est.transform(X).shape == (20, 1)
    with pytest.raises(ValueError, match="no base measure"):
        est.score(X)


def test_in_a_pipeline_with_parameters_set_through_it():
    X, y = _counts(n=60, seed=2)
    pipe = Pipeline([("pca", ExponentialFamilyPCA("poisson")), ("clf", LogisticRegression())])
    pipe.set_params(pca__n_components=1, pca__lam=0.5)
    assert pipe.get_params()["pca__n_components"] == 1
    pipe.fit(X, y)
    alone = clone(pipe.named_steps["pca"]).fit(X)
    np.testing.assert_allclose(pipe.named_steps["pca"].transform(X), alone.transform(X))
    # the label is the sign of a latent of the data, so one latent predicts it well
    assert pipe.score(X, y) > 0.75
    assert pipe.predict(X[:3]).shape == (3,)


def test_deqfam_imports_without_scikit_learn():
    """``import deqfam`` (and a fit through ExpFamPCA) must not need scikit-learn; asking
    for the estimator without it says what to install."""
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "import deqfam\n"
        "deqfam.load_family('poisson')\n"
        "try:\n"
        "    deqfam.ExponentialFamilyPCA\n"
        "except ImportError as exc:\n"
        "    print('IMPORT-ERROR', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "IMPORT-ERROR" in out.stdout and "deqfam[sklearn]" in out.stdout


def test_one_family_per_column():
    """Mixed columns (Gaussian, Poisson, Bernoulli): transform is the MAP latent found by
    scipy, inverse_transform the closed-form means, score_samples the scipy.stats
    log-likelihood at the MAP latents."""
    rng = np.random.default_rng(3)
    z = rng.normal(size=30)
    X = np.column_stack(
        [
            1.0 + z + 0.3 * rng.normal(size=30),
            rng.poisson(np.exp(0.5 + 0.5 * z)),
            (rng.random(30) < 1 / (1 + np.exp(-2 * z))).astype(float),
        ]
    )
    with pytest.warns(ConvergenceWarning, match="max_iterations after 3 iterations"):
        est = ExponentialFamilyPCA(["gaussian", "poisson", "bernoulli"], 1, max_iter=3).fit(X)
    W, B, lam = est.components_[0], est.offsets_, est.lam

    def means(v):
        eta = np.outer(v, W) + B
        return np.column_stack([eta[:, 0], np.exp(eta[:, 1]), 1 / (1 + np.exp(-eta[:, 2]))])

    def J(v, x):
        eta = W * v[0] + B
        A = np.array([eta[0] ** 2 / 2, np.exp(eta[1]), np.logaddexp(0, eta[2])])
        return 0.5 * lam * v[0] ** 2 - x @ eta + A.sum()

    Z = est.transform(X)
    for x, zi in zip(X[:4], Z[:4], strict=True):
        ref = optimize.minimize(J, np.zeros(1), args=(x,), method="BFGS", options={"gtol": 1e-12})
        np.testing.assert_allclose(zi, ref.x, atol=1e-7)
    mu = means(Z[:, 0])
    np.testing.assert_allclose(est.inverse_transform(Z), mu, rtol=1e-12)
    ref = (
        stats.norm.logpdf(X[:, 0], mu[:, 0])
        + stats.poisson.logpmf(X[:, 1], mu[:, 1])
        + stats.bernoulli.logpmf(X[:, 2], mu[:, 2])
    )
    np.testing.assert_allclose(est.score_samples(X), ref, rtol=1e-10)
    bad = X.copy()
    bad[5, 2] = 0.5
    with pytest.raises(ValueError, match=r"row 5, column 2"):
        est.transform(bad)
    with pytest.raises(ValueError, match="X has 3 features but family lists 2 column families"):
        ExponentialFamilyPCA(["gaussian", "poisson"], 1).fit(X)
