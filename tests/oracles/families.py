"""The families under test, from the generated contract, and independent references.

Every built-in (``derive.family.builtin_names()``) and every spec in ``examples/`` is a family
under test, always through its generated module's ``FAMILY`` (the committed module for a
built-in, a module generated into a temporary folder for an example). The references are
independent of the generated torch code: ``A`` and ``A'`` come from the derived SymPy
expressions lambdified to numpy/scipy (``derive.family.Family.numpy_function``), and the MAP
latents from scipy's BFGS polished by MINPACK's hybrid root finder.
"""

from __future__ import annotations

import atexit
import functools
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from deqfam.api import builtin_module, generate
from deqfam.derive.family import builtin_names, load_family
from deqfam.runtime.family import TorchFamily
from deqfam.runtime.sampling import sample

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {p.stem: p for p in sorted((ROOT / "examples").glob("*.yaml"))}
#: every family under test: the built-ins, then the examples
ALL_NAMES = tuple(builtin_names()) + tuple(EXAMPLES)
#: the subset that runs in the default (fast) suite; the others are marked slow
FAST = ("gaussian", "bernoulli", "poisson")

_OUT = tempfile.TemporaryDirectory(prefix="deqfam-oracles-")
atexit.register(_OUT.cleanup)


def family_params(names=ALL_NAMES) -> list:
    """``names`` as pytest params, all but :data:`FAST` marked slow."""
    return [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in names]


def _spec(name: str):
    return EXAMPLES.get(name, name)


@functools.cache
def contract(name: str) -> TorchFamily:
    """The generated ``FAMILY`` of a built-in (committed module) or an example spec."""
    if name in EXAMPLES:
        return generate(EXAMPLES[name], Path(_OUT.name) / name, check_admissibility=False).FAMILY
    return builtin_module(name).FAMILY


class _Families(dict):
    """``FAMILIES[name]``: the generated contract of any family under test (loaded lazily)."""

    def __missing__(self, name: str) -> TorchFamily:
        if name not in ALL_NAMES:
            raise KeyError(name)
        self[name] = contract(name)
        return self[name]

    def __iter__(self):
        return iter(ALL_NAMES)

    def __len__(self) -> int:
        return len(ALL_NAMES)


FAMILIES = _Families()


@functools.cache
def numpy_reference(name: str):
    """``(A, A')`` as float64 numpy functions from the derived SymPy expressions."""
    fam = load_family(_spec(name))
    a, s = fam.numpy_function("log_partition"), fam.numpy_function("activation")
    return (lambda e: np.asarray(a(e), float) * np.ones_like(e)), (
        lambda e: np.asarray(s(e), float) * np.ones_like(e)
    )


def problem(
    name: str, n: int = 20, d: int = 50, l: int = 2, w_scale: float = math.sqrt(0.5), seed: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """Synthetic ``(W, B, Y)`` in float64 following Appendix C: ``W_ij ~ N(0, w_scale^2)``,
    latents in ``[-2, 2]^l``, ``Y ~ family(W z + B)``. When the domain is ``eta < hi``,
    ``B = hi - 1 - sum_j |W_ij|`` and latents in ``[-1, 1]^l`` keep ``eta < hi - 1``. A family
    without a sampler (no base measure) gets Poisson counts with mean ``A'(eta)``: any data
    define a strongly convex inner problem."""
    fam = FAMILIES[name]
    rng = np.random.default_rng(seed)
    W = rng.normal(0.0, w_scale, size=(d, l))
    B = np.zeros(d)
    z = rng.uniform(-2.0, 2.0, size=(n, l))
    hi = fam.domain[1]
    if math.isfinite(hi):
        B = hi - 1.0 - np.abs(W).sum(1)
        z = rng.uniform(-1.0, 1.0, size=(n, l))
    eta = torch.tensor(z @ W.T + B, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    if fam.exact_sampler is None and not fam.has_base_measure:
        Y = torch.poisson(fam.activation(eta), generator=gen)
    else:
        Y = sample(fam, eta, gen)
    as_t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    return as_t(W), as_t(B), Y


def scipy_map_latents(name: str, W: Tensor, B: Tensor, Y: Tensor, lam: float) -> np.ndarray:
    """Per-sample minimiser of ``J(z) = lam/2|z|^2 - z^T W^T y + 1^T A(Wz + B)`` by scipy.

    BFGS (gradient supplied) from 0 finds the minimum; since BFGS's line search on ``J`` cannot
    resolve ``z`` beyond about ``sqrt(eps)`` relative, MINPACK's hybrid Powell root finder on
    ``grad J = 0`` (finite-difference Jacobian) then polishes it to rounding level. ``Y`` is
    taken as ``T(Y)`` (every family under test has ``T(y) = y``).
    """
    import scipy.optimize as so

    a, s = numpy_reference(name)
    lo, hi = FAMILIES[name].domain
    Wn, Bn, Yn = (t.detach().numpy() for t in (W, B, Y))

    def objective(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        e = Wn @ z + Bn
        if np.any(e >= hi) or np.any(e <= lo):
            return np.inf, np.full(z.shape, np.nan)
        return 0.5 * lam * z @ z - z @ (Wn.T @ y) + a(e).sum(), lam * z - Wn.T @ (y - s(e))

    out = np.empty((Yn.shape[0], Wn.shape[1]))
    for i, y in enumerate(Yn):
        res = so.minimize(
            objective,
            np.zeros(Wn.shape[1]),
            args=(y,),
            jac=True,
            method="BFGS",
            options={"gtol": 1e-11, "maxiter": 10_000},
        )
        polished = so.root(lambda z, y=y: objective(z, y)[1], res.x, method="hybr", tol=1e-15)
        assert np.linalg.norm(polished.fun) < 1e-9, (name, i, polished.fun)
        out[i] = polished.x
    return out
