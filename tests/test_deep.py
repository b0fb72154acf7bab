"""Deep exponential-family PCA (issue #10): derivation, joint MAP, implicit backward, Laplace,
dropout as an assumption, training with a freezing schedule.

Every numeric claim is checked against something written independently of derive/deep.py and
runtime/deep.py: SymPy's differentiation of the explicit joint, ExpFamPCA, the closed-form
posterior of a linear-Gaussian hierarchy, hand-written objectives differentiated by autograd,
scipy.optimize, scipy.stats and torch.autograd.gradcheck.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.optimize as so
import scipy.stats as st
import sympy as sp
import torch
import torch.nn.functional as F
from oracles.deep_assembly import verify_assembly

import deqfam
from deqfam.api import InadmissibleFamilyError, torch_family
from deqfam.derive.deep import (
    DeepSpecError,
    derive_stack,
    relu_family,
)
from deqfam.derive.family import derive_family
from deqfam.derive.spec import parse_spec
from deqfam.runtime.deep import (
    DeepSolverStats,
    NegativeCurvatureWarning,
    check_deep_convergence,
    deep_equilibrium,
    train_deep,
)
from deqfam.runtime.models import ExpFamPCA
from deqfam.runtime.solvers import ConvergenceError, SolverStats

F64 = torch.float64

#: A real-support family other than the Gaussian: hyperbolic secant law of y, T(y) = y,
#: E exp(eta y) = sec(pi eta / 2). As a latent layer it makes the joint objective non-convex.
HYPERBOLIC_SECANT = """\
name: hyperbolic_secant
support: real
sufficient_statistic: y
log_partition: -log(cos(pi*eta/2))
base_measure: 1/(pi*cosh(y))
domain: [-1, 1]
"""


@pytest.fixture(scope="module")
def hsec():
    return derive_family(parse_spec(HYPERBOLIC_SECANT))


def gen(seed):
    return torch.Generator().manual_seed(seed)


def make(families, widths, lam=0.5, seed=0, init_scale=0.5, **kw):
    kw.setdefault("solver_options", {"tol": 1e-13})
    kw.setdefault("on_nonconvergence", "raise")
    return deqfam.DeepExpFamPCA(
        families, widths, lam, init_scale=init_scale, generator=gen(seed), dtype=F64, **kw
    )


def data(kind, n, d, seed):
    g = gen(seed)
    if kind == "poisson":
        return torch.poisson(torch.full((n, d), 2.0, dtype=F64), generator=g)
    if kind == "bernoulli":
        return torch.bernoulli(torch.full((n, d), 0.4, dtype=F64), generator=g)
    return 2.0 * torch.randn(n, d, dtype=F64, generator=g)


def reference_objective(bottom, Y, zs, Ws, bs, lam):
    """Hand-written negative log joint (Gaussian layers above the data), up to constants:
    sum A(eta_1) - Y.eta_1 + sum_l |z_{l-1} - W_l z_l - b_l|^2/2 + lam/2 |z_L|^2."""
    A = {"poisson": torch.exp, "bernoulli": F.softplus, "gaussian": lambda e: e * e / 2}[bottom]
    eta = zs[0] @ Ws[0].T + bs[0]
    J = (A(eta) - Y * eta).sum(-1)
    for l in range(1, len(zs)):
        r = zs[l - 1] - zs[l] @ Ws[l].T - bs[l]
        J = J + 0.5 * (r * r).sum(-1)
    return J + 0.5 * lam * (zs[-1] ** 2).sum(-1)


def params(model):
    return [W.detach() for W in model.weights], [b.detach() for b in model.biases]


# ------------------------------------------------------------------------------ derivation


@pytest.mark.parametrize(
    "families, widths, masked",
    [
        (["poisson"], [3, 2], False),
        (["bernoulli", "gaussian"], [3, 2, 1], False),
        (["poisson", "gaussian", "gaussian"], [3, 2, 2, 1], False),
        (["gaussian", "hsec"], [3, 2, 2], False),
        (["relu", "relu"], [3, 2, 1], True),
    ],
)
def test_assembly_rule_equals_sympy_derivatives_of_the_explicit_joint(
    families, widths, masked, hsec
):
    fams = [hsec if f == "hsec" else relu_family() if f == "relu" else f for f in families]
    stack = derive_stack(fams, masked)
    worst = verify_assembly(stack, widths, n_points=2, seed=3)
    assert worst["gradient"] < 1e-25 and worst["hessian"] < 1e-25


def test_stack_derivation_exposes_the_coupling_terms():
    stack = derive_stack(["poisson", "gaussian"])
    (x0, e1), (x1, e2) = stack.latent_symbols()
    lam = next(s for s in stack.log_joint().free_symbols if s.name == "lam")
    x2 = next(s for s in stack.log_joint().free_symbols if s.name == "x_2")
    grad = stack.gradient_terms()
    # z_1 gets the Poisson score from below and the Gaussian score from above
    assert (grad[0]["below"] - (x0 - sp.exp(e1))).simplify() == 0
    assert (grad[0]["above"] - (e2 - x1)).simplify() == 0
    assert (grad[1]["prior"] + lam * x2).simplify() == 0
    hess = stack.hessian_terms()
    assert hess[0]["diag_above"] == 1 and hess[0]["off"] == -1


def test_latent_layers_need_real_support_and_a_base_measure(tmp_spec):
    with pytest.raises(DeepSpecError, match=r"layer 2.*support 'real'"):
        derive_stack(["poisson", "poisson"])
    spec = tmp_spec("name: nobase\nsupport: real\nlog_partition: eta**2/2\ndomain: [-oo, oo]\n")
    with pytest.raises(DeepSpecError, match="base_measure"):
        derive_stack(["poisson", str(spec)])
    with pytest.raises(ValueError, match="widths"):
        make(["poisson", "gaussian"], [5, 2])


# ------------------------------------------------------------------------------ L = 1


@pytest.mark.parametrize("name", ["poisson", "bernoulli"])
def test_single_layer_equals_expfampca(name):
    model = make([name], [7, 3], lam=0.3, seed=1)
    ref = ExpFamPCA(torch_family(name), 7, 3, lam=0.3, solver_options={"tol": 1e-13}, dtype=F64)
    with torch.no_grad():
        ref.W.copy_(model.weights[0])
        ref.B.copy_(model.biases[0])
    Y = data(name, 12, 7, seed=2)
    y1, y2 = Y.clone().requires_grad_(True), Y.clone().requires_grad_(True)
    (z,) = model(y1)
    zr = ref(y2)
    torch.testing.assert_close(z, zr, rtol=0, atol=1e-12)
    w = torch.randn(12, 3, dtype=F64, generator=gen(4))
    (z * w).sum().backward()
    (zr * w).sum().backward()
    for a, b in [(model.weights[0].grad, ref.W.grad), (model.biases[0].grad, ref.B.grad)]:
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(y1.grad, y2.grad, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------ Gaussian closed form


def gaussian_hierarchy_posterior(Ws, bs, lam, Y):
    """Exact p(z_1..z_L | Y) of z_L ~ N(0, I/lam), z_{l-1} = W_l z_l + b_l + N(0, I), from the
    generative representation z = M eps + c (no Hessian): joint covariance, then conditioning.
    Returns the posterior means (N x D), covariance (D x D) and the full joint precision."""
    L = len(Ws)
    widths = [Ws[0].shape[0]] + [W.shape[1] for W in Ws]
    starts = np.cumsum([0, *widths])
    total = starts[-1]
    # z_l = sum_k M[l, k] eps_k + c_l, built top-down
    M = np.zeros((total, total))
    c = np.zeros(total)
    blk = lambda l: slice(starts[l], starts[l + 1])  # noqa: E731
    M[blk(L), blk(L)] = np.eye(widths[L])
    for l in range(L, 0, -1):
        W, b = Ws[l - 1].numpy(), bs[l - 1].numpy()
        M[blk(l - 1), :] = W @ M[blk(l), :]
        M[blk(l - 1), blk(l - 1)] += np.eye(widths[l - 1])
        c[blk(l - 1)] = W @ c[blk(l)] + b
    noise = np.ones(total)
    noise[blk(L)] = 1.0 / lam
    S = M @ np.diag(noise) @ M.T
    o, lat = blk(0), slice(starts[1], total)
    gain = S[lat, o] @ np.linalg.inv(S[o, o])
    mean = c[lat][None, :] + (Y.numpy() - c[o][None, :]) @ gain.T
    cov = S[lat, lat] - gain @ S[o, lat]
    return mean, cov, np.linalg.inv(S), starts


@pytest.mark.parametrize("widths", [[6, 3], [6, 4, 2], [7, 5, 3, 2]])
def test_gaussian_hierarchy_map_and_laplace_match_closed_form(widths):
    L = len(widths) - 1
    model = make(["gaussian"] * L, widths, lam=0.7, seed=5, init_scale=0.8)
    with torch.no_grad():
        for b in model.biases:
            b.copy_(torch.randn(b.shape, dtype=F64, generator=gen(6)))
    Y = data("gaussian", 9, widths[0], seed=7)
    Z = torch.cat(model(Y), -1).detach()
    Ws, bs = params(model)
    mean, cov, joint_prec, starts = gaussian_hierarchy_posterior(Ws, bs, 0.7, Y)
    np.testing.assert_allclose(Z.numpy(), mean, rtol=0, atol=1e-10)
    lap = model.laplace(Y)
    np.testing.assert_allclose(lap.covariance()[0].numpy(), cov, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        lap.logdet_covariance().numpy(), np.full(9, np.linalg.slogdet(cov)[1]), rtol=1e-10
    )
    # z_l | everything else (= its neighbours, Markov) has precision = block of the joint one
    for l, cond in enumerate(model.conditional_laplace(Y), start=1):
        s = slice(starts[l], starts[l + 1])
        np.testing.assert_allclose(cond.precision[0].numpy(), joint_prec[s, s], atol=1e-10)
        torch.testing.assert_close(cond.mean, Z[:, s.start - starts[1] : s.stop - starts[1]])
    for l in range(1, L + 1):
        s = slice(starts[l] - starts[1], starts[l + 1] - starts[1])
        np.testing.assert_allclose(lap.marginal_covariance(l)[3].numpy(), cov[s, s], atol=1e-12)


# ------------------------------------------------------------------------------ non-Gaussian stacks


@pytest.mark.parametrize(
    "bottom, widths", [("poisson", [6, 3, 2]), ("bernoulli", [6, 4, 3, 2]), ("poisson", [5, 3])]
)
def test_stacks_satisfy_every_stationarity_condition_and_match_scipy(bottom, widths):
    L = len(widths) - 1
    model = make([bottom] + ["gaussian"] * (L - 1), widths, lam=0.4, seed=8, init_scale=0.6)
    Y = data(bottom, 5, widths[0], seed=9)
    zs = [z.detach() for z in model(Y)]
    stats = model.last_stats
    assert stats.all_converged and len(stats.layers) == L
    assert bool(stats.local_minimum.all()) and int(stats.negative_curvature.sum()) == 0
    Ws, bs = params(model)
    # every layer's stationarity condition, from an independently written objective
    leaves = [z.clone().requires_grad_(True) for z in zs]
    grads = torch.autograd.grad(reference_objective(bottom, Y, leaves, Ws, bs, 0.4).sum(), leaves)
    for g, s in zip(grads, stats.layers, strict=True):
        assert float(g.abs().max()) < 1e-8
        assert float(s.residual.max()) < 1e-8
    # scipy on the joint objective, sample by sample
    sizes = widths[1:]
    for i in range(Y.shape[0]):

        def fun(v, i=i):
            t = torch.tensor(v, dtype=F64, requires_grad=True)
            parts = [p[None] for p in torch.split(t, sizes)]
            J = reference_objective(bottom, Y[i : i + 1], parts, Ws, bs, 0.4).sum()
            (g,) = torch.autograd.grad(J, t)
            return float(J.detach()), g.numpy()

        res = so.minimize(
            fun, np.zeros(sum(sizes)), jac=True, method="BFGS", options={"gtol": 1e-11}
        )
        np.testing.assert_allclose(torch.cat([z[i] for z in zs]).numpy(), res.x, atol=1e-6)


def test_hessian_blocks_equal_autograd_hessian_of_the_objective(hsec):
    model = make(["poisson", "gaussian", hsec], [5, 3, 2, 2], lam=0.6, seed=10, init_scale=0.3)
    Y = data("poisson", 3, 5, seed=11)
    Z = torch.randn(3, 7, dtype=F64, generator=gen(12)) * 0.3
    H = model.hessian(Y, Z)
    for i in range(3):
        ref = torch.autograd.functional.hessian(
            lambda z, i=i: model.objective(Y[i : i + 1], z[None]).sum(), Z[i]
        )
        torch.testing.assert_close(H[i], ref.detach(), rtol=1e-10, atol=1e-10)
    grads = model.stationarity(Y, Z)
    z = Z.clone().requires_grad_(True)
    (ref_g,) = torch.autograd.grad(model.objective(Y, z).sum(), z)
    torch.testing.assert_close(torch.cat(grads, -1).detach(), ref_g, rtol=1e-10, atol=1e-12)


def test_negative_curvature_is_detected_and_reported(hsec):
    """A hyperbolic-secant latent layer makes J non-convex: the solver meets indefinite
    Hessians, says so, and still ends at strict local minima (checked independently)."""
    g = gen(4)
    model = deqfam.DeepExpFamPCA(
        ["gaussian", hsec],
        [6, 3, 2],
        0.5,
        init_scale=0.3,
        generator=g,
        dtype=F64,
        on_nonconvergence="raise",
    )
    Y = torch.randn(20, 6, generator=g, dtype=F64) * 5
    zs = model(Y)
    stats = model.last_stats
    assert stats.all_converged
    assert int((stats.negative_curvature > 0).sum()) > 0
    assert float(stats.most_negative_eigenvalue.min()) < 0
    assert "negative curvature met by" in str(stats)
    # the solutions are strict local minima: independent Hessian, eigenvalues > 0
    Z = torch.cat(zs, -1).detach()
    H = model.hessian(Y, Z).detach()
    assert bool(stats.local_minimum.all())
    assert float(torch.linalg.eigvalsh(H).min()) > 0


def test_saddle_solutions_follow_the_policy():
    n = 3
    ok = SolverStats(
        "x",
        torch.zeros(n, dtype=torch.long),
        torch.zeros(n),
        torch.ones(n),
        torch.ones(n, dtype=torch.bool),
        "grad_norm",
    )
    stats = DeepSolverStats(
        ok,
        [ok],
        torch.zeros(n, dtype=torch.long),
        torch.zeros(n),
        torch.tensor([True, False, True]),
        torch.tensor([math.nan, -0.5, math.nan]),
    )
    assert stats.n_saddles == 1
    with pytest.warns(NegativeCurvatureWarning, match=r"indices \[1\].*-0.5"):
        check_deep_convergence(stats, "warn")
    with pytest.raises(ConvergenceError, match="not a local MAP"):
        check_deep_convergence(stats, "raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_deep_convergence(stats, "ignore")


# ------------------------------------------------------------------------------ backward


@pytest.mark.parametrize(
    "families, widths, kind",
    [
        (["bernoulli", "gaussian", "gaussian"], [5, 3, 2, 2], "bernoulli"),
        (["poisson", "gaussian"], [4, 3, 2], "poisson"),
    ],
)
def test_gradcheck_whole_stack(families, widths, kind):
    model = make(families, widths, lam=0.5, seed=13, init_scale=0.5)
    Y = data(kind, 3, widths[0], seed=14).requires_grad_(True)
    Ws = [W.detach().clone().requires_grad_(True) for W in model.weights]
    bs = [b.detach().clone().requires_grad_(True) for b in model.biases]
    L = len(Ws)

    def f(Y, *p):
        z, stats = deep_equilibrium(model.layers, p[0::2], p[1::2], Y, 0.5, {"tol": 1e-14})
        assert stats.all_converged
        return z

    inputs = (Y, *[p for pair in zip(Ws, bs, strict=True) for p in pair])
    assert len(inputs) == 2 * L + 1
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


# ------------------------------------------------------------------------------ Laplace


def test_joint_laplace_block_cholesky_density_and_samples():
    model = make(["poisson", "gaussian"], [6, 3, 2], lam=0.5, seed=15, init_scale=0.4)
    Y = data("poisson", 4, 6, seed=16)
    lap = model.laplace(Y)
    H = lap.precision()
    Z = torch.cat(lap.mean, -1)
    torch.testing.assert_close(H, model.hessian(Y, Z))
    torch.testing.assert_close(lap.covariance(), torch.linalg.inv(H), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(lap.logdet_covariance(), -torch.linalg.slogdet(H)[1])
    z = Z + 0.3 * torch.randn(Z.shape, dtype=F64, generator=gen(17))
    cov = torch.linalg.inv(H).numpy()
    want = [st.multivariate_normal(Z[i].numpy(), cov[i]).logpdf(z[i].numpy()) for i in range(4)]
    np.testing.assert_allclose(lap.log_prob(z).numpy(), want, rtol=1e-10)
    draws = torch.cat(lap.sample(40000, generator=gen(18)), -1)  # (n, N, D)
    delta = draws - Z
    emp = torch.einsum("nsi,nsj->sij", delta, delta) / delta.shape[0]
    whitened = H @ emp  # ~ identity
    eye = torch.eye(5, dtype=F64).expand(4, 5, 5)
    torch.testing.assert_close(whitened, eye, rtol=0, atol=0.04)
    cond = model.conditional_laplace(Y)
    torch.testing.assert_close(cond[1].precision, H[:, 3:, 3:])
    torch.testing.assert_close(cond[0].covariance(), torch.linalg.inv(H[:, :3, :3]))


# ------------------------------------------------------------------------------ dropout


def test_relu_dropout_is_refused_unless_allowed_and_encodes_a_rectified_gaussian():
    relu = relu_family()
    assert deqfam.check(relu).verdict == "not_admissible"
    with pytest.raises(InadmissibleFamilyError, match="not an admissible"):
        deqfam.DeepExpFamPCA([relu], [6, 2], 0.5, dropout=True)
    with pytest.warns(UserWarning, match="NOT admissible"):
        model = make(
            [relu, "gaussian"],
            [6, 3, 2],
            lam=0.5,
            seed=19,
            dropout=[True, False],
            allow_inadmissible=True,
            init_scale=0.7,
        )
    layer = model.layers[0]
    assert layer.masked and "masked" in layer.name
    x = torch.linspace(-2, 2, 9, dtype=F64)[:, None].expand(9, 9)
    eta = torch.linspace(-1.9, 2.1, 9, dtype=F64)[None, :].expand(9, 9)
    # the statistical assumption: ell = log N(x; relu(eta), 1) - log N(x; 0, 1)
    want = st.norm.logpdf(x.numpy(), loc=np.maximum(eta.numpy(), 0)) - st.norm.logpdf(x.numpy())
    np.testing.assert_allclose(layer.core(x, eta).numpy(), want, atol=1e-13)
    # the masked score T(x) D - sigma(eta)
    D = (eta > 0).to(F64)
    torch.testing.assert_close(layer.score_eta(x, eta), x * D - torch.clamp(eta, min=0))
    # MAP: z_1 solves the masked DEQ z_1 = W_1^T (D * Y - relu(eta_1)) + (W_2 z_2 + b_2)
    # positive data: every kink of the masked objective at eta = 0 is concave, so the MAP sits
    # where J is smooth (with T(y) < 0 it may sit on a kink; see derive/deep.py)
    Y = data("gaussian", 8, 6, seed=20).abs() + 0.5
    z1, z2 = (z.detach() for z in model(Y))
    Ws, bs = params(model)
    eta1 = z1 @ Ws[0].T + bs[0]
    rhs = (Y * (eta1 > 0) - torch.clamp(eta1, min=0)) @ Ws[0] + z2 @ Ws[1].T + bs[1]
    torch.testing.assert_close(z1, rhs, rtol=0, atol=1e-10)
    torch.testing.assert_close(z2, (z1 - z2 @ Ws[1].T - bs[1]) @ Ws[1] / 0.5, rtol=0, atol=1e-10)


# ------------------------------------------------------------------------------ training


def test_loss_gradient_is_the_envelope_gradient_plus_per_layer_weight_decay():
    model = make(["poisson", "gaussian"], [6, 3, 2], lam=0.5, seed=21, weight_decay=[2.0, 5.0])
    Y = data("poisson", 10, 6, seed=22)
    loss = model.loss(Y, n_total=40)
    loss.backward()
    zs = [z.detach() for z in model(Y)]
    Ws = [W.detach().clone().requires_grad_(True) for W in model.weights]
    bs = [b.detach().clone().requires_grad_(True) for b in model.biases]
    ref = reference_objective("poisson", Y, zs, Ws, bs, 0.5).mean() + sum(
        0.5 * w * (W.square().sum() + b.square().sum()) / 40
        for w, W, b in zip([2.0, 5.0], Ws, bs, strict=True)
    )
    ref_grads = torch.autograd.grad(ref, [*Ws, *bs])
    got = [*(W.grad for W in model.weights), *(b.grad for b in model.biases)]
    for a, b in zip(got, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_freezing_schedule_keeps_layers_fixed_until_their_epoch_and_resumes(tmp_path):
    Y = data("poisson", 24, 6, seed=23)

    def run(epochs, resume=None, ckpt=None):
        model = make(
            ["poisson", "gaussian"],
            [6, 3, 2],
            lam=0.5,
            seed=24,
            init_scale=0.1,
            on_nonconvergence="warn",
            solver_options={},
            weight_decay=[1.0, 3.0],
        )
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        cfg = {"epochs": epochs, "batch_size": 8, "lr": 1e-2, "progress": False}
        if ckpt is not None:
            cfg["checkpoint_dir"] = str(ckpt)
        hist = train_deep(model, Y, cfg, unfreeze_epochs=[0, 2], resume=resume)
        assert all(p.requires_grad for p in model.parameters())
        after = {n: p.detach().clone() for n, p in model.named_parameters()}
        changed = {n: not torch.equal(before[n], after[n]) for n in before}
        return hist, changed, after

    hist, changed, _ = run(2)
    assert len(hist.loss) == 2 and hist.nonconverged == [0, 0]
    assert changed["weights.0"] and changed["biases.0"]
    assert not changed["weights.1"] and not changed["biases.1"]
    hist3, changed, straight = run(3)
    assert changed["weights.1"] and changed["biases.1"]
    # stopped after epoch 1, resumed: the schedule continues at the right epoch
    run(1, ckpt=tmp_path)
    hist_r, _, resumed = run(3, resume=tmp_path / "last.pt")
    assert hist_r.loss == pytest.approx(hist3.loss, rel=1e-12)
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=1e-12, atol=1e-14)
