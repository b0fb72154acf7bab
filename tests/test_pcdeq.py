"""Positive concave DEQs (runtime/pcdeq/) and the symbolic concavity analysis
(derive/concavity.py): uniqueness and global convergence of plain iteration, the certificate
and its backward (Collatz-Wielandt) bound against dense spectral radii, IFT gradients against
gradcheck, and the built-in family table against mpmath derivatives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
import torch
from oracles.high_precision import high_precision_derivative

from deqfam import certificates
from deqfam.derive.concavity import (
    NAMED_ACTIVATIONS as SYMBOLIC_ACTIVATIONS,
)
from deqfam.derive.concavity import (
    activation_concavity,
    builtin_concavity_table,
)
from deqfam.derive.family import load_family
from deqfam.runtime.pcdeq import (
    ADMISSIBLE_ACTIVATIONS,
    NAMED_ACTIVATIONS,
    CertificationError,
    PositiveConcaveDEQ,
    as_activation,
    certify,
    certify_map,
    pcdeq_equilibrium,
    pcdeq_map,
)
from deqfam.runtime.solvers import SolverConfig, fixed_point

F64 = torch.float64
# Admissible activations: named ones and exponential-family ones (Bernoulli = sigmoid,
# Ising = tanh, binomial = n * sigmoid).
ALLOWED = ["tanh", "softsign", "sigmoid", "relu6", "bernoulli", "ising", "binomial"]
BOUNDED = {"tanh", "softsign", "sigmoid", "relu6", "bernoulli", "ising", "binomial"}


def random_problem(seed, n=12, batch=3, radius=0.9, x_low=0.05):
    """Nonnegative ``W`` with spectral radius ``radius`` and positive injections ``x``."""
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(n, n, generator=g, dtype=F64) ** 2
    W *= radius / torch.linalg.eigvals(W).abs().max()
    x = x_low + torch.rand(batch, n, generator=g, dtype=F64)
    return W, x


@pytest.mark.parametrize("name", ALLOWED)
def test_plain_iteration_reaches_one_fixed_point_from_any_start(name):
    # Bounded activations need no spectral condition: rho(W) = 1.5 > 1 (not a contraction in
    # any norm a priori), yet the standard-interference argument gives a unique fixed point.
    radius = 1.5 if name in BOUNDED else 0.9
    W, x = random_problem(1, radius=radius)
    T = pcdeq_map(W, x, name)
    g = torch.Generator().manual_seed(2)
    cfg = SolverConfig(tol=1e-13, max_iter=5000)
    sols = []
    for _ in range(5):
        z0 = 10 * torch.rand(x.shape, generator=g, dtype=F64)  # random start in the orthant
        z, stats = fixed_point(T, z0, cfg)
        assert stats.all_converged
        sols.append(z)
    for z in sols[1:]:
        assert (z - sols[0]).abs().max() < 1e-10
    act = as_activation(name)
    for s in range(x.shape[0]):
        if name == "relu6":
            # Piecewise linear: with the saturated set S (pre-activation >= 6) the fixed point
            # solves the linear system z_L = W_LL z_L + 6 W_LS 1 + x_L exactly.
            z = sols[0][s]
            sat = (W @ z + x[s]) >= 6
            lin = ~sat
            ref = torch.full_like(z, 6.0)
            rhs = 6 * W[lin][:, sat].sum(1) + x[s][lin]
            eye = torch.eye(int(lin.sum()), dtype=F64)
            ref[lin] = torch.linalg.solve(eye - W[lin][:, lin], rhs)
            assert bool(((W @ ref + x[s])[sat] >= 6).all()) and bool((ref[lin] < 6).all())
            torch.testing.assert_close(z, ref, atol=1e-10, rtol=0)
            continue

        # Independent reference: a Newton-type root finder (scipy hybr) on sigma(Wz + x) - z.
        def resid(v, s=s):
            zt = torch.as_tensor(v, dtype=F64)
            return (act.fn(W @ zt + x[s]) - zt).numpy()

        # Start from T(sup sigma * 1), an upper bound of z* (T is monotone).
        top = act.fn(torch.tensor(1e3, dtype=F64)) * torch.ones(W.shape[0], dtype=F64)
        start = act.fn(W @ top + x[s]).numpy()
        sol = scipy.optimize.root(resid, start, method="hybr", tol=1e-12)
        assert np.abs(resid(sol.x)).max() < 1e-12
        np.testing.assert_allclose(sols[0][s].numpy(), sol.x, atol=1e-10)


@pytest.mark.parametrize("name", ALLOWED)
def test_certificate_holds_and_bounds_the_dense_spectral_radius(name):
    W, x = random_problem(3, radius=1.5 if name in BOUNDED else 0.9)
    cert = certify_map(W, x, name)
    assert cert.certified, cert.violations
    assert cert.monotone_iterates  # from z0 = 0 the iterates increase (T monotone, T(0) > 0)
    act = as_activation(name)
    rhos = []
    for s in range(x.shape[0]):
        z = cert.fixed_point[s]
        # Dense Jacobian of T at z* by autograd on the elementwise map (independent of the
        # analytic sigma' used by the certificate), then its spectral radius.
        J = torch.autograd.functional.jacobian(lambda v, s=s: act.fn(W @ v + x[s]), z)
        rho = float(torch.linalg.eigvals(J).abs().max())
        rhos.append(rho)
        assert rho <= float(cert.adjoint_bound[s]) + 1e-12
        assert float(cert.adjoint_bound[s]) <= float(cert.concavity_bound[s]) + 1e-12
        assert float(cert.adjoint_bound[s]) < 1
    # Plain iteration converges asymptotically at the Perron root of J: the observed ratio of
    # successive steps approaches max_s rho(J_s) (within 5%).
    assert cert.observed_ratio == pytest.approx(max(rhos), rel=0.05, abs=0.01)


def test_backward_certificate_is_an_upper_bound_not_the_radius():
    # ReLU6 with tiny injections: J z* ~ z*, the bound is close to (but above) rho(J).
    W, x = random_problem(4, radius=0.8, x_low=1e-3)
    x = x * 1e-2 + 1e-3
    cert = certify_map(W, x, "relu6")
    assert cert.certified
    assert float(cert.adjoint_bound.max()) < 1


def test_gradcheck_through_the_implicit_backward():
    g = torch.Generator().manual_seed(5)
    layer = PositiveConcaveDEQ(6, "softsign", in_features=3, generator=g, dtype=F64, gain=0.9)
    u = torch.randn(4, 3, generator=g, dtype=F64)

    def fn(V, U, c, u):
        W = torch.nn.functional.softplus(V)
        x = torch.nn.functional.softplus(u @ U.T + c) + layer.input_floor
        return pcdeq_equilibrium(W, x, "softsign").z

    args = tuple(
        t.detach().clone().requires_grad_(True)
        for t in (layer.weight_raw, layer.input_weight, layer.input_bias, u)
    )
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-7, rtol=1e-6)


def test_layer_forward_backward_stats_and_nonnegativity_is_kept():
    g = torch.Generator().manual_seed(6)
    for param in ("softplus", "square", "project"):
        layer = PositiveConcaveDEQ(10, "tanh", in_features=4, weight_param=param, generator=g)
        layer = layer.double()
        u = torch.randn(8, 4, generator=g, dtype=F64)
        opt = torch.optim.SGD(layer.parameters(), lr=5.0)
        loss = layer(u).square().sum()
        assert layer.last_result.stats.all_converged
        loss.backward()
        assert layer.last_result.backward_stats[0].all_converged
        # Gradient of the layer agrees with unrolled plain iteration (a different route).
        grads = [p.grad.clone() for p in layer.parameters()]
        layer.zero_grad()
        x = layer.injection(u)
        z = torch.zeros(8, 10, dtype=F64)
        for _ in range(300):
            z = torch.tanh(z @ layer.weight.T + x)
        z.square().sum().backward()
        for a, p in zip(grads, layer.parameters(), strict=True):
            torch.testing.assert_close(a, p.grad, atol=1e-9, rtol=1e-8)
        opt.step()  # a large step: W must stay >= 0 (by construction, or after projection)
        layer.project_()
        assert float(layer.weight.detach().min()) >= 0
        assert certify(layer, u).certified


def test_negative_weight_fails_naming_the_condition():
    W, x = random_problem(7)
    W[0, 1] = -0.3
    cert = certify_map(W, x, "tanh")
    assert not cert.certified
    assert any(v.startswith("nonnegative_weights: min W = -0.3") for v in cert.violations)
    with pytest.raises(CertificationError, match="nonnegative_weights"):
        cert.raise_if_failed()
    # A projected layer recovers.
    layer = PositiveConcaveDEQ(4, "tanh", weight_param="project", dtype=F64)
    with torch.no_grad():
        layer.weight_raw[0, 0] = -1.0
    u = torch.full((2, 4), 0.5, dtype=F64)
    assert "nonnegative_weights" in certify(layer, u).violations[0]
    layer.project_()
    assert certify(layer, u).certified


@pytest.mark.parametrize("name", ["softplus", "exp", "poisson"])
def test_convex_activation_fails_naming_the_condition(name):
    W, x = random_problem(8, radius=0.5)
    cert = certify_map(W, x, name)
    assert not cert.certified
    assert cert.violations[0].startswith("concave_activation: sigma is not concave")


def test_zero_input_with_tanh_fails_positivity():
    W, _ = random_problem(9)
    cert = certify_map(W, torch.zeros(2, W.shape[0], dtype=F64), "tanh")
    assert not cert.certified
    assert any(v.startswith("positivity") for v in cert.violations)
    # sigmoid(0) = 1/2 > 0: x = 0 is fine there.
    assert certify_map(W, torch.zeros(2, W.shape[0], dtype=F64), "sigmoid").certified


def test_unbounded_activation_needs_the_spectral_condition():
    W, x = random_problem(10, radius=1.2)
    cert = certify_map(W, x, "relu")
    assert not cert.conditions["existence"].holds
    assert cert.conditions["existence"].value == pytest.approx(1.2, rel=1e-9)
    W, x = random_problem(10, radius=0.7)
    assert certify_map(W, x, "relu").certified


def test_negative_injection_with_sigmoid_fails_concavity_below_zero():
    # Pre-activations reach [min x, oo) with min x < 0, where the sigmoid is convex.
    W, x = random_problem(11)
    x[0, 0] = -2.0
    cert = certify_map(W, x, "sigmoid")
    assert any(v.startswith("concave_activation") for v in cert.violations)


def test_kglm_style_layer_with_nonnegative_kernel_weights():
    # z = sigma(W1 z + W2 T(Y)) with W1 = K / lam built from a Gaussian kernel (entries >= 0),
    # W2 T(Y) >= 0 for binary Y, and Bernoulli's sigmoid activation: certified; with the kGLM
    # sign convention W1 = -K / lam it is not (negative weights).
    g = torch.Generator().manual_seed(12)
    pts = torch.randn(8, 2, generator=g, dtype=F64)
    K = torch.exp(-(torch.cdist(pts, pts) ** 2))
    lam = 2 * float(torch.linalg.eigvalsh(K).max())
    Y = (torch.rand(5, 8, generator=g, dtype=F64) > 0.5).to(F64)
    bias = Y @ (K / lam).T
    proofed = certificates.certify_map(K / lam, bias, "bernoulli")
    assert proofed.certified
    assert proofed.conditions["concave_activation"].method == "symbolic"
    assert not certificates.certify_map(-K / lam, bias, "bernoulli").certified


def test_facade_attaches_symbolic_proofs():
    layer = PositiveConcaveDEQ(5, "ising", in_features=2, dtype=F64)
    u = torch.ones(3, 2, dtype=F64)
    cert = certificates.certify(layer, u)
    assert cert.certified
    assert cert.conditions["monotone_activation"].method == "symbolic"
    assert cert.conditions["concave_activation"].method == "symbolic"
    assert cert.conditions["existence"].method == "symbolic"
    # Continuous Bernoulli has no symbolic concavity proof: the grid decides.
    cb = PositiveConcaveDEQ(5, "continuous_bernoulli", in_features=2, dtype=F64)
    cert = certificates.certify(cb, u)
    assert cert.certified
    assert cert.conditions["concave_activation"].method == "grid"
    # Poisson: symbolically disproven.
    po = certificates.certify_map(
        torch.eye(3, dtype=F64) * 0.1, torch.ones(1, 3, dtype=F64), "poisson"
    )
    assert po.conditions["concave_activation"].method == "symbolic"
    assert not po.conditions["concave_activation"].holds


#: The answer of derive/concavity.py for the built-in families (see its module docstring).
EXPECTED_TABLE = {
    "bernoulli": "proven",
    "binomial": "proven",
    "ising": "proven",
    "gaussian": "proven",
    "continuous_bernoulli": "numerical",
    "poisson": "disproven",
    "gamma": "not_applicable",
    "negative_binomial": "not_applicable",
    "bose_einstein": "not_applicable",
    "fermi_dirac": "not_applicable",
}


def test_builtin_family_table_and_mpmath_check():
    table = builtin_concavity_table()
    assert {k: v.verdict for k, v in table.items()} == EXPECTED_TABLE
    assert table["ising"].needs_positive_input and not table["bernoulli"].needs_positive_input
    assert table["gaussian"].needs_spectral_condition and table["gaussian"].asymptotic_slope == 1
    assert table["bernoulli"].bounded and table["bernoulli"].value_at_lower == 0.5
    assert table["binomial"].value_at_lower == 8.0  # n/2 with n = 16
    # Independent check: A''' by mpmath numerical differentiation (50 digits) has the claimed
    # sign at points of (0, 30].
    etas = [0.05, 0.5, 1.0, 2.5, 7.0, 30.0]
    for name, verdict in table.items():
        if verdict.verdict == "not_applicable":
            continue
        fam = load_family(name)
        third = [high_precision_derivative(fam, e, 3) for e in etas]
        if verdict.verdict in ("proven", "numerical"):
            assert max(third) <= 1e-30, name
        else:
            assert max(third) > 0, name


def test_named_activation_verdicts_match_the_runtime_list():
    for name in SYMBOLIC_ACTIVATIONS:
        v = activation_concavity(name)
        assert v.admissible == (name in ADMISSIBLE_ACTIVATIONS), name
        assert v.proven == (name in ADMISSIBLE_ACTIVATIONS), name
        if v.admissible:
            assert v.needs_positive_input == ADMISSIBLE_ACTIVATIONS[name], name
    assert set(SYMBOLIC_ACTIVATIONS) == set(NAMED_ACTIVATIONS)
    relu6 = activation_concavity("relu6")
    assert relu6.bounded and relu6.asymptotic_slope == 0 and relu6.value_at_lower == 0
    assert math.isinf(activation_concavity("exp").asymptotic_slope)


def test_top_level_export():
    import deqfam

    assert deqfam.PositiveConcaveDEQ is PositiveConcaveDEQ
