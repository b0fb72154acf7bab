"""ColumnFamilies and the hand-built vector families: closed forms against autograd of A,
quadrature and torch.distributions; per-entry log-likelihoods against scipy.stats; the block
Hessian against autograd."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate as si
import scipy.stats as st
import torch
from oracles.vector_families import (
    BERNOULLI,
    CATEGORICAL,
    GAMMA_SHAPE,
    INTERIOR_ETA,
    NORMAL,
    POISSON,
    VECTOR_FAMILIES,
)

from deqfam.runtime.columns import ColumnFamilies, as_columns

F64 = torch.float64


@pytest.mark.parametrize("name", sorted(VECTOR_FAMILIES))
def test_mean_and_covariance_are_autograd_derivatives_of_A(name):
    fam = VECTOR_FAMILIES[name]
    eta = torch.tensor(INTERIOR_ETA[name], dtype=F64)
    grad = torch.autograd.functional.jacobian(fam.log_partition, eta)
    hess = torch.autograd.functional.hessian(fam.log_partition, eta)
    torch.testing.assert_close(fam.mean(eta), grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fam.covariance(eta), hess, rtol=1e-10, atol=1e-12)
    if fam.inverse_mean is not None:
        torch.testing.assert_close(fam.inverse_mean(fam.mean(eta)), eta, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "name", ["normal_unknown_variance", "gamma_shape", "beta", "inverse_gaussian"]
)
def test_density_normalises_and_moments_by_quadrature(name):
    """h exp(<eta, T> - A) integrates to 1, and E T, Cov T by quadrature = mean, covariance."""
    fam = VECTOR_FAMILIES[name]
    eta = torch.tensor(INTERIOR_ETA[name], dtype=F64)
    lo, hi = {"normal_unknown_variance": (-np.inf, np.inf), "beta": (0, 1)}.get(name, (0, np.inf))

    def density(y: float) -> float:
        t = torch.tensor(y, dtype=F64)
        log = (
            fam.log_base_measure(t)
            + (eta * fam.sufficient_statistic(t)).sum()
            - fam.log_partition(eta)
        )
        return float(torch.exp(log))

    def stat(y: float) -> np.ndarray:
        return fam.sufficient_statistic(torch.tensor(y, dtype=F64)).numpy()

    def integral(f) -> float:
        return si.quad(f, lo, hi, epsabs=1e-13, epsrel=1e-11, limit=200)[0]

    assert integral(density) == pytest.approx(1.0, abs=1e-9)
    m = np.array([integral(lambda y, i=i: stat(y)[i] * density(y)) for i in range(2)])
    c = np.array(
        [
            [
                integral(lambda y, i=i, j=j: (stat(y)[i] - m[i]) * (stat(y)[j] - m[j]) * density(y))
                for j in range(2)
            ]
            for i in range(2)
        ]
    )
    np.testing.assert_allclose(fam.mean(eta).numpy(), m, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(fam.covariance(eta).numpy(), c, rtol=1e-6, atol=1e-9)


def test_moments_against_torch_distributions():
    """E y, Var y of the laws torch knows (normal, gamma, beta means) and the categorical
    probabilities."""
    d = torch.distributions
    e = torch.tensor(INTERIOR_ETA["normal_unknown_variance"], dtype=F64)
    law = d.Normal(-e[0] / (2 * e[1]), torch.sqrt(-1 / (2 * e[1])))
    torch.testing.assert_close(NORMAL.mean(e)[0], law.mean)
    torch.testing.assert_close(NORMAL.covariance(e)[0, 0], law.variance)
    e = torch.tensor(INTERIOR_ETA["gamma_shape"], dtype=F64)
    law = d.Gamma(e[0] + 1, -e[1])
    torch.testing.assert_close(GAMMA_SHAPE.mean(e)[1], law.mean)
    torch.testing.assert_close(GAMMA_SHAPE.covariance(e)[1, 1], law.variance)
    e = torch.tensor(INTERIOR_ETA["categorical"], dtype=F64)
    probs = d.Categorical(logits=torch.cat([torch.zeros(1, dtype=F64), e])).probs
    torch.testing.assert_close(CATEGORICAL.mean(e), probs[1:])


MIXED = [POISSON, NORMAL, BERNOULLI, GAMMA_SHAPE, CATEGORICAL, NORMAL, POISSON]


def _mixed(n: int, seed: int = 0) -> tuple[ColumnFamilies, torch.Tensor, torch.Tensor]:
    cols = ColumnFamilies(MIXED)
    gen = torch.Generator().manual_seed(seed)
    eta = cols.interior_point(F64) + 0.3 * torch.randn(
        n, cols.natural_dim, generator=gen, dtype=F64
    )
    Y = torch.stack(
        [
            torch.poisson(torch.full((n,), 2.0, dtype=F64), generator=gen),
            torch.randn(n, generator=gen, dtype=F64),
            (torch.rand(n, generator=gen, dtype=F64) < 0.5).double(),
            torch.rand(n, generator=gen, dtype=F64) + 0.2,
            torch.randint(0, 4, (n,), generator=gen).double(),
            torch.randn(n, generator=gen, dtype=F64),
            torch.poisson(torch.full((n,), 1.0, dtype=F64), generator=gen),
        ],
        1,
    )
    return cols, eta, Y


def test_layout_groups_and_slices():
    cols, eta, _ = _mixed(3)
    assert cols.dims == (1, 2, 1, 2, 3, 2, 1) and cols.natural_dim == 12
    assert len(cols.groups) == 5  # poisson and normal columns share one group each
    torch.testing.assert_close(cols.slice(eta, 4), eta[:, 6:9])
    assert as_columns(NORMAL, 3).natural_dim == 6
    with pytest.raises(ValueError, match="data_dim"):
        as_columns(MIXED, 3)


def test_mean_statistic_and_partition_column_by_column():
    """The grouped, batched evaluation = each column's family called on its own slice."""
    cols, eta, Y = _mixed(5)
    mean, T, A = cols.mean(eta), cols.sufficient_statistic(Y), cols.log_partition_terms(eta)
    for j, fam in enumerate(MIXED):
        e = cols.slice(eta, j)
        if j in (1, 3, 4, 5):
            torch.testing.assert_close(cols.slice(mean, j), fam.mean(e))
            torch.testing.assert_close(cols.slice(T, j), fam.sufficient_statistic(Y[:, j]))
            torch.testing.assert_close(A[:, j], fam.log_partition(e))
        else:
            torch.testing.assert_close(cols.slice(mean, j)[:, 0], fam.activation(e[:, 0]))
            torch.testing.assert_close(A[:, j], fam.log_partition(e[:, 0]))
    torch.testing.assert_close(cols.log_partition(eta), A.sum(-1))


def test_log_likelihood_against_scipy_stats():
    cols, eta, Y = _mixed(6)
    ll = cols.log_likelihood(Y, eta).numpy()
    e, y = eta.numpy(), Y.numpy()
    ref = np.empty_like(ll)
    ref[:, 0] = st.poisson.logpmf(y[:, 0], np.exp(e[:, 0]))
    for j, off in ((1, 1), (5, 9)):
        var = -1 / (2 * e[:, off + 1])
        ref[:, j] = st.norm.logpdf(y[:, j], var * e[:, off], np.sqrt(var))
    ref[:, 2] = st.bernoulli.logpmf(y[:, 2], 1 / (1 + np.exp(-e[:, 3])))
    ref[:, 3] = st.gamma.logpdf(y[:, 3], e[:, 4] + 1, scale=-1 / e[:, 5])
    logits = np.concatenate([np.zeros((len(y), 1)), e[:, 6:9]], 1)
    probs = np.exp(logits - np.log(np.exp(logits).sum(1, keepdims=True)))
    ref[:, 4] = np.log(probs[np.arange(len(y)), y[:, 4].astype(int)])
    ref[:, 6] = st.poisson.logpmf(y[:, 6], np.exp(e[:, 11]))
    np.testing.assert_allclose(ll, ref, rtol=1e-10, atol=1e-12)


def test_block_hessian_and_hvp_against_autograd():
    """lam I + W^T blockdiag(C) W = autograd Hessian of lam/2|z|^2 + sum_j A_j(W z + B)."""
    cols, eta, _ = _mixed(3, seed=1)
    gen = torch.Generator().manual_seed(2)
    W = 0.2 * torch.randn(cols.natural_dim, 3, generator=gen, dtype=F64)
    z = torch.zeros(3, dtype=F64)
    lam = 0.5
    for s in range(3):
        B = eta[s]

        def J(z, B=B):
            return 0.5 * lam * z @ z + cols.log_partition(W @ z + B)

        ref = torch.autograd.functional.hessian(J, z)
        H = cols.hessian(W, B[None], lam)[0]
        torch.testing.assert_close(H, ref, rtol=1e-10, atol=1e-12)
        v = torch.randn(1, 3, generator=gen, dtype=F64)
        hv = lam * v + cols.hvp(W, cols.covariance_blocks(B[None]), v)
        torch.testing.assert_close(hv[0], ref @ v[0], rtol=1e-10, atol=1e-12)
        M = cols.laplace_root(W, B[None])[0]
        torch.testing.assert_close(lam * torch.eye(3, dtype=F64) + M.T @ M, ref)


def test_in_domain_and_validation_messages():
    cols, eta, Y = _mixed(4)
    bad = eta.clone()
    bad[2, 2] = 0.1  # eta2 of the normal column 1 must be < 0
    inside = cols.in_domain(bad)
    assert not bool(inside[2, 1]) and bool(inside[2, [0, 2, 3, 4, 5, 6]].all())
    with pytest.raises(ValueError, match="row 2, column 1"):
        cols.validate_canonical(bad)
    Y = Y.clone()
    Y[3, 2] = 0.5
    with pytest.raises(ValueError, match=r"row 3, column 2.*bernoulli"):
        cols.validate_observations(Y)
