"""Samplers of vector families and mixed columns: sample moments of T(y) within 4 standard
errors of the family's mean (the closed forms, checked against autograd of A in
test_vector_families.py), exact and generic."""

from __future__ import annotations

import pytest
import torch
from oracles.vector_families import (
    BERNOULLI,
    INTERIOR_ETA,
    NORMAL,
    POISSON,
    VECTOR_FAMILIES,
)

from deqfam.runtime.columns import ColumnFamilies
from deqfam.runtime.vector_sampling import sample_columns, sample_vector

F64 = torch.float64


def _check_moments(family, eta: torch.Tensor, y: torch.Tensor) -> None:
    """Mean of T(y) within 4 standard errors (sqrt(diag C / n)) of grad A(eta)."""
    T = family.sufficient_statistic(y)
    mean, cov = family.mean(eta), family.covariance(eta)
    se = torch.sqrt(torch.diagonal(cov, dim1=-2, dim2=-1) / y.shape[0])
    z = (T.mean(0) - mean) / se
    assert bool((z.abs() < 4).all()), (family.name, z)


@pytest.mark.parametrize("name", sorted(VECTOR_FAMILIES))
@pytest.mark.parametrize("exact", [True, False])
def test_sampler_moments(name, exact):
    family = VECTOR_FAMILIES[name]
    gen = torch.Generator().manual_seed(11)
    eta = torch.tensor(INTERIOR_ETA[name], dtype=F64)
    n = 20_000
    y = sample_vector(family, eta.expand(n, -1), gen, exact=exact)
    assert y.shape == (n,) and bool(torch.isfinite(y).all())
    _check_moments(family, eta, y)


def test_sampler_second_moments_exact_normal():
    """Sample covariance of T = (y, y^2) within 4 standard errors of Hess A (normal law:
    the fourth moments of T are finite and known through the variance of the products)."""
    gen = torch.Generator().manual_seed(12)
    eta = torch.tensor([0.4, -0.9], dtype=F64)
    n = 40_000
    T = NORMAL.sufficient_statistic(sample_vector(NORMAL, eta.expand(n, -1), gen))
    centred = T - NORMAL.mean(eta)
    prod = centred[:, :, None] * centred[:, None, :]
    se = prod.std(0) / n**0.5
    assert bool(((prod.mean(0) - NORMAL.covariance(eta)).abs() < 4 * se).all())


def test_sample_columns_mixed():
    """Each column of a mixed layout is drawn by its own family (varying eta per row)."""
    cols = ColumnFamilies([POISSON, NORMAL, VECTOR_FAMILIES["categorical"], BERNOULLI])
    gen = torch.Generator().manual_seed(13)
    n = 20_000
    base = torch.tensor([0.5, 0.4, -0.9, 0.3, -0.5, 0.8, -0.2], dtype=F64)
    eta = base + 0.1 * torch.rand(n, 7, generator=gen, dtype=F64)
    Y = sample_columns(cols, eta, gen)
    assert Y.shape == (n, 4)
    cols.validate_observations(Y)
    T = cols.sufficient_statistic(Y)
    # E T = mean(eta) row by row; the residuals average to 0 with variance mean(diag C) / n
    resid = (T - cols.mean(eta)).mean(0)
    var = torch.cat(
        [torch.diagonal(c, dim1=-2, dim2=-1).reshape(n, -1) for c in cols.covariance_blocks(eta)],
        dim=1,
    )
    order = torch.cat([g.index.reshape(-1) for g in cols.groups])
    se = torch.empty(7, dtype=F64)
    se[order] = (var.mean(0) / n).sqrt()
    assert bool((resid.abs() < 4 * se).all()), resid / se


def test_sampler_refuses_eta_outside_domain():
    with pytest.raises(ValueError, match="domain"):
        sample_vector(NORMAL, torch.tensor([[0.0, 0.5]], dtype=F64))
