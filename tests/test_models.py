"""ExpFamPCA: the DEQ of Theorem 1 as an nn.Module."""

from __future__ import annotations

import math
import pickle
import types

import numpy as np
import pytest
import scipy.special as sps
import scipy.stats as st
import torch
from oracles.families import FAMILIES, problem, scipy_map_latents

from deqfam.api import builtin_module
from deqfam.runtime.family import TorchFamily, as_torch_family
from deqfam.runtime.models import ExpFamPCA
from deqfam.runtime.solvers import ConvergenceError, ConvergenceWarning
from deqfam.runtime.validation import DataError, DomainError

F64 = torch.float64


def make_model(name, W, B, solver="newton", lam=0.1, **kw):
    model = ExpFamPCA(
        FAMILIES[name], W.shape[0], W.shape[1], lam=lam, solver=solver, dtype=F64, **kw
    )
    with torch.no_grad():
        model.W.copy_(W)
        model.B.copy_(B)
    return model


@pytest.mark.parametrize("name", ["poisson", "negative_binomial"])
def test_forward_matches_scipy_and_records_stats(name):
    W, B, Y = problem(name, n=10, seed=30)
    model = make_model(name, W, B)
    Z = model(Y)
    assert Z.shape == (10, 2)
    assert model.last_stats.all_converged
    np.testing.assert_allclose(Z.detach().numpy(), scipy_map_latents(name, W, B, Y, 0.1), atol=1e-9)


@pytest.mark.parametrize("solver", ["cg_newton", "anderson", "broyden", "fixed_point"])
def test_all_solver_paths_agree_in_contractive_regime(solver):
    """Values and gradients of every path agree with the Cholesky-implicit Newton path (and the
    Newton path with scipy above): different algorithms, different backward passes."""
    W, B, Y = problem("bernoulli", n=6, d=10, l=2, w_scale=0.2, seed=31)
    opts = {"tol": 1e-13, "max_iter": 500}
    weights = torch.randn(6, 2, dtype=F64, generator=torch.Generator().manual_seed(3))
    results = {}
    for path in ("newton", solver):
        model = make_model(
            "bernoulli", W, B, solver=path, lam=1.0, solver_options=opts, on_nonconvergence="raise"
        )
        y = Y.clone().requires_grad_(True)
        Z = model(y)
        (Z * weights).sum().backward()
        results[path] = (Z.detach(), model.W.grad, model.B.grad, y.grad)
    for got, want in zip(results[solver], results["newton"], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-10)


def test_newton_layer_works_where_generic_fixed_point_fails():
    W, B, Y = problem("bernoulli", n=20, seed=32)
    bad = make_model("bernoulli", W, B, solver="fixed_point", on_nonconvergence="raise")
    with pytest.raises(ConvergenceError, match=r"ExpFamPCA\.forward: fixed_point"):
        bad(Y)
    warn = make_model("bernoulli", W, B, solver="fixed_point", on_nonconvergence="warn")
    with pytest.warns(ConvergenceWarning):
        warn(Y)
    assert warn.last_stats.n_failed > 0
    good = make_model("bernoulli", W, B, solver="newton", on_nonconvergence="raise")
    good(Y)
    assert good.last_stats.all_converged


def test_log_joint_matches_scipy():
    W, B, Y = problem("poisson", n=7, d=9, l=3, w_scale=0.3, seed=33)
    model = make_model("poisson", W, B, lam=0.7)
    Z = torch.randn(7, 3, dtype=F64, generator=torch.Generator().manual_seed(4))
    eta = Z.numpy() @ W.numpy().T + B.numpy()
    y = Y.numpy()
    # log p(y|eta) - log h(y) with h(y) = 1/y!, plus the N(0, I/lam) prior density.
    loglik = (st.poisson.logpmf(y, np.exp(eta)) + sps.gammaln(y + 1)).sum(1)
    prior = st.multivariate_normal(np.zeros(3), np.eye(3) / 0.7).logpdf(Z.numpy())
    np.testing.assert_allclose(model.log_joint(Y, Z).detach().numpy(), loglik + prior, rtol=1e-12)


def test_loss_value_and_gradients():
    """Loss of Theorem 1 (6) against a scipy computation; its gradient against central finite
    differences; and the envelope theorem (the implicit part of the gradient vanishes)."""
    W, B, Y = problem("bernoulli", n=8, d=6, l=2, w_scale=0.5, seed=34)
    model = make_model("bernoulli", W, B, weight_decay=3.0, solver_options={"tol": 1e-13})
    n_total = 40
    loss = model.loss(Y, n_total=n_total)
    Z = scipy_map_latents("bernoulli", W, B, Y, 0.1)
    eta = Z @ W.numpy().T + B.numpy()
    nll = -st.bernoulli.logpmf(Y.numpy(), sps.expit(eta)).sum(1)
    penalty = 1.5 * (np.sum(W.numpy() ** 2) + np.sum(B.numpy() ** 2)) / n_total
    expected = np.mean(nll + 0.05 * (Z**2).sum(1)) + penalty
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-12)
    loss.backward()
    grad_W = model.W.grad.clone()

    # Central finite differences of the loss w.r.t. W (each evaluation re-solves Z*).
    h = 1e-6
    fd = torch.zeros_like(grad_W)
    with torch.no_grad():
        for idx in np.ndindex(*W.shape):
            for sign in (1.0, -1.0):
                model.W[idx] += sign * h
                fd[idx] += sign * float(model.loss(Y, n_total=n_total)) / (2 * h)
                model.W[idx] -= sign * h
    torch.testing.assert_close(grad_W, fd, rtol=1e-6, atol=1e-8)

    # Envelope theorem: d/dW of the bracket with Z* held fixed equals the total derivative.
    model.zero_grad()
    with torch.no_grad():
        Zfix = model(Y)
    eta_t = model.natural_parameters(Zfix)
    bracket = (FAMILIES["bernoulli"].log_partition(eta_t) - Y * eta_t).sum(1)
    (bracket.mean() + model.penalty() / n_total).backward()
    torch.testing.assert_close(model.W.grad, grad_W, rtol=1e-8, atol=1e-10)


def test_reconstruct_is_mean_parameter():
    W, B, _ = problem("poisson", n=3, d=5, l=2, w_scale=0.3, seed=35)
    model = make_model("poisson", W, B)
    Z = torch.randn(4, 2, dtype=F64, generator=torch.Generator().manual_seed(5))
    expected = np.exp(Z.numpy() @ W.numpy().T + B.numpy())
    np.testing.assert_allclose(model.reconstruct(Z).detach().numpy(), expected, rtol=1e-14)


def test_input_validation_messages():
    model = ExpFamPCA(FAMILIES["poisson"], 5, 2, dtype=F64)
    with pytest.raises(ValueError, match="must be 2-D"):
        model(torch.zeros(5, dtype=F64))
    with pytest.raises(ValueError, match="floating dtype"):
        model(torch.zeros(3, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="data_dim=5 columns"):
        model(torch.zeros(3, 4, dtype=F64))
    Y = torch.zeros(3, 5, dtype=F64)
    Y[1, 2] = math.nan
    with pytest.raises(ValueError, match=r"non-finite value nan at row 1, column 2"):
        model(Y)
    with pytest.raises(ValueError, match=r"must be a torch\.Tensor"):
        model(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="latent_dim=2 columns"):
        model.reconstruct(torch.zeros(3, 3, dtype=F64))


def test_parameter_check_skips_only_unchanged_parameters():
    """check_parameters passes W, B once and then skips them only while they are unchanged:
    an in-place NaN in W, B moved outside the domain in place, or a new W tensor are caught on
    the next forward; finite W whose sum overflows (the fast pass fails) is accepted by the
    exact check; a pickled copy checks again."""
    W, B, Y = problem("negative_binomial", n=4, seed=31)  # domain (-inf, 0)
    model = make_model("negative_binomial", W, B)
    model(Y)
    model(Y)  # W, B remembered as passed
    with torch.no_grad():
        model.W[1, 0] = math.nan
    with pytest.raises(DataError, match=r"parameter W\[1, 0\] = nan is not finite"):
        model(Y)
    with torch.no_grad():
        model.W.copy_(W)
    model(Y)
    with torch.no_grad():
        model.B[2] = 0.5
    with pytest.raises(DomainError, match=r"B\[2\] = 0.5 \(column 2\) is outside"):
        model(Y)
    with torch.no_grad():
        model.B.copy_(B)
    model(Y)
    model.W = torch.nn.Parameter(torch.full_like(W, math.inf))
    with pytest.raises(DataError, match=r"parameter W\[0, 0\] = inf is not finite"):
        model(Y)
    model.W = torch.nn.Parameter(torch.full_like(W, 1e308))  # sum(W) = inf, every entry finite
    model.check_parameters()
    copy = pickle.loads(pickle.dumps(model))
    with torch.no_grad():
        copy.B[0] = math.nan
    with pytest.raises(DataError, match=r"parameter B\[0\] = nan is not finite"):
        copy.check_parameters()
    model.check_parameters()  # the original is untouched


def test_constructor_validation():
    fam = FAMILIES["bernoulli"]
    with pytest.raises(ValueError, match=r"unknown solver option 'tolerance'.*'tol'"):
        ExpFamPCA(fam, 5, 2, solver_options={"tolerance": 1e-8})
    with pytest.raises(ValueError, match=r"unknown solver 'newtn'; did you mean 'newton'"):
        ExpFamPCA(fam, 5, 2, solver="newtn")
    with pytest.raises(ValueError, match="on_nonconvergence policy 'loud'"):
        ExpFamPCA(fam, 5, 2, on_nonconvergence="loud")
    with pytest.raises(ValueError, match="lam must be > 0"):
        ExpFamPCA(fam, 5, 2, lam=0.0)
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        ExpFamPCA(fam, 5, 0)


def test_initialisation_small_and_inside_domain():
    gen = torch.Generator().manual_seed(6)
    model = ExpFamPCA(
        FAMILIES["negative_binomial"], 200, 3, init_scale=0.01, generator=gen, dtype=F64
    )
    assert float(model.W.detach().std()) == pytest.approx(0.01, rel=0.1)
    assert bool((model.B < 0).all())  # 0 is not inside (-inf, 0): B starts at -1
    poisson = ExpFamPCA(FAMILIES["poisson"], 200, 3, dtype=F64)
    assert bool((poisson.B == 0).all())
    Y = torch.tensor(np.random.default_rng(7).poisson(2.0, size=(5, 200)), dtype=F64)
    model.on_nonconvergence = "raise"
    model(Y)  # feasible start, converges


def test_accepts_generated_module_and_refuses_loose_attributes():
    module = builtin_module("bernoulli")
    assert as_torch_family(module) is module.FAMILY
    assert isinstance(module.FAMILY, TorchFamily)
    assert module.FAMILY.domain == (-math.inf, math.inf)
    assert module.FAMILY.sup_activation_grad == 0.25  # max of sigmoid' = 1/4 at eta = 0
    _, _, Y = problem("bernoulli", n=4, d=6, seed=36)
    a = ExpFamPCA(module, 6, 2, dtype=F64)
    b = make_model("bernoulli", a.W.detach(), a.B.detach())
    torch.testing.assert_close(a(Y), b(Y), rtol=0, atol=0)
    fam = module.FAMILY
    loose = types.SimpleNamespace(
        NAME="bern",
        DOMAIN=("-oo", "oo"),
        SUPPORT="binary",
        log_partition=fam.log_partition,
        activation=fam.activation,
        activation_grad=fam.activation_grad,
        sufficient_statistic=fam.sufficient_statistic,
    )
    with pytest.raises(TypeError, match="exporting one as FAMILY"):
        as_torch_family(loose)


def test_short_training_reduces_loss():
    """A few Adam steps on the outer objective decrease it (Theorem 1 as a trainable layer)."""
    _, _, Y = problem("poisson", n=100, d=20, l=2, w_scale=0.5, seed=37)
    model = ExpFamPCA(
        FAMILIES["poisson"],
        20,
        2,
        generator=torch.Generator().manual_seed(8),
        weight_decay=1.0,
        dtype=F64,
        on_nonconvergence="raise",
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = model.loss(Y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.1 * abs(losses[0]), losses


def test_torch_family_domain_helpers():
    fam = FAMILIES["negative_binomial"]
    eta = torch.tensor([-1.0, 0.0, 0.5, math.nan, -math.inf], dtype=F64)
    assert fam.in_domain(eta).tolist() == [True, False, False, False, False]
    assert fam.interior_point() == -1.0 and FAMILIES["poisson"].interior_point() == 0.0
    with pytest.raises(ValueError, match="domain must be an interval lo < hi"):
        TorchFamily("bad", (1.0, 0.0), torch.exp, torch.exp, torch.exp, torch.exp)
