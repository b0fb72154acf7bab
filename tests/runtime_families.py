"""Hand-written exponential families (plain torch) used as fixtures by the runtime tests.

They are written independently of the code generator so runtime tests do not depend on it.
Each ``sample_*`` draws ``y ~ p(y | eta)`` with numpy, for building synthetic data.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from deqfam.runtime.family import TorchFamily

BINOMIAL_N = 5
NEGBIN_R = 3.0


def _identity(y: Tensor) -> Tensor:
    return y


def _negbin_log_partition(eta: Tensor) -> Tensor:
    """``-r log(1 - e^eta)`` using log1p(-e^eta) for eta < -log 2 and log(-expm1(eta)) near 0
    (Maechler's accurate log(1 - e^x))."""
    log1mexp = torch.where(
        eta < -math.log(2.0), torch.log1p(-torch.exp(eta)), torch.log(-torch.expm1(eta))
    )
    return -NEGBIN_R * log1mexp


gaussian = TorchFamily(
    name="gaussian",
    domain=(-math.inf, math.inf),
    log_partition=lambda eta: 0.5 * eta * eta,
    activation=lambda eta: eta,
    activation_grad=torch.ones_like,
    sufficient_statistic=_identity,
    support="real",
    sup_activation_grad=1.0,
)

bernoulli = TorchFamily(
    name="bernoulli",
    domain=(-math.inf, math.inf),
    log_partition=torch.nn.functional.softplus,
    activation=torch.sigmoid,
    activation_grad=lambda eta: torch.sigmoid(eta) * torch.sigmoid(-eta),
    sufficient_statistic=_identity,
    support="binary",
    sup_activation_grad=0.25,
)

poisson = TorchFamily(
    name="poisson",
    domain=(-math.inf, math.inf),
    log_partition=torch.exp,
    activation=torch.exp,
    activation_grad=torch.exp,
    sufficient_statistic=_identity,
    support="nonnegative_integers",
    sup_activation_grad=math.inf,
)

binomial = TorchFamily(
    name="binomial5",
    domain=(-math.inf, math.inf),
    log_partition=lambda eta: BINOMIAL_N * torch.nn.functional.softplus(eta),
    activation=lambda eta: BINOMIAL_N * torch.sigmoid(eta),
    activation_grad=lambda eta: BINOMIAL_N * torch.sigmoid(eta) * torch.sigmoid(-eta),
    sufficient_statistic=_identity,
    support="nonnegative_integers",
    sup_activation_grad=BINOMIAL_N / 4.0,
)

negative_binomial = TorchFamily(
    name="negative_binomial3",
    domain=(-math.inf, 0.0),
    log_partition=_negbin_log_partition,
    # r e^eta / (1 - e^eta) and r e^eta / (1 - e^eta)^2 via expm1: exact near eta -> 0-.
    activation=lambda eta: NEGBIN_R * torch.exp(eta) / (-torch.expm1(eta)),
    activation_grad=lambda eta: NEGBIN_R * torch.exp(eta) / torch.expm1(eta) ** 2,
    sufficient_statistic=_identity,
    support="nonnegative_integers",
    sup_activation_grad=math.inf,
)

FAMILIES = {
    "gaussian": gaussian,
    "bernoulli": bernoulli,
    "poisson": poisson,
    "binomial": binomial,
    "negative_binomial": negative_binomial,
}


def sample(name: str, eta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw ``y ~ p(y | eta)`` elementwise for the fixture family ``name``."""
    if name == "gaussian":
        return eta + rng.standard_normal(eta.shape)
    if name == "bernoulli":
        return (rng.random(eta.shape) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    if name == "poisson":
        return rng.poisson(np.exp(eta)).astype(float)
    if name == "binomial":
        return rng.binomial(BINOMIAL_N, 1.0 / (1.0 + np.exp(-eta))).astype(float)
    if name == "negative_binomial":
        # numpy counts failures before r successes with success probability p: mean
        # r (1 - p)/p, which equals A'(eta) = r e^eta/(1 - e^eta) for p = 1 - e^eta.
        return rng.negative_binomial(NEGBIN_R, 1.0 - np.exp(eta)).astype(float)
    raise KeyError(name)


def problem(
    name: str, n: int = 20, d: int = 50, l: int = 2, w_scale: float = math.sqrt(0.5), seed: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """Synthetic ``(W, B, Y)`` in float64 for family ``name`` following Appendix C: ``W_ij ~
    N(0, w_scale^2)``, latents in ``[-2, 2]^l``, ``Y ~ family(W z + B)``. For the negative
    binomial ``B = -1 - sum_j |W_ij|`` so ``eta < 0`` for ``|z|_inf <= 1`` (and at the start).
    """
    rng = np.random.default_rng(seed)
    W = rng.normal(0.0, w_scale, size=(d, l))
    B = np.zeros(d)
    z = rng.uniform(-2.0, 2.0, size=(n, l))
    if name == "negative_binomial":
        B = -1.0 - np.abs(W).sum(1)
        z = rng.uniform(-1.0, 1.0, size=(n, l))
    eta = z @ W.T + B
    Y = sample(name, eta, rng)
    as_t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    return as_t(W), as_t(B), as_t(Y)


# Independent numpy versions of (A, sigma) for the reference computations in the tests.
NUMPY_LOG_PARTITION = {
    "gaussian": (lambda e: 0.5 * e * e, lambda e: e),
    "bernoulli": (lambda e: np.logaddexp(0.0, e), lambda e: 1.0 / (1.0 + np.exp(-e))),
    "poisson": (np.exp, np.exp),
    "binomial": (
        lambda e: BINOMIAL_N * np.logaddexp(0.0, e),
        lambda e: BINOMIAL_N / (1.0 + np.exp(-e)),
    ),
    "negative_binomial": (
        lambda e: -NEGBIN_R * np.log(-np.expm1(e)),
        lambda e: NEGBIN_R * np.exp(e) / (-np.expm1(e)),
    ),
}


def scipy_map_latents(name: str, W: Tensor, B: Tensor, Y: Tensor, lam: float) -> np.ndarray:
    """Per-sample minimiser of ``J(z) = lam/2|z|^2 - z^T W^T y + 1^T A(Wz + B)`` by scipy.

    BFGS (gradient supplied) from 0 finds the minimum; since BFGS's line search on ``J`` cannot
    resolve ``z`` beyond about ``sqrt(eps)`` relative, MINPACK's hybrid Powell root finder on
    ``grad J = 0`` (finite-difference Jacobian) then polishes it to rounding level.
    """
    import scipy.optimize as so

    a, s = NUMPY_LOG_PARTITION[name]
    Wn, Bn, Yn = (t.detach().numpy() for t in (W, B, Y))

    def objective(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        e = Wn @ z + Bn
        if name == "negative_binomial" and np.any(e >= 0):
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
