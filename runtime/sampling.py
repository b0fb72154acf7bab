"""Sampling y ~ p(y | eta) = h(y) exp(eta T(y) - A(eta)) from any admissible family.

* Built-in families get exact torch samplers (recognised by the generated module's
  ``NAME`` and ``PARAMETERS``). Bose-Einstein uses its compound-Poisson construction:
  A(eta) = sum_k c_k e^{beta eta k}, c_k = (k beta)^{-(j+1)}, so exp(A(eta + t) - A(eta)) is
  the mgf of Y = sum_{i <= N} beta K_i with N ~ Poisson(A(eta)) and
  P(K = k) proportional to e^{beta eta k} / k^{j+1}.
* Other lattice supports: the tilted pmf h(y) exp(eta y - A(eta)) on a range bounded by
  mean +- many standard deviations (A', A''), checked to hold all but 1e-12 of the mass.
* Other continuous supports: numerical inverse CDF of the tilted density on a fine grid.

Samplers take T(y) = y (the built-in and example specs); a spec with another statistic is
refused with a clear error rather than sampled wrongly.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from deqfam.vocab import CONTINUOUS_SUPPORTS, LATTICE_SUPPORTS

LATTICE = {str(s) for s in LATTICE_SUPPORTS}
CONTINUOUS = {str(s) for s in CONTINUOUS_SUPPORTS}
#: standard deviations either side of the mean covered by the generic samplers' ranges
TAIL_SDS = 40.0


def _param(module: Any, key: str) -> float:
    return float(module.PARAMETERS[key])


def _exact(module: Any, eta: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor | None:
    """Exact samplers for the built-in families, or None."""
    name = module.NAME
    if name == "gaussian":
        return eta + torch.randn(eta.shape, dtype=eta.dtype, generator=gen)
    if name == "bernoulli":
        return torch.bernoulli(torch.sigmoid(eta), generator=gen)
    if name == "ising":
        return 2.0 * torch.bernoulli(torch.sigmoid(2.0 * eta), generator=gen) - 1.0
    if name == "poisson":
        return torch.poisson(torch.exp(eta), generator=gen)
    if name == "binomial":
        return _binomial(int(_param(module, "n")), torch.sigmoid(eta), gen)
    if name == "gamma":
        return _gamma(_param(module, "k"), -eta, gen)
    if name == "negative_binomial":
        # Poisson-gamma mixture: lambda ~ Gamma(r, rate (1-p)/p), y ~ Poisson(lambda), p = e^eta
        p = torch.exp(eta)
        lam = _gamma(_param(module, "r"), -torch.expm1(eta) / p, gen)
        return torch.poisson(lam, generator=gen)
    if name == "continuous_bernoulli":
        return _continuous_bernoulli(eta, gen)
    if name == "bose_einstein":
        return _bose_einstein(module, eta, gen)
    return None


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


def _bose_einstein(module: Any, eta: torch.Tensor, gen) -> torch.Tensor:
    j, beta = _param(module, "j"), _param(module, "beta")
    rate = module.log_partition(eta)  # A(eta) = E[N]
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


def _lattice_range(module: Any, mean: Tensor, sd: Tensor) -> tuple[int, int]:
    """Integer range [lo, hi] holding mean +- TAIL_SDS sd of every tilted law in a chunk."""
    lo = math.floor(float((mean - TAIL_SDS * sd).min()))
    hi = math.ceil(float((mean + TAIL_SDS * sd).max()))
    support = module.SUPPORT
    if support == "binary":
        return 0, 1
    if support == "plus_minus_one":
        return -1, 1
    if support == "nonnegative_integers":
        lo = max(lo, 0)
    if support == "positive_integers":
        lo = max(lo, 1)
    if hi - lo > 5_000_000:
        raise ValueError(
            f"{module.NAME}: the sampling range [{lo}, {hi}] is too wide for the "
            "generic lattice sampler"
        )
    return lo, hi


def _tilted_logpmf(module: Any, eta: Tensor, y: Tensor) -> Tensor:
    """log h(y) + eta T(y) - A(eta) for every (eta_i, y_j) pair: shape (n_eta, n_y)."""
    e = eta.reshape(-1, 1)
    logp = (
        module.log_base_measure(y).reshape(1, -1)
        + e * module.sufficient_statistic(y)
        - module.log_partition(e)
    )
    return torch.nan_to_num(logp, nan=-math.inf)


#: at most this many (eta, y) cells are held in memory at once by the generic samplers
MAX_CELLS = 4_000_000


def _generic_lattice(module: Any, eta: Tensor, gen) -> Tensor:
    """Inverse-CDF sampling of the tilted pmf, distinct etas in sorted chunks whose
    (chunk x range) table stays below MAX_CELLS; each pmf is checked to sum to 1."""
    flat = eta.reshape(-1)
    uniq, inverse = torch.unique(flat, return_inverse=True)  # sorted
    mean, sd = module.activation(uniq), torch.sqrt(module.activation_grad(uniq))
    u = torch.rand(flat.shape, dtype=eta.dtype, generator=gen)
    out = torch.empty_like(flat)
    step = 2 if module.SUPPORT == "plus_minus_one" else 1
    start = 0
    while start < uniq.numel():
        # grow the chunk while its table fits (sorted etas: neighbours share a range)
        stop = start + 1
        lo, hi = _lattice_range(module, mean[start:stop], sd[start:stop])
        while stop < uniq.numel():
            lo2, hi2 = _lattice_range(module, mean[start : stop + 1], sd[start : stop + 1])
            if (stop + 1 - start) * (hi2 - lo2 + 1) > MAX_CELLS:
                break
            stop, lo, hi = stop + 1, lo2, hi2
        y = torch.arange(lo, hi + 1, step, dtype=eta.dtype)
        logp = _tilted_logpmf(module, uniq[start:stop], y)
        mass = torch.logsumexp(logp, dim=1).exp()
        if bool(((mass - 1).abs() > 1e-8).any()):
            raise ValueError(
                f"{module.NAME}: the tilted pmf on [{lo}, {hi}] sums to "
                f"{float(mass.min()):.6g}..{float(mass.max()):.6g}, not 1: h(y) "
                "and A(eta) do not describe one law (or the support is wrong)"
            )
        cdf = torch.cumsum(torch.softmax(logp, dim=1), dim=1)
        rows = (inverse >= start) & (inverse < stop)
        r = inverse[rows] - start
        idx = torch.searchsorted(cdf[r], u[rows].unsqueeze(1)).clamp(max=y.numel() - 1)
        out[rows] = y[idx.flatten()]
        start = stop
    return out.reshape(eta.shape)


def _generic_continuous(
    module: Any, eta: torch.Tensor, gen, n_grid: int = 4096, chunk: int = 512
) -> torch.Tensor:
    """Inverse CDF of the tilted density on a grid of cells, linear within each cell.

    The density is evaluated at cell midpoints (never at an end of the support, where h
    may be infinite); one uniform per sample is inverted through the piecewise-linear CDF.
    Distinct etas are processed in chunks so memory stays O(chunk * n_grid).
    """
    flat = eta.reshape(-1)
    uniq, inverse = torch.unique(flat, return_inverse=True)
    mean, sd = module.activation(uniq), torch.sqrt(module.activation_grad(uniq))
    u = torch.rand(flat.shape, dtype=eta.dtype, generator=gen)
    out = torch.empty_like(flat)
    for start in range(0, uniq.numel(), chunk):
        e = uniq[start : start + chunk]
        lo = mean[start : start + chunk] - TAIL_SDS * sd[start : start + chunk]
        hi = mean[start : start + chunk] + TAIL_SDS * sd[start : start + chunk]
        if module.SUPPORT == "positive_real":
            lo = lo.clamp_min(0.0)
        if module.SUPPORT == "unit_interval":
            lo, hi = torch.zeros_like(lo), torch.ones_like(hi)
        t = (torch.arange(n_grid, dtype=eta.dtype) + 0.5) / n_grid
        y = lo[:, None] + (hi - lo)[:, None] * t[None, :]  # (chunk, n_grid) midpoints
        logp = (
            module.log_base_measure(y)
            + e[:, None] * module.sufficient_statistic(y)
            - module.log_partition(e)[:, None]
        )
        p = torch.softmax(torch.nan_to_num(logp, nan=-math.inf), dim=1)
        cdf = torch.cat([torch.zeros_like(p[:, :1]), torch.cumsum(p, dim=1)], dim=1)
        rows = (inverse >= start) & (inverse < start + e.numel())
        r = inverse[rows] - start
        uu = u[rows].unsqueeze(1) * cdf[r, -1:]
        idx = torch.searchsorted(cdf[r], uu).clamp(1, n_grid).flatten()
        c0, c1 = cdf[r, idx - 1], cdf[r, idx]
        frac = ((uu.flatten() - c0) / (c1 - c0).clamp_min(1e-300)).clamp(0, 1)
        out[rows] = lo[r] + (hi - lo)[r] * (idx - 1 + frac) / n_grid
    return out.reshape(eta.shape)


def sample(
    module: Any, eta: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw y ~ p(y | eta) elementwise for a generated family module.

    ``eta`` must lie inside the family's domain; the result has eta's shape and dtype.
    """
    eta = torch.as_tensor(eta)
    if not torch.is_floating_point(eta):
        eta = eta.to(torch.float64)
    lo, hi = module.DOMAIN
    if not bool(((eta > lo) & (eta < hi)).all()):
        raise ValueError(f"{module.NAME}: eta must lie in the open domain ({lo}, {hi})")
    with torch.no_grad():
        out = _exact(module, eta, generator)
        if out is not None:
            return out
        probe = torch.linspace(-1.0, 1.0, 5, dtype=torch.float64)
        if not torch.equal(module.sufficient_statistic(probe), probe):
            raise ValueError(f"{module.NAME}: sampling needs T(y) = y")
        if not getattr(module, "HAS_BASE_MEASURE", False):
            raise ValueError(
                f"{module.NAME}: the spec gives no base measure h(y), so there is "
                "no generic sampler; add base_measure to the spec"
            )
        if module.SUPPORT in LATTICE:
            return _generic_lattice(module, eta, generator)
        if module.SUPPORT in CONTINUOUS:
            return _generic_continuous(module, eta, generator)
        raise ValueError(f"{module.NAME}: no sampler for support {module.SUPPORT!r}")
