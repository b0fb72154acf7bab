"""ExpFamPCA with vector families and mixed columns: MAP latents against scipy, gradcheck of
the implicit layer, Laplace covariance against a finite-difference Hessian, and the scalar
fast path untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oracles.vector_families import (
    BERNOULLI,
    BETA,
    CATEGORICAL,
    GAMMA_SHAPE,
    INVERSE_GAUSSIAN,
    NORMAL,
    POISSON,
)
from oracles.vector_numpy import fd_hessian, scipy_map, statistics

from deqfam.runtime.block_inner import block_equilibrium
from deqfam.runtime.block_pca import BlockExpFamPCA
from deqfam.runtime.laplace import posterior_from_latents
from deqfam.runtime.models import ExpFamPCA
from deqfam.runtime.validation import DataError, DomainError

F64 = torch.float64
TIGHT = {"tol": 1e-13, "max_iter": 200}

MIXED = [POISSON, NORMAL, BERNOULLI, GAMMA_SHAPE, CATEGORICAL, NORMAL]


def _mixed_data(n: int, gen: torch.Generator) -> torch.Tensor:
    """Rows valid for ``MIXED``: count, real, flag, positive, category, real."""
    f64 = {"generator": gen, "dtype": torch.float64}
    cols = [
        torch.poisson(torch.full((n,), 2.0, dtype=torch.float64), generator=gen),
        torch.randn(n, **f64),
        (torch.rand(n, **f64) < 0.4).double(),
        torch.rand(n, **f64) * 2 + 0.1,
        torch.randint(0, 4, (n,), generator=gen).double(),
        torch.randn(n, **f64) + 1,
    ]
    return torch.stack(cols, 1)


def _model(families, d, l, seed=0, scale=0.3, **kw):
    gen = torch.Generator().manual_seed(seed)
    opts = kw.pop("solver_options", TIGHT)
    return ExpFamPCA(
        families,
        d,
        l,
        lam=0.7,
        generator=gen,
        init_scale=scale,
        solver_options=opts,
        dtype=torch.float64,
        **kw,
    )


def _names(model: BlockExpFamPCA) -> list[str]:
    return [f.name for f in model.columns.families]


@pytest.mark.parametrize("solver", ["newton", "cg_newton"])
def test_mixed_columns_map_matches_scipy(solver):
    """Newton's z* with mixed scalar and vector columns = scipy's minimiser to 1e-8."""
    gen = torch.Generator().manual_seed(1)
    model = _model(MIXED, 6, 3, solver=solver)
    assert isinstance(model, BlockExpFamPCA) and model.natural_dim == 11
    Y = _mixed_data(8, gen)
    with torch.no_grad():
        Z = model(Y)
    ref = scipy_map(
        _names(model), model.W.detach().numpy(), model.B.detach().numpy(), Y.numpy(), 0.7
    )
    np.testing.assert_allclose(Z.numpy(), ref, atol=1e-8, rtol=0)


@pytest.mark.parametrize(
    ("family", "offset", "data"),
    [
        (
            NORMAL,
            (0.3, -0.6),
            lambda g, n: torch.randn(n, 4, generator=g, dtype=torch.float64) * 2 + 1,
        ),
        (
            INVERSE_GAUSSIAN,
            (-0.8, -1.3),
            lambda g, n: torch.rand(n, 4, generator=g, dtype=torch.float64) * 3 + 0.2,
        ),
        (
            BETA,
            (0.5, 0.5),
            lambda g, n: torch.rand(n, 4, generator=g, dtype=torch.float64) * 0.9 + 0.05,
        ),
    ],
)
def test_vector_family_map_matches_scipy(family, offset, data):
    """One vector family repeated over the columns: z* = scipy's minimiser to 1e-8."""
    gen = torch.Generator().manual_seed(2)
    model = _model(family, 4, 2, scale=0.1)
    with torch.no_grad():
        model.B.copy_(torch.tensor([offset] * 4).flatten())
    Y = data(gen, 6)
    with torch.no_grad():
        Z = model(Y)
    names = [family.name] * 4
    ref = scipy_map(names, model.W.detach().numpy(), model.B.detach().numpy(), Y.numpy(), 0.7)
    np.testing.assert_allclose(Z.numpy(), ref, atol=1e-8, rtol=0)


def test_gradcheck_mixed_layer():
    """The implicit backward of z*(W, B, Y) against finite differences (float64); Y only in
    the continuous columns (the others are held fixed)."""
    gen = torch.Generator().manual_seed(3)
    model = _model([NORMAL, POISSON, GAMMA_SHAPE, CATEGORICAL], 4, 2)
    Y = _mixed_data(3, gen)[:, [1, 0, 3, 4]]
    cols = model.columns
    W0, B0 = model.W.detach().clone(), model.B.detach().clone()
    cont = torch.tensor([0, 2])

    def layer(W, B, ycont):
        Yf = Y.clone()
        Yf[:, cont] = ycont
        return block_equilibrium(cols, W, B, Yf, 0.7, TIGHT)[0]

    ycont = Y[:, cont].clone()
    inputs = tuple(t.requires_grad_(True) for t in (W0, B0, ycont))
    assert torch.autograd.gradcheck(layer, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_vector_layer_loss():
    """Gradient of the outer loss (through z*) of a vector-family model by gradcheck."""
    gen = torch.Generator().manual_seed(4)
    model = _model(GAMMA_SHAPE, 3, 2, scale=0.2)
    Y = torch.rand(4, 3, generator=gen, dtype=torch.float64) * 2 + 0.2

    def loss(W, B):
        model.W.data, model.B.data = W.detach(), B.detach()
        Z = block_equilibrium(model.columns, W, B, Y, model.lam, TIGHT)[0]
        eta = Z @ W.T + B
        T = model.columns.sufficient_statistic(Y)
        return (model.columns.log_partition(eta) - (T * eta).sum(-1)).mean()

    inputs = (model.W.detach().clone().requires_grad_(), model.B.detach().clone().requires_grad_())
    assert torch.autograd.gradcheck(loss, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", ["cholesky", "woodbury"])
def test_laplace_covariance_is_inverse_fd_hessian(method):
    """H^{-1} of the Laplace posterior = inverse of a finite-difference Hessian of J."""
    gen = torch.Generator().manual_seed(5)
    model = _model(MIXED, 6, 3)
    Y = _mixed_data(3, gen)
    with torch.no_grad():
        Z = model(Y)
        post = posterior_from_latents(model.columns, model.W, model.B, model.lam, Z, method)
        cov = post.covariance()
    names = _names(model)
    Wn, Bn = model.W.detach().numpy(), model.B.detach().numpy()
    for s in range(Y.shape[0]):
        t = statistics(names, Y[s].numpy())
        H = fd_hessian(names, Wn, Bn, t, model.lam, Z[s].numpy())
        np.testing.assert_allclose(cov[s].numpy(), np.linalg.inv(H), rtol=1e-6, atol=1e-8)


def test_list_of_scalar_families_matches_scalar_path():
    """[poisson] * d through the block model = the scalar ExpFamPCA (Z*, loss, gradients)."""
    gen = torch.Generator().manual_seed(6)
    scalar = ExpFamPCA(
        POISSON, 5, 2, lam=0.5, init_scale=0.2, generator=gen, solver_options=TIGHT, dtype=F64
    )
    assert type(scalar) is ExpFamPCA
    block = ExpFamPCA([POISSON] * 5, 5, 2, lam=0.5, solver_options=TIGHT, dtype=F64)
    with torch.no_grad():
        block.W.copy_(scalar.W)
        block.B.copy_(scalar.B)
    Y = torch.poisson(torch.full((7, 5), 1.5, dtype=F64), generator=gen)
    ls, lb = scalar.loss(Y), block.loss(Y)
    ls.backward()
    lb.backward()
    torch.testing.assert_close(block.last_z, scalar.last_z, atol=1e-11, rtol=0)
    torch.testing.assert_close(lb, ls, atol=1e-12, rtol=0)
    torch.testing.assert_close(block.W.grad, scalar.W.grad, atol=1e-10, rtol=0)
    torch.testing.assert_close(block.B.grad, scalar.B.grad, atol=1e-10, rtol=0)


def test_generic_solver_agrees_with_newton_on_block_model():
    """The DEQ map z = W^T (T - mu(Wz + B)) / lam by Anderson = Newton's z*."""
    gen = torch.Generator().manual_seed(7)
    Y = _mixed_data(5, gen)
    newton = _model(MIXED, 6, 2, scale=0.1)
    anderson = _model(
        MIXED, 6, 2, scale=0.1, solver="anderson", solver_options={"tol": 1e-12, "max_iter": 500}
    )
    with torch.no_grad():
        torch.testing.assert_close(anderson(Y), newton(Y), atol=1e-9, rtol=0)


def test_block_model_errors_name_row_and_column():
    model = _model(MIXED, 6, 2)
    Y = _mixed_data(4, torch.Generator().manual_seed(8))
    bad = Y.clone()
    bad[2, 4] = 7.0  # a category above K - 1 = 3
    with pytest.raises(DataError, match="row 2, column 4"):
        model(bad)
    bad = Y.clone()
    bad[1, 3] = -1.0  # gamma_shape needs y > 0
    with pytest.raises(DataError, match=r"row 1, column 3.*gamma_shape"):
        model(bad)
    with torch.no_grad():
        model.B[model.columns.offsets[1] + 1] = 0.5  # eta2 of the normal column must be < 0
    with pytest.raises(DomainError, match=r"B\[1\].*normal_unknown_variance"):
        model(Y)
