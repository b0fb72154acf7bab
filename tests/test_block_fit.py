"""The second-order fit with one family per column (runtime/fitting/block_*): equal to the
scalar fit on columns of one scalar family, and at the joint minimum that scipy finds for
vector and mixed columns (the objective written independently in numpy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oracles.joint_numpy import expanded_statistics, joint_objective, scipy_joint_minimum

from deqfam.generated import gamma_shape, negative_binomial, normal_unknown_variance, poisson
from deqfam.runtime.fitting import NewtonFitConfig, fit_newton
from deqfam.runtime.fitting.block_loadings import GroupGLMProblem
from deqfam.runtime.models import ExpFamPCA

F64 = torch.float64
TIGHT = NewtonFitConfig(rtol=1e-12, gtol=1e-7, max_iter=2000, progress=False)


def _latents(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(n, 2, generator=gen, dtype=F64)


def test_block_fit_on_poisson_columns_equals_scalar_fit():
    """d Poisson columns through the block path (a list of families) take the same steps as
    the scalar fit_newton: same history, W and B to rounding."""
    gen = torch.Generator().manual_seed(3)
    z = _latents(70, gen)
    Y = torch.poisson(torch.exp(z @ (0.5 * torch.randn(5, 2, generator=gen, dtype=F64)).T + 0.3))
    cfg = NewtonFitConfig(progress=False)
    scalar = ExpFamPCA(poisson.FAMILY, 5, 2, weight_decay=5.0, dtype=F64)
    block = ExpFamPCA([poisson.FAMILY] * 5, 5, 2, weight_decay=5.0, dtype=F64)
    h1, h2 = fit_newton(scalar, Y, cfg), fit_newton(block, Y, cfg)
    assert h1.stop_reason == h2.stop_reason == "converged"
    assert h1.iterations == h2.iterations
    np.testing.assert_allclose(h2.loss, h1.loss, rtol=1e-12)
    torch.testing.assert_close(block.W, scalar.W, rtol=0, atol=1e-10)
    torch.testing.assert_close(block.B, scalar.B, rtol=0, atol=1e-10)
    torch.testing.assert_close(block.last_z, scalar.last_z, rtol=0, atol=1e-10)


def _check_joint_minimum(model, names, Y, seed):
    """The fit's objective equals the numpy objective at its (Z, W, B), the numpy gradient
    vanishes there, and scipy's BFGS from a perturbed start finds the same minimum."""
    hist = fit_newton(model, Y, TIGHT)
    assert hist.stop_reason == "converged"
    assert all(b <= a + 1e-12 * abs(a) for a, b in zip(hist.loss, hist.loss[1:], strict=False))
    T = expanded_statistics(names, Y.numpy())
    Z, W, B = (t.detach().numpy() for t in (model.last_z, model.W, model.B))
    value, grads = joint_objective(names, T, Z, W, B, model.lam, model.weight_decay)
    assert value == pytest.approx(hist.loss[-1], rel=1e-12)
    assert max(np.abs(g).max() for g in grads) < 1e-6
    rng = np.random.default_rng(seed)
    start = [x + 0.02 * rng.standard_normal(x.shape) for x in (Z, W)]
    best, gnorm = scipy_joint_minimum(names, T, *start, B, model.lam, model.weight_decay)
    assert gnorm < 1e-5
    assert hist.loss[-1] == pytest.approx(best, rel=1e-6)
    assert hist.loss[-1] <= best + 1e-9 * abs(best)


def test_block_fit_vector_gamma_columns_reach_the_joint_minimum():
    """Gamma rates well inside eta2 < 0: the offsets must stay inside the domain (the latent
    solves start at z = 0), so an optimum that wants B_j on the boundary would stall."""
    gen = torch.Generator().manual_seed(5)
    torch.manual_seed(5)  # torch.distributions samples from the global generator
    z = _latents(40, gen)
    rate = 4 * torch.exp(0.4 * z @ torch.randn(2, 3, generator=gen, dtype=F64))
    Y = torch.distributions.Gamma(torch.full_like(rate, 2.5), rate).sample()
    model = ExpFamPCA(gamma_shape.FAMILY, 3, 2, weight_decay=0.5, dtype=F64)
    _check_joint_minimum(model, ["gamma_shape"] * 3, Y, 0)


@pytest.mark.slow
def test_block_fit_mixed_columns_of_different_domains_reach_the_joint_minimum():
    """Normal (unknown variance, k=2), Poisson, gamma (shape and rate) and negative binomial
    (domain eta < 0) columns in one fit."""
    gen = torch.Generator().manual_seed(8)
    torch.manual_seed(8)  # torch.distributions samples from the global generator
    z = _latents(40, gen)
    y_norm = z[:, 0] + 0.5 * torch.randn(40, generator=gen, dtype=F64)
    y_pois = torch.poisson(torch.exp(0.5 * z[:, 1]), generator=gen)
    y_gam = torch.distributions.Gamma(2.0, 4 * torch.exp(0.3 * z[:, 0])).sample()
    p = torch.sigmoid(-1.0 + 0.3 * z[:, 1])
    y_nb = torch.distributions.NegativeBinomial(3.0, probs=p).sample()
    Y = torch.stack([y_norm, y_pois, y_gam, y_nb], 1)
    fams = [normal_unknown_variance, poisson, gamma_shape, negative_binomial]
    model = ExpFamPCA([f.FAMILY for f in fams], 4, 2, weight_decay=0.5, dtype=F64)
    names = ["normal_unknown_variance", "poisson", "gamma_shape", "negative_binomial"]
    _check_joint_minimum(model, names, Y, 1)


def test_group_glm_gradient_and_hessian_match_the_numpy_objective():
    """For a vector group the loadings gradient equals the numpy objective's (times N) and
    the Hessian equals central differences of it."""
    gen = torch.Generator().manual_seed(2)
    n, l = 30, 2
    Z = torch.randn(n, l, generator=gen, dtype=F64)
    model = ExpFamPCA(normal_unknown_variance.FAMILY, 2, l, dtype=F64)
    Y = torch.randn(n, 2, generator=gen, dtype=F64)
    T = model.columns.sufficient_statistic(Y)
    group = model.columns.groups[0]
    W = 0.1 * torch.randn(4, l, generator=gen, dtype=F64)
    B = torch.tensor([0.1, -0.6, -0.2, -0.4], dtype=F64)
    prob = GroupGLMProblem(group, Z, T[:, group.index], 0.5)
    beta = torch.cat([W[group.index], B[group.index][..., None]], -1).reshape(2, -1)
    names = ["normal_unknown_variance"] * 2
    Tn, Zn = T.numpy(), Z.numpy()

    def grad_np(b: np.ndarray) -> np.ndarray:
        """numpy gradient in (W, B) of N F, laid out as beta (rows vec([W_j, B_j]))."""
        b3 = b.reshape(2, 2, l + 1)
        Wn, Bn = b3[..., :-1].reshape(4, l), b3[..., -1].reshape(4)
        _, (_, gW, gB) = joint_objective(names, Tn, Zn, Wn, Bn, 0.0, 0.5)
        return n * np.concatenate([gW.reshape(2, 2, l), gB.reshape(2, 2, 1)], -1).reshape(-1)

    lin = prob.linearise(beta)
    np.testing.assert_allclose(lin.grad.numpy().ravel(), grad_np(beta.numpy()), rtol=1e-10)
    H = prob.hessian(lin.cache).numpy()
    h, flat = 1e-6, beta.numpy().ravel()
    fd = np.stack(
        [(grad_np(flat + h * e) - grad_np(flat - h * e)) / (2 * h) for e in np.eye(flat.size)],
        1,
    )
    size = 3 * (l + 1)
    for j in range(2):  # the columns are separate problems: Hessian blocks on the diagonal
        block = fd[j * 2 * (l + 1) : (j + 1) * 2 * (l + 1)][:, j * 2 * (l + 1) :][:, : 2 * (l + 1)]
        np.testing.assert_allclose(H[j], block, rtol=1e-5, atol=1e-6 * size)
