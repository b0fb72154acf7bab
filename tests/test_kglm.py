"""kGLM-DEQ layer (Theorem 3), kernel initialisation, Assumption 2 and the convolutional form.

Every equivalence is checked against something written independently of the DEQ code: the
numpy Newton/IRLS solver of the kGLM (5) (itself checked against scipy.optimize), closed forms
(kernel ridge regression, the prior activations), dense SVDs, the entry-by-entry convolution
matrix, finite differences (gradcheck).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
import torch
from oracles.klr import kglm_newton
from scipy.special import expit

import deqfam
from deqfam.api import torch_family, torch_prior
from deqfam.derive.prior import derive_prior
from deqfam.derive.spec import SpecError
from deqfam.runtime.kernels import (
    ChannelCovariance,
    Periodic,
    SquaredExponential,
    Truncation,
    WhiteNoise,
    check_contraction,
    conv_filter,
    conv_matrix,
    conv_spectral_norm,
    kglm_init,
    lam_for,
    pixel_coordinates,
    spectral_norm,
    spectral_norm_power,
)
from deqfam.runtime.kglm import KGLMDEQ, ConvKGLMDEQ, TorchPrior, as_torch_prior
from deqfam.runtime.solvers import ConvergenceError

TIGHT = {"tol": 1e-13, "max_iter": 300}

# Independent numpy forms of A, A', A'' (not the generated torch code).
NUMPY_FAMILIES = {
    "bernoulli": (lambda f: np.logaddexp(0.0, f), expit, lambda f: expit(f) * expit(-f)),
    "poisson": (np.exp, np.exp, np.exp),
    "ising": (
        lambda f: np.logaddexp(f, -f) - math.log(2.0),
        np.tanh,
        lambda f: 1.0 / np.cosh(f) ** 2,
    ),
    "gaussian": (lambda f: 0.5 * f**2, lambda f: f, np.ones_like),
}


def random_kernel_problem(seed: int, n: int = 14, m: int = 5):
    """``K = k(X, X)``, ``k(X~, X)`` for a random SE + periodic x SE + white-noise kernel on
    random 2-D coordinates (all entries >= 0, K strictly positive definite)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, size=(n, 2))
    Xo = rng.uniform(-3, 3, size=(m, 2))
    k = (
        SquaredExponential(rng.uniform(0.8, 2.0), rng.uniform(0.5, 2.0))
        + Periodic(period=2.5, lengthscale=1.0, variance=0.5) * SquaredExponential(2.0)
        + WhiteNoise(1e-2)
    )
    K, Kc = k(X).numpy(), k(Xo, X).numpy()
    assert np.linalg.eigvalsh(K).min() > 5e-3  # Assumption 1
    return rng, K, Kc


def sample_data(name: str, rng: np.random.Generator, N: int, n: int) -> np.ndarray:
    if name == "bernoulli":
        return rng.integers(0, 2, size=(N, n)).astype(float)
    if name == "poisson":
        return rng.poisson(2.0, size=(N, n)).astype(float)
    if name == "ising":
        return rng.choice([-1.0, 1.0], size=(N, n))
    return rng.normal(size=(N, n))


@pytest.fixture(scope="module")
def bernoulli_logcosh():
    return derive_prior("bernoulli", "c*log(cosh(f))", parameters={"c": 0.5})


# --------------------------------------------------------------------------- the reference


def test_newton_reference_matches_scipy_minimize():
    """The independent kGLM solver reaches the minimiser of (5) found by scipy's BFGS."""
    rng, K, _ = random_kernel_problem(3)
    t = sample_data("bernoulli", rng, 1, K.shape[0])[0]
    lam = 0.7
    A, dA, d2A = NUMPY_FAMILIES["bernoulli"]

    def objective(a):
        f = K @ a
        return -a @ K @ t + A(f).sum() + 0.5 * lam * a @ f

    def gradient(a):
        return -K @ (t - dA(K @ a) - lam * a)

    ref = scipy.optimize.minimize(
        objective, np.zeros_like(t), jac=gradient, method="BFGS", options={"gtol": 1e-12}
    )
    res = kglm_newton(K, t, lam, A, dA, d2A)
    assert res.converged and res.iterations <= 10
    np.testing.assert_allclose(res.f, K @ ref.x, atol=1e-7)
    assert objective(res.alpha) <= ref.fun + 1e-12


# --------------------------------------------------------------------------- Theorem 3


@pytest.mark.parametrize("name", ["bernoulli", "poisson", "ising"])
def test_theorem3_deq_solves_the_kglm(name):
    """z* = A'(K alpha*) and f*(X~) = k(X~, X) alpha* (Theorem 3 (7)-(8)) to 1e-8, with
    Assumption 2 verified for the initialised layer."""
    rng, K, Kc = random_kernel_problem(11)
    n, m = Kc.shape[1], Kc.shape[0]
    Y = sample_data(name, rng, 4, n)
    layer = KGLMDEQ(
        torch_family(name),
        n,
        m,
        solver_options=TIGHT,
        on_nonconvergence="raise",
        dtype=torch.float64,
    )
    sup_slope = None
    if name == "poisson":
        # sup A'' = inf on R. K >= 0 entrywise and z = exp(.) > 0, so every iterate has
        # eta = K (T - z) / lam <= max K T / lam =: eta_max; on that invariant set
        # sup A'' = exp(eta_max) (Assumption 2 on the set the map cannot leave).
        C = 0.5
        while True:
            lam = lam_for(K, C)
            sup_slope = math.exp(float((Y @ K.T).max()) / lam)
            if C * sup_slope < 0.9:
                break
            C /= 2
    else:
        lam = lam_for(K, 0.5)
    kglm_init(layer, K, Kc, lam)
    report = check_contraction(layer, sup_slope=sup_slope)
    assert report.guaranteed, report
    f = layer(torch.from_numpy(Y)).detach().numpy()
    z = layer.last_z.numpy()
    assert layer.last_stats.all_converged
    A, dA, d2A = NUMPY_FAMILIES[name]
    for s in range(Y.shape[0]):
        ref = kglm_newton(K, Y[s], lam, A, dA, d2A)
        assert ref.converged
        np.testing.assert_allclose(z[s], dA(K @ ref.alpha), rtol=0, atol=1e-8)
        np.testing.assert_allclose(f[s], Kc @ ref.alpha, rtol=0, atol=1e-8)


def test_theorem3_with_a_log_concave_prior(bernoulli_logcosh):
    """With q = cosh(f)^(-1/2) (Q = log(cosh f)/2): rho = Q' o (A')^-1 derived by SymPy; the DEQ
    with W3 = -K/lam matches Newton on (5) with the prior term."""
    prior = torch_prior(bernoulli_logcosh)
    rng, K, Kc = random_kernel_problem(5)
    n, m = Kc.shape[1], Kc.shape[0]
    Y = sample_data("bernoulli", rng, 3, n)
    layer = KGLMDEQ(
        torch_family("bernoulli"),
        n,
        m,
        prior=prior,
        solver_options=TIGHT,
        on_nonconvergence="raise",
        dtype=torch.float64,
    )
    lam = lam_for(K, 0.5)
    kglm_init(layer, K, Kc, lam)
    report = check_contraction(layer)
    # bound = sup A'' |K/lam| (1 + sup rho') = 1/4 * 0.5 * (1 + 0.5 * 4)
    assert report.guaranteed and report.bound == pytest.approx(0.375, rel=1e-9)
    f = layer(torch.from_numpy(Y)).detach().numpy()
    A, dA, d2A = NUMPY_FAMILIES["bernoulli"]
    c = 0.5
    for s in range(Y.shape[0]):
        ref = kglm_newton(
            K,
            Y[s],
            lam,
            A,
            dA,
            d2A,
            lambda x: c * np.logaddexp(x, -x),
            lambda x: c * np.tanh(x),
            lambda x: c / np.cosh(x) ** 2,
        )
        assert ref.converged
        np.testing.assert_allclose(layer.last_z[s].numpy(), expit(ref.f), atol=1e-8, rtol=0)
        np.testing.assert_allclose(f[s], Kc @ ref.alpha, atol=1e-8, rtol=0)


def test_gaussian_family_is_kernel_ridge_regression():
    """sigma = identity: z* = (K + lam I)^-1 K Y and f* = K~ (K + lam I)^-1 Y (closed form)."""
    rng, K, Kc = random_kernel_problem(8)
    n = K.shape[0]
    Y = rng.normal(size=(3, n))
    layer = KGLMDEQ(
        torch_family("gaussian"), n, Kc.shape[0], solver_options=TIGHT, dtype=torch.float64
    )
    lam = lam_for(K, 0.6)
    kglm_init(layer, K, Kc, lam)
    f = layer(torch.from_numpy(Y)).detach().numpy()
    sol = np.linalg.solve(K + lam * np.eye(n), Y.T)
    np.testing.assert_allclose(layer.last_z.numpy(), (K @ sol).T, atol=1e-10)
    np.testing.assert_allclose(f, (Kc @ sol).T, atol=1e-10)


# --------------------------------------------------------------------------- Appendix G


def test_klr_equivalence_on_digits():
    """Appendix G on 80 sklearn digits (binarised at 8, 30% bits flipped, SE(1) + 1e-8 white,
    lam = 2|K|): DEQ and KLR posteriors agree to 1e-6; binarised predictions agree except on
    exact ties at 0.5."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(0)
    clean = (load_digits().images[:80].reshape(-1, 64) >= 8).astype(float)
    noisy = np.where(rng.random(clean.shape) < 0.3, 1.0 - clean, clean)
    ii, jj = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    X = np.stack([ii.ravel(), jj.ravel()], 1)
    K = (SquaredExponential(1.0) + WhiteNoise(1e-8))(X).numpy()
    lam = 2.0 * np.linalg.svd(K, compute_uv=False)[0]
    layer = KGLMDEQ(torch_family("bernoulli"), 64, 64, solver_options=TIGHT, dtype=torch.float64)
    kglm_init(layer, K, K, lam)
    assert check_contraction(layer).bound == pytest.approx(0.125, rel=1e-8)
    with torch.no_grad():
        p_deq = layer.predict_mean(torch.from_numpy(noisy)).numpy()
    A, dA, d2A = NUMPY_FAMILIES["bernoulli"]
    p_klr = np.stack([expit(kglm_newton(K, y, lam, A, dA, d2A).f) for y in noisy])
    np.testing.assert_allclose(p_deq, p_klr, atol=1e-6, rtol=0)
    differ = (p_deq > 0.5) != (p_klr > 0.5)
    tie = (np.abs(p_deq - 0.5) < 1e-9) & (np.abs(p_klr - 0.5) < 1e-9)
    assert not (differ & ~tie).any()


# --------------------------------------------------------------------------- Corollary 11


def _pixel_kernel(channels: int, radius: int, taper: str = "box"):
    B = np.array([[1.0, 0.3, 0.1], [0.3, 0.8, 0.2], [0.1, 0.2, 0.9]])[:channels, :channels]
    return SquaredExponential(1.3, dims=(0, 1)) * ChannelCovariance(B, dim=2) * Truncation(
        radius, dims=(0, 1), taper=taper
    ) + WhiteNoise(1e-3)


def test_conv_filter_matrix_is_the_kernel_matrix():
    """The filters read off a truncated stationary kernel, written back as a matrix entry by
    entry (Definition 9-10), are exactly k(X, X) on the pixel-channel coordinates."""
    kernel = _pixel_kernel(2, 2)
    w = conv_filter(kernel, 2, 2)
    assert w.shape == (2, 2, 5, 5)
    np.testing.assert_array_equal(conv_matrix(w, 6, 7), kernel(pixel_coordinates(2, 6, 7)).numpy())
    with pytest.raises(ValueError, match="does not vanish"):
        conv_filter(SquaredExponential(1.0, dims=(0, 1)), 1, 2)


@pytest.mark.parametrize("family", ["bernoulli", "ising"])
def test_conv_initialised_layer_equals_dense_layer(family):
    """Corollary 11: the conv layer initialised from filters equals the dense kernel-matrix
    layer (kglm_init with K = k(X, X) on the flattened images) to 1e-10."""
    C, H, W, r = 2, 6, 7, 2
    kernel = _pixel_kernel(C, r)
    K = kernel(pixel_coordinates(C, H, W)).numpy()
    w = conv_filter(kernel, C, r)
    lam = lam_for(K, 0.5)
    fam = torch_family(family)
    dense = KGLMDEQ(
        fam,
        C * H * W,
        C * H * W,
        solver_options=TIGHT,
        on_nonconvergence="raise",
        dtype=torch.float64,
    )
    conv = ConvKGLMDEQ(
        fam, C, H, W, r, solver_options=TIGHT, on_nonconvergence="raise", dtype=torch.float64
    )
    kglm_init(dense, K, K, lam)
    kglm_init(conv, w, w, lam)
    rng = np.random.default_rng(2)
    Y = torch.from_numpy(sample_data(family, rng, 3, C * H * W).reshape(3, C, H, W))
    with torch.no_grad():
        out_conv = conv(Y).reshape(3, -1)
        out_dense = dense(Y.reshape(3, -1))
    torch.testing.assert_close(out_conv, out_dense, atol=1e-10, rtol=0)
    torch.testing.assert_close(conv.last_z.reshape(3, -1), dense.last_z, atol=1e-10, rtol=0)


def test_circular_conv_layer_equals_dense_circulant_layer():
    """Random filters and biases, circular padding: equal to the dense layer whose matrices are
    the circulant matrices of the filters (built entry by entry)."""
    g = torch.Generator().manual_seed(4)
    C, H, W = 3, 5, 6
    fam = torch_family("bernoulli")
    conv = ConvKGLMDEQ(
        fam,
        C,
        H,
        W,
        1,
        padding_mode="circular",
        solver_options=TIGHT,
        generator=g,
        dtype=torch.float64,
    )
    with torch.no_grad():
        conv.b.normal_(generator=g)
        conv.c.normal_(generator=g)
    dense = KGLMDEQ(fam, C * H * W, C * H * W, solver_options=TIGHT, dtype=torch.float64)
    with torch.no_grad():
        for src, dst in (("C1", "W1"), ("C2", "W2"), ("D1", "V1"), ("D2", "V2")):
            mat = conv_matrix(getattr(conv, src), H, W, "circular")
            getattr(dense, dst).copy_(torch.from_numpy(mat))
        dense.b.copy_(conv.b.repeat_interleave(H * W))
        dense.c.copy_(conv.c.repeat_interleave(H * W))
        Y = torch.randn(4, C, H, W, generator=g)
        torch.testing.assert_close(
            conv(Y).reshape(4, -1), dense(Y.reshape(4, -1)), atol=1e-10, rtol=0
        )


def test_fft_spectral_norm_matches_dense_svd():
    """Sedghi et al.: the FFT spectral norm of a circular convolution equals the largest
    singular value of its dense matrix (1e-8); for zero padding it is an upper bound."""
    g = torch.Generator().manual_seed(0)
    for C, H, W, k in ((3, 5, 6, 3), (2, 7, 4, 5), (1, 6, 6, 3)):
        w = torch.randn(C, C, k, k, generator=g)
        dense = np.linalg.svd(conv_matrix(w, H, W, "circular"), compute_uv=False)[0]
        assert conv_spectral_norm(w, H, W, "circular") == pytest.approx(dense, abs=1e-8)
        zero = np.linalg.svd(conv_matrix(w, H, W, "zeros"), compute_uv=False)[0]
        assert conv_spectral_norm(w, H, W, "zeros") >= zero - 1e-10


def test_power_iteration_spectral_norm():
    rng = np.random.default_rng(1)
    for M in (rng.normal(size=(30, 30)), random_kernel_problem(2)[1], rng.normal(size=(7, 12))):
        ref = np.linalg.svd(M, compute_uv=False)[0]
        assert spectral_norm_power(M) == pytest.approx(ref, abs=1e-8 * ref)
        assert spectral_norm(M) == pytest.approx(ref, rel=1e-12)


def test_box_truncation_is_not_psd_but_bartlett_is():
    """Appendix E's box indicator kernel is not PSD (eigenvalue 1 - sqrt 2 on three pixels);
    the Bartlett taper with the same support is."""
    x = np.array([[0.0], [1.0], [2.0]])
    box = Truncation(1, taper="box")(x).numpy()
    assert np.linalg.eigvalsh(box).min() == pytest.approx(1 - math.sqrt(2), abs=1e-12)
    grid = pixel_coordinates(1, 9, 9)[:, :2]
    bart = Truncation(2, taper="bartlett")(grid).numpy()
    assert np.linalg.eigvalsh(bart).min() > -1e-12


# --------------------------------------------------------------------------- Assumption 2


def test_check_contraction_reports_violation_when_lam_too_small():
    _, K, Kc = random_kernel_problem(6)
    layer = KGLMDEQ(torch_family("bernoulli"), K.shape[0], Kc.shape[0], dtype=torch.float64)
    norm = np.linalg.svd(K, compute_uv=False)[0]
    kglm_init(layer, K, Kc, lam=norm / 8.0)  # |K/lam| sup A'' = 8/4 = 2
    report = check_contraction(layer)
    assert not report.guaranteed
    assert report.bound == pytest.approx(2.0, rel=1e-8)
    kglm_init(layer, K, Kc, lam=norm / 3.0)  # 3/4 < 1
    assert check_contraction(layer, norm_method="exact").guaranteed
    assert lam_for(K, 3.0) == pytest.approx(norm / 3.0, rel=1e-12)
    poisson = KGLMDEQ(torch_family("poisson"), K.shape[0], Kc.shape[0], dtype=torch.float64)
    kglm_init(poisson, K, Kc, lam=100 * norm)
    assert not check_contraction(poisson).guaranteed  # sup exp = inf: no global guarantee


# --------------------------------------------------------------------------- the prior


def test_derived_prior_matches_closed_forms(bernoulli_logcosh):
    """rho = Q'((A')^-1(mu)) = c tanh(logit mu) = c (2mu - 1)/(mu^2 + (1 - mu)^2); rho' from the
    generated module equals autograd's; sup rho' = 4c (at mu = 1/2)."""
    tp = torch_prior(bernoulli_logcosh)
    mu = torch.linspace(1e-3, 1 - 1e-3, 201, dtype=torch.float64, requires_grad=True)
    closed = 0.5 * (2 * mu - 1) / (mu**2 + (1 - mu) ** 2)
    torch.testing.assert_close(tp.rho(mu), closed, atol=1e-14, rtol=1e-13)
    (auto,) = torch.autograd.grad(tp.rho(mu).sum(), mu)
    torch.testing.assert_close(tp.rho_grad(mu), auto, atol=1e-12, rtol=1e-12)
    assert tp.sup_rho_grad == pytest.approx(2.0, rel=1e-12)
    assert bernoulli_logcosh.sup_drho_method == "symbolic"
    assert tp.family == "bernoulli"


def test_prior_edge_cases():
    ising = derive_prior("ising", "log(cosh(f))")  # tanh o atanh: rho(mu) = mu
    assert str(ising.rho) == "mu" and ising.sup_drho == 1.0
    gp = derive_prior("poisson", None)  # Gaussian-process prior
    assert gp.rho == 0 and gp.sup_drho == 0.0
    assert derive_prior("bernoulli", "f**2/2").sup_drho == math.inf  # logit' unbounded
    with pytest.raises(SpecError, match="not convex"):
        derive_prior("bernoulli", "-f**2")
    with pytest.raises(ValueError, match="derived for family"):
        KGLMDEQ(torch_family("poisson"), 3, 2, prior=torch_prior(ising), dtype=torch.float64)
    with pytest.raises(TypeError, match="torch_prior"):  # SymPy is no torch code
        as_torch_prior(ising)
    custom = TorchPrior("lin", lambda z: 2 * z, lambda z: torch.full_like(z, 2.0), 2.0)
    assert as_torch_prior(custom) is custom and as_torch_prior(None) is None


# --------------------------------------------------------------------------- gradients


def _gradcheck_layer(layer, Y, fast_mode=False):
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for _, p in layer.named_parameters()]

    def fn(Yin, *ps):
        return torch.func.functional_call(layer, dict(zip(names, ps, strict=True)), (Yin,))

    return torch.autograd.gradcheck(fn, (Y.requires_grad_(True), *params), fast_mode=fast_mode)


def test_gradcheck_dense_layer(bernoulli_logcosh):
    """IFT backward vs finite differences, w.r.t. Y and every parameter (full Jacobian for a
    layer with a prior; the cheaper random-projection mode for a wider one without)."""
    g = torch.Generator().manual_seed(0)
    layer = KGLMDEQ(
        torch_family("bernoulli"),
        3,
        2,
        prior=torch_prior(bernoulli_logcosh),
        solver_options=TIGHT,
        on_nonconvergence="raise",
        generator=g,
        dtype=torch.float64,
    )
    with torch.no_grad():
        layer.b.normal_(generator=g)
        layer.c.normal_(generator=g)
    assert _gradcheck_layer(layer, torch.rand(2, 3, generator=g, dtype=torch.float64))
    plain = KGLMDEQ(
        torch_family("ising"), 6, 4, solver_options=TIGHT, generator=g, dtype=torch.float64
    )
    Y = torch.randn(3, 6, generator=g, dtype=torch.float64)
    assert _gradcheck_layer(plain, Y, fast_mode=True)


def test_gradcheck_conv_layer():
    g = torch.Generator().manual_seed(1)
    layer = ConvKGLMDEQ(
        torch_family("ising"), 1, 4, 4, 1, solver_options=TIGHT, generator=g, dtype=torch.float64
    )
    Y = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
    assert _gradcheck_layer(layer, Y, fast_mode=True)


# --------------------------------------------------------------------------- API


def test_facade_init_and_policies():
    _, K, Kc = random_kernel_problem(9, n=6, m=3)
    layer = deqfam.KGLMDEQ("bernoulli", 6, 3, solver_options=TIGHT, dtype=torch.float64)
    assert deqfam.kglm_init(layer, K, None, 2.0) is layer
    torch.testing.assert_close(layer.W1, -torch.from_numpy(K) / 2.0)
    torch.testing.assert_close(layer.W2, torch.from_numpy(K) / 2.0)
    assert layer.W3 is None and layer.b.abs().sum() == 0
    out = layer(torch.zeros(2, 6, dtype=torch.float64))
    assert out.shape == (2, 3) and layer.last_z.shape == (2, 6)
    with pytest.raises(ValueError, match="shape"):
        layer(torch.zeros(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="K must have shape"):
        kglm_init(layer, K[:5, :5], None, 1.0)
    stuck = KGLMDEQ(
        torch_family("bernoulli"),
        6,
        3,
        solver="fixed_point",
        solver_options={"max_iter": 1},
        on_nonconvergence="raise",
        dtype=torch.float64,
    )
    kglm_init(stuck, K, Kc, lam_for(K, 3.0))
    with pytest.raises(ConvergenceError):
        stuck(torch.ones(2, 6, dtype=torch.float64))
