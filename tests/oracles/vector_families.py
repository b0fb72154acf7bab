"""Hand-built vector families for the runtime tests (closed-form torch expressions).

These stand in for the generated modules of the built-in vector specs: ``A`` is the shared
design's log-partition, and the mean ``grad A`` and covariance ``Hess A`` are written in
closed form here (``tests/test_vector_families.py`` checks them against autograd of ``A``
and against torch.distributions moments).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from deqfam.runtime.family import ExactSampler, TorchFamily
from deqfam.runtime.vector_family import VectorTorchFamily


def _stack2(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """The symmetric ``2 x 2`` matrices ``[[a, b], [b, c]]``, shape ``(..., 2, 2)``."""
    return torch.stack([torch.stack([a, b], -1), torch.stack([b, c], -1)], -2)


# ------------------------------------------------------------------ normal, unknown variance
def _normal_parts(eta: Tensor) -> tuple[Tensor, Tensor]:
    """``m = -eta1/(2 eta2)``, ``v = -1/(2 eta2)``."""
    e1, e2 = eta[..., 0], eta[..., 1]
    return -e1 / (2 * e2), -1 / (2 * e2)


def _normal_A(eta: Tensor) -> Tensor:
    e1, e2 = eta[..., 0], eta[..., 1]
    return -(e1**2) / (4 * e2) - 0.5 * torch.log(-2 * e2)


def _normal_mean(eta: Tensor) -> Tensor:
    m, v = _normal_parts(eta)
    return torch.stack([m, v + m * m], -1)


def _normal_cov(eta: Tensor) -> Tensor:
    """Var y = v, Cov(y, y^2) = 2 m v, Var y^2 = 4 m^2 v + 2 v^2."""
    m, v = _normal_parts(eta)
    return _stack2(v, 2 * m * v, 4 * m * m * v + 2 * v * v)


def _normal_inverse(mu: Tensor) -> Tensor:
    v = mu[..., 1] - mu[..., 0] ** 2
    return torch.stack([mu[..., 0] / v, -1 / (2 * v)], -1)


NORMAL = VectorTorchFamily(
    name="normal_unknown_variance",
    natural_parameters=("eta1", "eta2"),
    domain=((-math.inf, math.inf), (-math.inf, 0.0)),
    log_partition=_normal_A,
    mean=_normal_mean,
    covariance=_normal_cov,
    sufficient_statistic=lambda y: torch.stack([y, y * y], -1),
    support="real",
    log_base_measure=lambda y: torch.full_like(y, -0.5 * math.log(2 * math.pi)),
    inverse_mean=_normal_inverse,
    exact_sampler=ExactSampler("normal"),
)


# ------------------------------------------------------------------ gamma with shape
def _gamma_A(eta: Tensor) -> Tensor:
    a, b = eta[..., 0] + 1, -eta[..., 1]
    return torch.lgamma(a) - a * torch.log(b)


def _gamma_mean(eta: Tensor) -> Tensor:
    """E log y = psi(a) - log b, E y = a / b (shape a = eta1 + 1, rate b = -eta2)."""
    a, b = eta[..., 0] + 1, -eta[..., 1]
    return torch.stack([torch.digamma(a) - torch.log(b), a / b], -1)


def _gamma_cov(eta: Tensor) -> Tensor:
    """Var log y = psi'(a), Cov(log y, y) = 1/b, Var y = a/b^2."""
    a, b = eta[..., 0] + 1, -eta[..., 1]
    return _stack2(torch.polygamma(1, a), 1 / b, a / (b * b))


GAMMA_SHAPE = VectorTorchFamily(
    name="gamma_shape",
    natural_parameters=("eta1", "eta2"),
    domain=((-1.0, math.inf), (-math.inf, 0.0)),
    log_partition=_gamma_A,
    mean=_gamma_mean,
    covariance=_gamma_cov,
    sufficient_statistic=lambda y: torch.stack([torch.log(y), y], -1),
    support="positive_real",
    log_base_measure=torch.zeros_like,
    exact_sampler=ExactSampler("gamma_shape"),
)


# ------------------------------------------------------------------ beta
def _beta_A(eta: Tensor) -> Tensor:
    a, b = eta[..., 0] + 1, eta[..., 1] + 1
    return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)


def _beta_mean(eta: Tensor) -> Tensor:
    a, b = eta[..., 0] + 1, eta[..., 1] + 1
    s = torch.digamma(a + b)
    return torch.stack([torch.digamma(a) - s, torch.digamma(b) - s], -1)


def _beta_cov(eta: Tensor) -> Tensor:
    a, b = eta[..., 0] + 1, eta[..., 1] + 1
    s = torch.polygamma(1, a + b)
    return _stack2(torch.polygamma(1, a) - s, -s, torch.polygamma(1, b) - s)


BETA = VectorTorchFamily(
    name="beta",
    natural_parameters=("eta1", "eta2"),
    domain=((-1.0, math.inf), (-1.0, math.inf)),
    log_partition=_beta_A,
    mean=_beta_mean,
    covariance=_beta_cov,
    sufficient_statistic=lambda y: torch.stack([torch.log(y), torch.log1p(-y)], -1),
    support="unit_interval",
    log_base_measure=torch.zeros_like,
    exact_sampler=ExactSampler("beta"),
)


# ------------------------------------------------------------------ inverse Gaussian
def _ig_parts(eta: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``m = sqrt(eta2/eta1)`` and shape ``s = -2 eta2``."""
    e1, e2 = eta[..., 0], eta[..., 1]
    return torch.sqrt(e2 / e1), -2 * e2


def _ig_A(eta: Tensor) -> Tensor:
    e1, e2 = eta[..., 0], eta[..., 1]
    return -2 * torch.sqrt(e1 * e2) - 0.5 * torch.log(-2 * e2)


def _ig_mean(eta: Tensor) -> Tensor:
    """E y = m, E 1/y = 1/m + 1/s."""
    m, s = _ig_parts(eta)
    return torch.stack([m, 1 / m + 1 / s], -1)


def _ig_cov(eta: Tensor) -> Tensor:
    """Var y = m^3/s, Cov(y, 1/y) = -m/s, Var 1/y = 1/(m s) + 2/s^2."""
    m, s = _ig_parts(eta)
    return _stack2(m**3 / s, -m / s, 1 / (m * s) + 2 / (s * s))


def _ig_inverse(mu: Tensor) -> Tensor:
    m = mu[..., 0]
    s = 1 / (mu[..., 1] - 1 / m)
    return torch.stack([-s / (2 * m * m), -s / 2], -1)


INVERSE_GAUSSIAN = VectorTorchFamily(
    name="inverse_gaussian",
    natural_parameters=("eta1", "eta2"),
    domain=((-math.inf, 0.0), (-math.inf, 0.0)),
    log_partition=_ig_A,
    mean=_ig_mean,
    covariance=_ig_cov,
    sufficient_statistic=lambda y: torch.stack([y, 1 / y], -1),
    support="positive_real",
    log_base_measure=lambda y: -0.5 * math.log(2 * math.pi) - 1.5 * torch.log(y),
    inverse_mean=_ig_inverse,
    exact_sampler=ExactSampler("inverse_gaussian"),
)


# ------------------------------------------------------------------ categorical
def categorical(K: int = 4) -> VectorTorchFamily:
    """K categories, reference 0: ``T(y) = onehot(y)[1:]``, ``A = log(1 + sum e^eta_i)``."""

    def padded(eta: Tensor) -> Tensor:
        return torch.cat([torch.zeros_like(eta[..., :1]), eta], -1)

    def mean(eta: Tensor) -> Tensor:
        return torch.softmax(padded(eta), -1)[..., 1:]

    def cov(eta: Tensor) -> Tensor:
        p = mean(eta)
        return torch.diag_embed(p) - p[..., :, None] * p[..., None, :]

    def statistic(y: Tensor) -> Tensor:
        levels = torch.arange(1, K, dtype=y.dtype, device=y.device)
        return (y[..., None] == levels).to(y.dtype)

    def inverse(mu: Tensor) -> Tensor:
        return torch.log(mu) - torch.log1p(-mu.sum(-1, keepdim=True))

    return VectorTorchFamily(
        name="categorical",
        natural_parameters=tuple(f"eta{i}" for i in range(1, K)),
        domain=((-math.inf, math.inf),) * (K - 1),
        log_partition=lambda eta: torch.logsumexp(padded(eta), -1),
        mean=mean,
        covariance=cov,
        sufficient_statistic=statistic,
        support="nonnegative_integers",
        log_base_measure=torch.zeros_like,
        inverse_mean=inverse,
        parameters={"K": K},
        exact_sampler=ExactSampler("categorical", {"K": K}),
        support_max=K - 1,
    )


CATEGORICAL = categorical(4)

# ------------------------------------------------------------------ scalar families
POISSON = TorchFamily(
    "poisson",
    (-math.inf, math.inf),
    torch.exp,
    torch.exp,
    torch.exp,
    lambda y: y,
    support="nonnegative_integers",
    log_base_measure=lambda y: -torch.lgamma(y + 1),
    exact_sampler=ExactSampler("poisson", {"scale": 1.0}),
)
BERNOULLI = TorchFamily(
    "bernoulli",
    (-math.inf, math.inf),
    torch.nn.functional.softplus,
    torch.sigmoid,
    lambda e: torch.sigmoid(e) * torch.sigmoid(-e),
    lambda y: y,
    support="binary",
    log_base_measure=torch.zeros_like,
    exact_sampler=ExactSampler("bernoulli"),
)
GAUSSIAN = TorchFamily(
    "gaussian",
    (-math.inf, math.inf),
    lambda e: 0.5 * e * e,
    lambda e: e,
    torch.ones_like,
    lambda y: y,
    support="real",
    log_base_measure=lambda y: -0.5 * y * y - 0.5 * math.log(2 * math.pi),
    exact_sampler=ExactSampler("gaussian", {"variance": 1.0}),
)

VECTOR_FAMILIES = {
    "normal_unknown_variance": NORMAL,
    "gamma_shape": GAMMA_SHAPE,
    "beta": BETA,
    "inverse_gaussian": INVERSE_GAUSSIAN,
    "categorical": CATEGORICAL,
}

#: an interior natural parameter per vector family (moderate values)
INTERIOR_ETA = {
    "normal_unknown_variance": [0.6, -0.8],
    "gamma_shape": [1.5, -2.0],
    "beta": [1.0, 2.5],
    "inverse_gaussian": [-0.7, -1.6],
    "categorical": [0.3, -0.5, 0.8],
}
