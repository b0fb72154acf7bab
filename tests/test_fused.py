"""The generated fused DEQ layer (issue 14) against the torch path, on three families built
as ONE extension (one compile, cached in the user cache folder across runs)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from oracles.fused_problems import both_paths, max_relative, tilted_problem

from deqfam.api import builtin_module
from deqfam.runtime.fused import fused_equilibrium, fused_ops_many, fused_solve
from deqfam.runtime.models import ExpFamPCA

FAMILIES = ("gaussian", "bernoulli", "poisson")
LAM = 0.1


@pytest.fixture(scope="module")
def ops():
    """name -> the fused ops of that family (one build of the three)."""
    mods = [builtin_module(n) for n in FAMILIES]
    loaded = fused_ops_many(mods)
    assert all(o is not None for o in loaded)
    return dict(zip(FAMILIES, loaded, strict=True))


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("scale", [0.01, 0.7])
def test_float64_matches_torch_path(ops, name, scale):
    """z* to 1e-10 and the implicit gradients w.r.t. W, B, Y to 1e-9 relative."""
    fam = builtin_module(name).FAMILY
    W, B, Y = tilted_problem(fam, n=60, d=12, l=3, scale=scale, seed=1)
    (zf, sf, gf), (zt, st, gt) = both_paths(ops[name], fam, W, B, Y, LAM)
    assert bool(sf.converged.all()) and bool(st.converged.all())
    assert float((zf - zt).abs().max()) <= 1e-10
    assert torch.equal(sf.iterations, st.iterations)  # the same iterates, step for step
    for a, b in zip(gf, gt, strict=True):
        assert max_relative(a, b) <= 1e-9


@pytest.mark.parametrize("name", FAMILIES)
def test_float32_matches_torch_path(ops, name):
    fam = builtin_module(name).FAMILY
    W, B, Y = tilted_problem(fam, n=40, d=10, l=2, scale=0.3, seed=2, dtype=torch.float32)
    (zf, sf, gf), (zt, _, gt) = both_paths(ops[name], fam, W, B, Y, LAM)
    assert zf.dtype == torch.float32 and bool(sf.converged.all())
    assert float((zf - zt).abs().max()) <= 1e-4
    for a, b in zip(gf, gt, strict=True):
        assert max_relative(a, b) <= 1e-4


def test_warm_start_reaches_the_same_solution(ops):
    fam = builtin_module("poisson").FAMILY
    W, B, Y = tilted_problem(fam, n=30, d=8, l=2, scale=0.5, seed=3)
    z_cold, s_cold = fused_equilibrium(ops["poisson"], fam, W, B, Y, LAM)
    z0 = z_cold + 0.01
    z_warm, s_warm = fused_equilibrium(ops["poisson"], fam, W, B, Y, LAM, z0=z0)
    assert float((z_warm - z_cold).abs().max()) <= 1e-10
    assert int(s_warm.iterations.sum()) < int(s_cold.iterations.sum())


@pytest.mark.parametrize("name", ["gaussian", "poisson"])
def test_gradcheck_float64(ops, name):
    """Finite differences of the whole solve agree with the op's implicit backward."""
    fam = builtin_module(name).FAMILY
    W, B, Y = tilted_problem(fam, n=4, d=5, l=2, scale=0.5, seed=4)
    op = ops[name]

    def solve(W, B, Y):
        return fused_equilibrium(op, fam, W, B, Y, LAM, {"tol": 1e-13})[0]

    inputs = [t.clone().requires_grad_(True) for t in (W, B, Y)]
    assert torch.autograd.gradcheck(solve, inputs, atol=1e-7)


def test_opcheck(ops):
    fam = builtin_module("bernoulli").FAMILY
    W, B, Y = tilted_problem(fam, n=6, d=5, l=2, scale=0.5, seed=5)
    op = ops["bernoulli"]
    args = (Y, W.requires_grad_(True), B.requires_grad_(True), None, LAM, 1e-10, 1e-14, 100)
    args = (*args, 1e-4, 0.5, 3, 1e-20)
    result = torch.library.opcheck(op.solve, args)
    assert all(v == "SUCCESS" for v in result.values()), result
    z = op.solve(*args)[0].detach()
    W, B = W.detach(), B.detach()  # the backward op itself is not differentiable
    grad_objective = torch.linspace(-1.0, 1.0, z.shape[0], dtype=z.dtype)
    back_args = (torch.ones_like(z), grad_objective, z, Y, W, B, LAM)
    back = torch.library.opcheck(op.solve_backward, back_args)
    assert all(v == "SUCCESS" for v in back.values()), back


@pytest.mark.parametrize("name", ["gaussian", "bernoulli"])
def test_gradcheck_of_the_objective_output(ops, name):
    """The outer objective at z* (the op's last output) and its total derivative (implicit
    term included) against finite differences of the whole solve, float64."""
    fam = builtin_module(name).FAMILY
    W, B, Y = tilted_problem(fam, n=4, d=5, l=2, scale=0.5, seed=9)
    op = ops[name]

    def objective(W, B, Y):
        return fused_solve(op, fam, W, B, Y, LAM, {"tol": 1e-13})[2]

    inputs = [t.clone().requires_grad_(True) for t in (W, B, Y)]
    assert torch.autograd.gradcheck(objective, inputs, atol=1e-7)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("scale", [0.01, 0.7])
def test_model_loss_matches_torch_path(ops, name, scale):
    """ExpFamPCA.loss with the fused backend (its per-sample term from the op) equals the torch
    backend's autograd loss: value to 1e-12 and gradients w.r.t. W and B to 1e-9 relative."""
    fam = builtin_module(name).FAMILY
    W, B, Y = tilted_problem(fam, n=50, d=12, l=2, scale=scale, seed=10)
    results = []
    for backend in ("fused", "torch"):
        model = ExpFamPCA(fam, 12, 2, lam=LAM, backend=backend, dtype=torch.float64)
        with torch.no_grad():
            model.W.copy_(W)
            model.B.copy_(B)
        loss = model.loss(Y)
        loss.backward()
        results.append((float(loss.detach()), model.W.grad, model.B.grad))
    (lf, gwf, gbf), (lt, gwt, gbt) = results
    assert abs(lf - lt) <= 1e-12 * max(1.0, abs(lt))
    assert max_relative(gwf, gwt) <= 1e-9 and max_relative(gbf, gbt) <= 1e-9


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("scale", [0.01, math.sqrt(0.5)])
def test_every_sample_converges(ops, name, scale):
    """d = 50, l = 2, N = 500, lam = 0.1, data drawn from the model at these W scales."""
    fam = builtin_module(name).FAMILY
    g = torch.Generator().manual_seed(6)
    W = torch.randn(50, 2, generator=g, dtype=torch.float64) * scale
    B = torch.zeros(50, dtype=torch.float64)
    eta = torch.randn(500, 2, generator=g, dtype=torch.float64) @ W.T + B
    mean = fam.activation(eta)
    Y = {
        "gaussian": lambda: mean + torch.randn(mean.shape, generator=g, dtype=torch.float64),
        "bernoulli": lambda: torch.bernoulli(mean, generator=g),
        "poisson": lambda: torch.poisson(mean, generator=g),
    }[name]()
    with torch.no_grad():
        z, stats = fused_equilibrium(ops[name], fam, W, B, Y, LAM)
    assert bool(stats.converged.all()) and bool(torch.isfinite(z).all())
    assert bool((stats.residual <= stats.threshold).all())


def test_expfampca_backend_dispatch(ops):
    """backend="fused" gives the torch backend's latents and gradients; unsupported settings
    run the torch path (quietly under "auto", with one warning under "fused")."""
    fam = builtin_module("poisson").FAMILY
    _, _, Y = tilted_problem(fam, n=20, d=6, l=2, scale=0.3, seed=8)
    models = {}
    for backend in ("fused", "torch"):
        m = ExpFamPCA(fam, 6, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        m.backend = backend
        models[backend] = m
        m(Y).square().sum().backward()
    with torch.no_grad():
        zf, zt = models["fused"](Y), models["torch"](Y)
    assert models["fused"].last_stats.solver == "newton (fused)"
    assert float((zf - zt).abs().max()) <= 1e-10
    assert max_relative(models["fused"].W.grad, models["torch"].W.grad) <= 1e-9
    wide = ExpFamPCA(fam, 6, 65, backend="auto", dtype=torch.float64)
    wide(Y)
    assert wide.last_stats.solver == "newton"
    other = ExpFamPCA(fam, 6, 2, backend="fused", solver="anderson", dtype=torch.float64)
    with pytest.warns(UserWarning, match="fused solver does not apply"):
        other(Y)
    with pytest.raises(ValueError, match="backend"):
        ExpFamPCA(fam, 6, 2, backend="fast")


def test_fit_cli_backend(ops, tmp_path):
    """`deqfam fit --backend fused` (Adam through the layer, 2 epochs) writes the latents of
    `--backend torch` to 1e-8; a misspelt backend is bad input (exit 2)."""
    import numpy as np

    from deqfam.cli import main

    rng = np.random.default_rng(0)
    data = tmp_path / "counts.npy"
    np.save(data, rng.poisson(2.0, size=(30, 6)).astype(float))
    argv = ["fit", str(data), "--family", "poisson", "--latent-dim", "2", "--quiet"]
    argv += ["--optimizer", "adam", "--epochs", "2", "--batch-size", "10", "--threads", "1"]
    latents = {}
    for backend in ("fused", "torch"):
        out = tmp_path / backend
        assert main([*argv, "--out", str(out), "--backend", backend]) == 0
        latents[backend] = np.load(out / "latents.npy")
    np.testing.assert_allclose(latents["fused"], latents["torch"], rtol=0, atol=1e-8)
    assert main([*argv, "--out", str(tmp_path / "x"), "--backend", "fast"]) == 2


@pytest.mark.parametrize("name", ["bernoulli", "poisson"])
def test_second_order_fit_with_the_fused_latent_step(ops, name):
    """The second-order fit (``fit_newton``) with the fused latent step takes the torch
    path's iterates: same outer iterations, objective to 1e-10 relative, latents to 1e-8
    (the two solves agree to rounding per step; 1e-8 leaves room for its growth over the
    outer iterations, where each step's error feeds the next loadings step)."""
    from deqfam.runtime.fitting import NewtonFitConfig, fit_newton

    fam = builtin_module(name).FAMILY
    _, _, Y = tilted_problem(fam, n=60, d=8, l=2, scale=0.5, seed=3)
    cfg = NewtonFitConfig(max_iter=40, progress=False)
    fits = {}
    for backend in ("fused", "torch"):
        m = ExpFamPCA(fam, 8, 2, weight_decay=2.0, dtype=torch.float64, backend=backend)
        hist = fit_newton(m, Y, cfg)
        with torch.no_grad():
            fits[backend] = (hist, m(Y), float(m.loss(Y)))
        if backend == "fused":
            assert m.last_stats.solver == "newton (fused)"
    (hf, zf, lf), (ht, zt, lt) = fits["fused"], fits["torch"]
    assert hf.stop_reason == ht.stop_reason == "converged"
    assert hf.iterations == ht.iterations
    assert abs(lf - lt) <= 1e-10 * abs(lt)
    assert float((zf - zt).abs().max()) <= 1e-8


@pytest.mark.parametrize("name", ["bernoulli", "poisson", "gaussian"])
def test_fused_loadings_step_matches_the_torch_column_solve(ops, name):
    """One fused loadings step (the column GLMs through the fused op, ``fused_steps``) equals
    ``loadings_step`` (``newton_solve`` over ``ColumnGLMProblem``) to 1e-10, its gradient norm
    equals ``loadings_gradient``'s, and the remembered objective equals ``joint_objective``
    (both to 1e-12 relative: one pass each, summed in another order)."""
    from deqfam.runtime.fitting.fused_steps import FusedSteps
    from deqfam.runtime.fitting.loadings import loadings_step
    from deqfam.runtime.fitting.objective import (
        gradient_norm,
        joint_objective,
        loadings_gradient,
    )
    from deqfam.runtime.solvers import SolverConfig

    fam = builtin_module(name).FAMILY
    W, B, Y = tilted_problem(fam, n=80, d=7, l=2, scale=0.4, seed=5)
    m = ExpFamPCA(fam, 7, 2, weight_decay=3.0, dtype=torch.float64, backend="fused")
    with torch.no_grad():
        m.W.copy_(W)
        m.B.copy_(B)
    T = fam.sufficient_statistic(Y)
    Z = torch.randn(80, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    W0, B0 = 0.8 * W, B + 0.1  # a start away from the column optima
    cfg = SolverConfig(max_iter=3)
    steps = FusedSteps(m, ops[name], Y, cfg)
    assert steps.fused_loadings
    W1, B1, stalled = steps.loadings(Z, W0, B0)
    W2, B2, _ = loadings_step(fam, Z, T, W0, B0, 3.0, cfg)
    assert not stalled
    assert max_relative(W1, W2) <= 1e-10 and max_relative(B1, B2) <= 1e-10
    ref_f = joint_objective(fam, T, Z, W1, B1, m.lam, 3.0)
    assert abs(steps.memo.get(Z, W1, B1) - ref_f) <= 1e-12 * abs(ref_f)
    ref_g = gradient_norm(*loadings_gradient(fam, T, Z, W0, B0, 3.0))
    assert abs(steps.gradient_norm(Z, W0, B0) - ref_g) <= 1e-12 * ref_g


def test_auto_backend_policy_of_fit(ops, tmp_path, monkeypatch):
    """``fit_backend``: under "auto" a fit builds the fused solver only for data of at least
    ``AUTO_BUILD_MIN_ENTRIES`` entries, and uses one already loaded at any size; "torch" and
    "fused" are kept; anything else is refused. ``fit`` records the outcome."""
    from deqfam.fitting import fit
    from deqfam.runtime.fused import AUTO_BUILD_MIN_ENTRIES, fit_backend
    from deqfam.runtime.fused_build import fused_built

    monkeypatch.setenv("DEQFAM_CACHE", str(tmp_path / "empty_cache"))
    binomial = builtin_module("binomial").FAMILY  # never built in this test run
    assert not fused_built(binomial)
    assert not (tmp_path / "empty_cache").exists()  # the lookup leaves no trace
    assert fit_backend(binomial, "auto", AUTO_BUILD_MIN_ENTRIES - 1) == "torch"
    assert fit_backend(binomial, "auto", AUTO_BUILD_MIN_ENTRIES) == "auto"
    assert fit_backend(binomial, "fused", 10) == "fused"
    assert fit_backend(binomial, "torch", 10**9) == "torch"
    with pytest.raises(ValueError, match="backend"):
        fit_backend(binomial, "fast", 10)
    poisson = builtin_module("poisson")
    assert fused_built(poisson.FAMILY)  # loaded in this process by the ops fixture
    assert fit_backend(poisson.FAMILY, "auto", 10) == "auto"
    _, _, Y = tilted_problem(poisson.FAMILY, n=30, d=5, l=2, scale=0.3, seed=2)
    res = fit(Y, poisson, 2, progress=False, out_dir=tmp_path / "fit")
    assert res.backend == {"requested": "auto", "solver": "newton (fused)"}
    record = json.loads((tmp_path / "fit" / "history.json").read_text(encoding="utf-8"))
    assert record["backend"] == res.backend
    binom = builtin_module("binomial")
    _, _, Yb = tilted_problem(binom.FAMILY, n=30, d=5, l=2, scale=0.3, seed=2)
    assert fit(Yb, binom, 2, progress=False).backend == {"requested": "auto", "solver": "newton"}
