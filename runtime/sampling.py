"""Sampling y ~ p(y | eta) = h(y) exp(eta T(y) - A(eta)) from any admissible family.

Every sampler takes the family contract (a ``TorchFamily``, or a generated module's ``FAMILY``).

* A family that ``derive/laws.py`` proved to be a known law carries it as
  ``family.exact_sampler`` (law name and the law's own parameters), and gets that law's exact
  torch sampler from :data:`EXACT_SAMPLERS`: chosen by what the family *is*, never by its
  name. Bose-Einstein uses its compound-Poisson construction:
  A(eta) = sum_k c_k e^{beta eta k}, c_k = (k beta)^{-(j+1)}, so exp(A(eta + t) - A(eta)) is
  the mgf of Y = sum_{i <= N} beta K_i with N ~ Poisson(A(eta)) and
  P(K = k) proportional to e^{beta eta k} / k^{j+1}.
* Other lattice supports: the tilted pmf h(y) exp(eta y - A(eta)) on a range bounded by
  mean +- many standard deviations (A', A''), checked to hold all but 1e-8 of the mass.
* Other continuous supports: numerical inverse CDF of the tilted density on a fine grid.

Samplers take T(y) = y (the built-in and example specs); a spec with another statistic is
refused with a clear error rather than sampled wrongly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from deqfam.vocab import CONTINUOUS_SUPPORTS, LATTICE_SUPPORTS

from .family import TorchFamily, as_torch_family
from .tilted import sample_continuous, sample_lattice

LATTICE = set(LATTICE_SUPPORTS)
CONTINUOUS = set(CONTINUOUS_SUPPORTS)

Gen = torch.Generator | None
#: an exact sampler: (eta, law parameters, family, generator) -> y
ExactFn = Callable[[Tensor, Mapping[str, float], TorchFamily, Gen], Tensor]


def _gaussian(eta: Tensor, p: Mapping[str, float], fam: TorchFamily, gen: Gen) -> Tensor:
    """N(v eta, v) for A = v eta^2 / 2."""
    v = p["variance"]
    return v * eta + math.sqrt(v) * torch.randn(eta.shape, dtype=eta.dtype, generator=gen)


def _bernoulli(eta: Tensor, p: Mapping[str, float], fam: TorchFamily, gen: Gen) -> Tensor:
    """Bernoulli(sigmoid(eta))."""
    return torch.bernoulli(torch.sigmoid(eta), generator=gen)


def _ising(eta: Tensor, p: Mapping[str, float], fam: TorchFamily, gen: Gen) -> Tensor:
    """y in {-1, 1} with P(y = 1) = e^eta / (2 cosh eta) = sigmoid(2 eta)."""
    return 2.0 * torch.bernoulli(torch.sigmoid(2.0 * eta), generator=gen) - 1.0


def _poisson(eta: Tensor, p: Mapping[str, float], fam: TorchFamily, gen: Gen) -> Tensor:
    """Poisson(c e^eta) for A = c e^eta."""
    return torch.poisson(p["scale"] * torch.exp(eta), generator=gen)


def _binomial_law(eta: Tensor, p: Mapping[str, float], fam: TorchFamily, gen: Gen) -> Tensor:
    """Binomial(n, sigmoid(eta))."""
    return _binomial(int(p["n"]), torch.sigmoid(eta), gen)


def _gamma_law(eta: Tensor, p: Mapping[str, float], fam: TorchFamily, gen: Gen) -> Tensor:
    """Gamma(shape k, rate -eta)."""
    return _gamma(p["k"], -eta, gen)


def _negative_binomial(eta: Tensor, p: Mapping[str, float], fam: TorchFamily, gen: Gen) -> Tensor:
    """Poisson-gamma mixture: lambda ~ Gamma(r, rate (1-q)/q), y ~ Poisson(lambda), q = e^eta."""
    lam = _gamma(p["r"], -torch.expm1(eta) / torch.exp(eta), gen)
    return torch.poisson(lam, generator=gen)


def _continuous_bernoulli_law(
    eta: Tensor, p: Mapping[str, float], fam: TorchFamily, gen: Gen
) -> Tensor:
    return _continuous_bernoulli(eta, gen)


def _bose_einstein_law(eta: Tensor, p: Mapping[str, float], fam: TorchFamily, gen: Gen) -> Tensor:
    return _bose_einstein(fam, p["j"], p["beta"], eta, gen)


#: exact samplers by law name (the names ``derive/laws.py`` emits)
EXACT_SAMPLERS: dict[str, ExactFn] = {
    "gaussian": _gaussian,
    "bernoulli": _bernoulli,
    "ising": _ising,
    "poisson": _poisson,
    "binomial": _binomial_law,
    "gamma": _gamma_law,
    "negative_binomial": _negative_binomial,
    "continuous_bernoulli": _continuous_bernoulli_law,
    "bose_einstein": _bose_einstein_law,
}


def _exact(family: TorchFamily, eta: Tensor, gen: Gen) -> Tensor | None:
    """The exact sampler of the law the family was identified as, or None."""
    law = family.exact_sampler
    if law is None:
        return None
    if law.law not in EXACT_SAMPLERS:
        raise ValueError(f"{family.name}: unknown exact sampler {law.law!r}")
    return EXACT_SAMPLERS[law.law](eta, law.parameters, family, gen)


def _binomial(n: int, p: torch.Tensor, gen) -> torch.Tensor:
    u = torch.rand((n, *p.shape), dtype=p.dtype, generator=gen)
    return (u < p).sum(0).to(p.dtype)


def _gamma(shape: float, rate: torch.Tensor, gen) -> torch.Tensor:
    """Gamma(shape, rate) by Marsaglia-Tsang (torch's _standard_gamma has no generator)."""
    k = shape if shape >= 1 else shape + 1.0
    d = k - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = torch.empty(rate.shape, dtype=rate.dtype)
    todo = torch.ones(rate.shape, dtype=torch.bool)
    while bool(todo.any()):
        x = torch.randn(rate.shape, dtype=rate.dtype, generator=gen)
        v = (1 + c * x) ** 3
        u = torch.rand(rate.shape, dtype=rate.dtype, generator=gen)
        ok = (v > 0) & (torch.log(u) < 0.5 * x * x + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        take = todo & ok
        out[take] = (d * v)[take]
        todo &= ~ok
    if shape < 1:
        u = torch.rand(rate.shape, dtype=rate.dtype, generator=gen)
        out = out * u ** (1.0 / shape)
    return out / rate


def _continuous_bernoulli(eta: torch.Tensor, gen) -> torch.Tensor:
    """Inverse CDF of the density prop. to e^{eta y} on [0, 1]: y = log1p(u expm1(eta))/eta."""
    u = torch.rand(eta.shape, dtype=eta.dtype, generator=gen)
    small = eta.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(eta), eta)
    y = torch.log1p(u * torch.expm1(safe)) / safe
    return torch.where(small, u, y).clamp(0.0, 1.0)


def _bose_einstein(
    family: TorchFamily, j: float, beta: float, eta: torch.Tensor, gen
) -> torch.Tensor:
    """Compound Poisson: N ~ Poisson(A(eta)) jumps of size beta K, P(K = k) ~ e^{beta eta k}
    / k^{j+1} (truncated where the weights fall below e^-45)."""
    rate = family.log_partition(eta)  # A(eta) = E[N]
    n = torch.poisson(rate, generator=gen).to(torch.int64)
    out = torch.zeros_like(eta)
    flat_eta, flat_n, flat_out = eta.reshape(-1), n.reshape(-1), out.reshape(-1)
    for i in torch.nonzero(flat_n).flatten().tolist():
        x = beta * float(flat_eta[i])
        kmax = int(min(max(50.0, 45.0 / -x), 200_000))  # e^{x k} < e^-45 beyond kmax
        k = torch.arange(1, kmax + 1, dtype=torch.float64)
        logw = x * k - (j + 1.0) * torch.log(k)
        probs = torch.softmax(logw, 0)
        jumps = torch.multinomial(probs, int(flat_n[i]), replacement=True, generator=gen) + 1
        flat_out[i] = beta * float(jumps.sum())
    return out


def sample(family: object, eta: torch.Tensor, generator: Gen = None) -> torch.Tensor:
    """Draw y ~ p(y | eta) elementwise for a family (a ``TorchFamily`` or a generated
    module exporting ``FAMILY``).

    ``eta`` must lie inside the family's domain; the result has eta's shape and dtype.
    """
    fam = as_torch_family(family)
    eta = torch.as_tensor(eta)
    if not torch.is_floating_point(eta):
        eta = eta.to(torch.float64)
    lo, hi = fam.domain
    if not bool(fam.in_domain(eta).all()):
        raise ValueError(f"{fam.name}: eta must lie in the open domain ({lo}, {hi})")
    with torch.no_grad():
        out = _exact(fam, eta, generator)
        if out is not None:
            return out
        probe = torch.linspace(-1.0, 1.0, 5, dtype=torch.float64)
        if not torch.equal(fam.sufficient_statistic(probe), probe):
            raise ValueError(f"{fam.name}: sampling needs T(y) = y")
        if not fam.has_base_measure:
            raise ValueError(
                f"{fam.name}: the spec gives no base measure h(y), so there is "
                "no generic sampler; add base_measure to the spec"
            )
        if fam.support in LATTICE:
            return sample_lattice(fam, eta, generator)
        if fam.support in CONTINUOUS:
            return sample_continuous(fam, eta, generator)
        raise ValueError(f"{fam.name}: no sampler for support {fam.support!r}")
