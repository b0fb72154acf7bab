"""Laplace posterior N(Z*, H(Z*)^{-1}) of Appendix D."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
import torch
from oracles.families import FAMILIES, problem, scipy_map_latents

from deqfam.runtime.laplace import (
    laplace_covariance,
    laplace_logdet,
    laplace_posterior,
    laplace_sample,
)
from deqfam.runtime.models import ExpFamPCA

F64 = torch.float64


def make_model(name, W, B, lam=0.1):
    model = ExpFamPCA(
        FAMILIES[name],
        W.shape[0],
        W.shape[1],
        lam=lam,
        dtype=F64,
        solver_options={"tol": 1e-13},
        on_nonconvergence="raise",
    )
    with torch.no_grad():
        model.W.copy_(W)
        model.B.copy_(B)
    return model


def numpy_hessian(name, W, B, Z, lam):
    """H_s = lam I + W^T diag(sigma'(W z_s + B)) W in numpy, for Bernoulli/Poisson/Gaussian."""
    eta = Z @ W.T + B
    slope = {
        "gaussian": np.ones_like(eta),
        "poisson": np.exp(eta),
        "bernoulli": np.exp(-np.logaddexp(0, eta) - np.logaddexp(0, -eta)),
    }[name]
    return np.stack([lam * np.eye(W.shape[1]) + W.T @ (s[:, None] * W) for s in slope])


@pytest.mark.parametrize("method", ["cholesky", "woodbury"])
def test_gaussian_covariance_is_closed_form(method):
    W, B, Y = problem("gaussian", n=5, d=50, l=2, seed=40)
    model = make_model("gaussian", W, B)
    with torch.no_grad():
        cov = laplace_covariance(model, Y, method=method)
        logdet = laplace_logdet(model, Y, method=method)
    expected = np.linalg.inv(0.1 * np.eye(2) + W.numpy().T @ W.numpy())
    for s in range(5):
        np.testing.assert_allclose(cov[s].numpy(), expected, rtol=0, atol=1e-12)
        assert float(logdet[s]) == pytest.approx(np.linalg.slogdet(expected)[1], abs=1e-12)


@pytest.mark.parametrize(("d", "l"), [(12, 3), (3, 7)])
def test_covariance_and_logdet_match_numpy_both_regimes(d, l):
    """l <= d uses Cholesky of H; l > d uses Woodbury and the determinant lemma on d x d."""
    W, B, Y = problem("bernoulli", n=4, d=d, l=l, w_scale=0.8, seed=41)
    model = make_model("bernoulli", W, B, lam=0.3)
    with torch.no_grad():
        post = laplace_posterior(model, Y)
    assert post.woodbury == (l > d)
    assert post.chol.shape == ((4, d, d) if l > d else (4, l, l))
    H = numpy_hessian("bernoulli", W.numpy(), B.numpy(), post.mean.numpy(), 0.3)
    np.testing.assert_allclose(post.covariance().numpy(), np.linalg.inv(H), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        post.logdet_covariance().numpy(), -np.linalg.slogdet(H)[1], rtol=1e-11
    )
    x = torch.randn(2, 4, l, dtype=F64, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(
        post.solve(x).numpy(),
        np.linalg.solve(H[None], x.numpy()[..., None])[..., 0],
        rtol=1e-9,
        atol=1e-12,
    )
    z = torch.randn(3, 4, l, dtype=F64, generator=torch.Generator().manual_seed(1))
    for s in range(4):
        ref = st.multivariate_normal(post.mean[s].numpy(), np.linalg.inv(H[s])).logpdf(
            z[:, s].numpy()
        )
        np.testing.assert_allclose(post.log_prob(z)[:, s].numpy(), ref, rtol=1e-10)


@pytest.mark.parametrize(("d", "l"), [(10, 3), (2, 4)])
def test_sample_covariance_is_inverse_hessian(d, l):
    """Sample mean and covariance of 1e5 draws per sample match Z* and H^{-1} (numpy).

    Tolerances: mean within 5 standard errors; covariance within 3% (relative Frobenius), about
    7x the Monte Carlo relative error ~sqrt(2/n) = 0.45% of a covariance estimate. A transposed
    factor
    (z = Z* + L^{-1} e) gives covariance (L^T L)^{-1}; the test checks it would be caught.
    """
    W, B, Y = problem("poisson", n=3, d=d, l=l, w_scale=0.6, seed=42)
    model = make_model("poisson", W, B)
    n = 100_000
    with torch.no_grad():
        draws = laplace_sample(model, Y, n, generator=torch.Generator().manual_seed(2)).numpy()
        post = laplace_posterior(model, Y)
    assert draws.shape == (n, 3, l)
    H = numpy_hessian("poisson", W.numpy(), B.numpy(), post.mean.numpy(), 0.1)
    for s in range(3):
        cov = np.linalg.inv(H[s])
        centred = draws[:, s] - draws[:, s].mean(0)
        sample_cov = centred.T @ centred / (n - 1)
        rel = np.linalg.norm(sample_cov - cov) / np.linalg.norm(cov)
        assert rel < 0.03, rel
        stderr = np.sqrt(np.diag(cov) / n)
        assert np.all(np.abs(draws[:, s].mean(0) - post.mean[s].numpy()) < 5 * stderr)
        if l <= d:
            Lf = np.linalg.cholesky(H[s])
            wrong = np.linalg.inv(Lf.T @ Lf)
            assert np.linalg.norm(wrong - cov) / np.linalg.norm(cov) > 0.1


def test_poisson_laplace_covariance_is_inverse_fd_hessian_at_scipy_mode():
    """Independent route to Appendix D: central finite differences of the numpy gradient of
    -log p(z | y) at scipy's mode, inverted, equal the Laplace covariance (1e-6 relative)."""
    W, B, Y = problem("poisson", n=3, d=50, l=2, seed=43)
    model = make_model("poisson", W, B)
    with torch.no_grad():
        cov = laplace_covariance(model, Y).numpy()
    modes = scipy_map_latents("poisson", W, B, Y, 0.1)
    Wn, Bn, Yn = W.numpy(), B.numpy(), Y.numpy()
    h = 1e-5
    for s in range(3):

        def grad(z, s=s):
            return 0.1 * z - Wn.T @ (Yn[s] - np.exp(Wn @ z + Bn))

        fd = np.stack(
            [(grad(modes[s] + h * e) - grad(modes[s] - h * e)) / (2 * h) for e in np.eye(2)], axis=1
        )
        np.testing.assert_allclose(cov[s], np.linalg.inv(fd), rtol=1e-6)


def test_poisson_laplace_close_to_importance_sampling_posterior():
    """True posterior moments by self-normalised importance sampling (numpy/scipy only):
    proposal N(Z*, 1.5^2 Sigma_laplace), 2e5 draws, seeded; data-generating scale
    W_ij ~ N(0, 1/2), d = 50, lam = 0.1.

    The Laplace approximation is not exact (the Poisson posterior is skewed), so the
    tolerances are statistical-plus-approximation ones: Laplace mean within 0.25 posterior
    standard deviations (Mahalanobis) of the IS mean, covariance within 5% (relative Frobenius).
    Observed: ~0.1 sd and ~1.5%; IS effective sample size ~69% (checked > 50%). A 2-D grid
    quadrature of the same posterior reproduces the IS mean, so the ~0.1 sd mean-mode gap is
    the posterior's skewness, not Monte Carlo error (~0.003 sd).
    """
    W, B, Y = problem("poisson", n=4, d=50, l=2, seed=44)
    model = make_model("poisson", W, B)
    with torch.no_grad():
        post = laplace_posterior(model, Y)
    mean, cov = post.mean.numpy(), post.covariance().numpy()
    Wn, Bn, Yn = W.numpy(), B.numpy(), Y.numpy()
    rng = np.random.default_rng(5)
    for s in range(4):
        proposal = st.multivariate_normal(mean[s], 1.5**2 * cov[s])
        z = proposal.rvs(200_000, random_state=rng)
        eta = z @ Wn.T + Bn
        log_target = (eta * Yn[s] - np.exp(eta)).sum(1) - 0.05 * (z * z).sum(1)
        log_w = log_target - proposal.logpdf(z)
        w = np.exp(log_w - log_w.max())
        w /= w.sum()
        assert 1.0 / np.sum(w**2) > 0.5 * len(w)
        is_mean = w @ z
        is_cov = (z - is_mean).T @ ((z - is_mean) * w[:, None])
        chol = np.linalg.cholesky(cov[s])
        assert np.linalg.norm(np.linalg.solve(chol, is_mean - mean[s])) < 0.25
        assert np.linalg.norm(is_cov - cov[s]) / np.linalg.norm(cov[s]) < 0.05


def test_invalid_method():
    W, B, Y = problem("gaussian", n=2, d=4, l=2, seed=45)
    with pytest.raises(ValueError, match="method must be one of"):
        laplace_covariance(make_model("gaussian", W, B), Y, method="svd")
    with torch.no_grad():
        assert math.isfinite(float(laplace_logdet(make_model("gaussian", W, B), Y).sum()))
