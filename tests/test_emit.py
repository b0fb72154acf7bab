"""One emitter (derive/emit.py): deep-stack roles, kGLM priors and the pcDEQ activations are
printed into generated modules, loaded by the one importer, and agree with their SymPy
expressions evaluated independently (SymPy ``evalf`` to 30 digits of exact inputs, no torch
printer)."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch

from deqfam.api import emitted_module, torch_prior
from deqfam.derive.activations import reference_forms
from deqfam.derive.concavity import ETA, NAMED_ACTIVATIONS
from deqfam.derive.deep import X, derive_layer
from deqfam.derive.emit import (
    PCDEQ_ACTIVATIONS_FILE,
    render_deep_roles,
    render_pcdeq_activations,
    render_prior,
)
from deqfam.derive.family import Family
from deqfam.derive.prior import derive_prior
from deqfam.generated import pcdeq_activations

ROOT = Path(__file__).resolve().parents[1]


def _evalf(expr: sp.Expr, values: dict[sp.Symbol, float]) -> float:
    """``expr`` at ``values`` (taken as exact rationals, so SymPy's adaptive evalf reaches 30
    correct digits even through cancellation such as 1 - tanh(60)^2), stable primitives
    unfolded to their definitions."""
    from deqfam.derive.primitives import StablePrimitive, to_definition

    plain = to_definition(expr) if expr.has(StablePrimitive) else expr
    subs = {s: sp.Rational(v) for s, v in values.items()}
    return float(sp.N(plain.xreplace(subs), 30))


def _close(got: float, want: float, rtol: float, atol: float = 1e-300) -> bool:
    return abs(got - want) <= atol + rtol * abs(want)


def _project_imports(text: str) -> set[str]:
    """Every module a generated file imports from the project (``deqfam...``)."""
    names = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {n for n in names if n.split(".")[0] == "deqfam"}


def _imports_only_runtime(text: str) -> bool:
    return all(n.startswith("deqfam.runtime") for n in _project_imports(text))


# --------------------------------------------------------------------------- pcDEQ activations

#: Points away from the kinks of relu/relu6 (0 and 6), out into the tails where a naive
#: form cancels (1 - tanh^2) or overflows (e^-eta for the logistic).
_ACTIVATION_GRID = [-60.3, -25.7, -8.1, -2.9, -1.3, -0.41, 0.013, 0.77, 2.2, 5.3, 6.9, 17.5, 41.9]


@pytest.mark.parametrize("name", sorted(NAMED_ACTIVATIONS))
def test_pcdeq_activations_match_sympy(name):
    """sigma, sigma', sigma'' of generated/pcdeq_activations.py against plain SymPy
    differentiation of derive/concavity.py's expression, evaluated at 30 digits: a few ulp."""
    t = torch.tensor(_ACTIVATION_GRID, dtype=torch.float64)
    fns = pcdeq_activations.ACTIVATIONS[name]
    for k, (fn, expr) in enumerate(zip(fns, reference_forms(name), strict=True)):
        got = fn(t).tolist()
        for tk, g in zip(_ACTIVATION_GRID, got, strict=True):
            want = _evalf(expr, {ETA: tk})
            assert _close(g, want, rtol=1e-14), (name, k, tk, g, want)


def test_pcdeq_activations_kink_convention():
    """At the kinks the derivative is 0 (the pcDEQ convention), and sigma is continuous."""
    acts = pcdeq_activations.ACTIVATIONS
    kinks = torch.tensor([0.0, 6.0], dtype=torch.float64)
    assert acts["relu6"][1](kinks).tolist() == [0.0, 0.0]
    assert acts["relu"][1](kinks[:1]).tolist() == [0.0]
    assert acts["relu6"][0](kinks).tolist() == [0.0, 6.0]


def test_pcdeq_activations_regenerate_byte_identical():
    """The committed module is exactly what the emitter prints, and imports only runtime."""
    text = render_pcdeq_activations()
    committed = (ROOT / "generated" / PCDEQ_ACTIVATIONS_FILE).read_text(encoding="utf-8")
    assert text == committed, "generated/pcdeq_activations.py is stale: run `make generated`"
    assert _project_imports(text) == {"deqfam.runtime"}


# --------------------------------------------------------------------------- deep-stack roles


@pytest.mark.parametrize(
    ("family", "masked", "latent"),
    [("poisson", False, False), ("bernoulli", True, False), ("gaussian", False, True)],
)
def test_deep_roles_match_sympy(family, masked, latent):
    """Every role function of the generated layer module equals its SymPy expression at
    random points (30-digit evalf); two renderings are byte-identical."""
    layer = derive_layer(family, masked=masked, latent_observed=latent)
    text = render_deep_roles(layer)
    assert render_deep_roles(layer) == text
    assert _imports_only_runtime(text)
    module = emitted_module(text, f"test_deep_{family}")
    assert module.ROLES == layer.roles and module.MASKED == masked
    rng = np.random.default_rng(7)
    xs = rng.integers(0, 5, 6).astype(float) if family == "poisson" else rng.normal(size=6)
    if family == "bernoulli":
        xs = rng.integers(0, 2, 6).astype(float)
    etas = rng.normal(scale=2.0, size=6)
    x, eta = torch.tensor(xs), torch.tensor(etas)
    for role in layer.roles:
        fn = getattr(module, role)
        if role == "activation":
            got = fn(eta)
        elif role in ("statistic", "log_base"):
            got = fn(x)
        else:
            got = fn(x, eta)
        expr = layer.expressions[role]
        for g, xv, ev in zip(got.tolist(), xs, etas, strict=True):
            want = _evalf(expr, {X: float(xv), ETA: float(ev)})
            assert _close(g, want, rtol=1e-13, atol=1e-15), (role, xv, ev, g, want)


# --------------------------------------------------------------------------- kGLM priors


@pytest.fixture(scope="module")
def bernoulli_logcosh():
    """Bernoulli with Q = c log cosh f, c = 1/2 (derived once: SymPy takes seconds)."""
    return derive_prior("bernoulli", "c*log(cosh(f))", parameters={"c": 0.5})


def test_prior_module_matches_sympy_and_closed_form(bernoulli_logcosh):
    """rho, rho' of the generated prior module against SymPy (30-digit evalf) and the closed
    form c (2mu - 1)/(mu^2 + (1 - mu)^2) (Bernoulli, Q = c log cosh f, c = 1/2)."""
    prior = bernoulli_logcosh
    text = render_prior(prior)
    assert render_prior(prior) == text
    assert _imports_only_runtime(text)
    tp = torch_prior(prior)
    mus = [1e-6, 0.013, 0.2, 0.5, 0.77, 0.999, 1 - 1e-9]
    z = torch.tensor(mus, dtype=torch.float64)
    for fn, expr in ((tp.rho, prior.rho), (tp.rho_grad, prior.drho)):
        for g, m in zip(fn(z).tolist(), mus, strict=True):
            assert _close(g, _evalf(expr, {Family.mu: m}), rtol=1e-13, atol=1e-15), (expr, m)
    closed = [0.5 * (2 * m - 1) / (m**2 + (1 - m) ** 2) for m in mus]
    np.testing.assert_allclose(tp.rho(z).numpy(), closed, rtol=1e-13, atol=1e-15)
    assert tp.family == "bernoulli" and tp.sup_rho_grad == pytest.approx(2.0, rel=1e-12)


def test_prior_text_is_escaped_into_the_module():
    """A label with quotes, backslashes, newlines and a docstring terminator reaches the module
    as data: it imports, and NAME is exactly the label."""
    label = 'evil"""\nimport os\\ \u2028 end'
    prior = derive_prior("ising", "log(cosh(f))", name=label)
    tp = torch_prior(prior)
    assert tp.name == label
    z = torch.linspace(-0.9, 0.9, 7, dtype=torch.float64)
    torch.testing.assert_close(tp.rho(z), z, rtol=0, atol=1e-15)  # tanh o atanh = identity


def test_kglm_facade_accepts_a_derived_prior(bernoulli_logcosh):
    """``deqfam.KGLMDEQ(..., prior=derive_prior(...))`` generates the prior module itself."""
    import deqfam

    layer = deqfam.KGLMDEQ("bernoulli", 3, 2, prior=bernoulli_logcosh, dtype=torch.float64)
    mu = torch.tensor([0.25], dtype=torch.float64)
    assert math.isclose(float(layer.prior.rho(mu)), 0.5 * (-0.5) / (0.0625 + 0.5625), rel_tol=1e-13)


def test_committed_generated_modules_import_only_runtime():
    """DESIGN.md: generated modules import ``deqfam.runtime`` and nothing else of the project."""
    offenders = {
        p.name: sorted(_project_imports(p.read_text(encoding="utf-8")))
        for p in sorted((ROOT / "generated").glob("*.py"))
        if not _imports_only_runtime(p.read_text(encoding="utf-8"))
    }
    assert offenders == {}
