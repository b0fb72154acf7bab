"""Sampling ``y ~ h(y) exp(<eta, T(y)> - A(eta))`` for vector families and mixed columns.

* Exact samplers, keyed by ``family.exact_sampler.law`` (the law the family *is*):
  ``normal`` (mean ``-eta1/(2 eta2)``, variance ``-1/(2 eta2)``), ``gamma_shape`` (shape
  ``eta1 + 1``, rate ``-eta2``), ``beta`` (``eta1 + 1``, ``eta2 + 1``, as ``G1/(G1 + G2)`` of
  two gammas), ``inverse_gaussian`` (mean ``sqrt(eta2/eta1)``, shape ``-2 eta2``, by
  Michael, Schucany and Haas 1976) and ``categorical`` (probabilities ``softmax([0, eta])``).
* Otherwise a generic sampler for the scalar observation ``y``: the tilted density is
  ``h(y) exp(<eta, T(y)> - A(eta))``. A coarse grid over the whole support (through a
  transform onto the real line: ``y = sinh(u)``, ``e^u`` or the logistic ``1/(1 + e^-u)``)
  locates the mass; the inverse CDF is then taken on a fine grid of that interval (continuous
  supports), or on the integers it spans (lattice supports).
* :func:`sample_columns` draws a data matrix for a ``ColumnFamilies``, each column group by
  its own family (scalar groups through ``runtime.sampling.sample``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from deqfam.vocab import Support

from .columns import ColumnFamilies
from .sampling import _gamma, sample
from .tilted import _inverse_cdf
from .vector_family import VectorTorchFamily

Gen = torch.Generator | None
VectorExactFn = Callable[[Tensor, Mapping[str, float], Gen], Tensor]


def _normal(eta: Tensor, p: Mapping[str, float], gen: Gen) -> Tensor:
    """N(-eta1/(2 eta2), -1/(2 eta2))."""
    e1, e2 = eta[..., 0], eta[..., 1]
    noise = torch.randn(e1.shape, dtype=eta.dtype, generator=gen)
    return -e1 / (2 * e2) + torch.sqrt(-1 / (2 * e2)) * noise


def _gamma_rates(shape: Tensor, rate: Tensor, gen: Gen) -> Tensor:
    """Gamma(shape, rate) elementwise: Marsaglia-Tsang per distinct shape value."""
    out = torch.empty_like(rate)
    flat_s, flat_r, flat_o = shape.reshape(-1), rate.reshape(-1), out.reshape(-1)
    uniq, inverse = torch.unique(flat_s, return_inverse=True)
    for i, a in enumerate(uniq.tolist()):
        mine = inverse == i
        flat_o[mine] = _gamma(a, flat_r[mine], gen)
    return out


def _gamma_shape(eta: Tensor, p: Mapping[str, float], gen: Gen) -> Tensor:
    """Gamma(shape eta1 + 1, rate -eta2)."""
    return _gamma_rates(eta[..., 0] + 1, -eta[..., 1], gen)


def _beta(eta: Tensor, p: Mapping[str, float], gen: Gen) -> Tensor:
    """Beta(eta1 + 1, eta2 + 1) = G1 / (G1 + G2), G_i ~ Gamma(a_i, 1)."""
    ones = torch.ones_like(eta[..., 0])
    g1 = _gamma_rates(eta[..., 0] + 1, ones, gen)
    g2 = _gamma_rates(eta[..., 1] + 1, ones, gen)
    return g1 / (g1 + g2)


def _inverse_gaussian(eta: Tensor, p: Mapping[str, float], gen: Gen) -> Tensor:
    """Michael-Schucany-Haas: with ``v = chi^2_1``, ``x = m + m^2 v/(2 s) - m/(2 s)
    sqrt(4 m s v + m^2 v^2)`` (the smaller root); return ``x`` with probability
    ``m/(m + x)``, else ``m^2/x``."""
    m, s = torch.sqrt(eta[..., 1] / eta[..., 0]), -2 * eta[..., 1]
    v = torch.randn(m.shape, dtype=eta.dtype, generator=gen) ** 2
    mv = m * v
    x = m + m * mv / (2 * s) - m / (2 * s) * torch.sqrt(4 * s * mv + mv * mv)
    u = torch.rand(m.shape, dtype=eta.dtype, generator=gen)
    return torch.where(u <= m / (m + x), x, m * m / x)


def _categorical(eta: Tensor, p: Mapping[str, float], gen: Gen) -> Tensor:
    """y in {0..K-1} with P(y) = softmax([0, eta])_y (inverse CDF on the cumulative sums)."""
    probs = torch.softmax(torch.cat([torch.zeros_like(eta[..., :1]), eta], -1), -1)
    u = torch.rand(eta.shape[:-1], dtype=eta.dtype, generator=gen)
    cdf = torch.cumsum(probs, -1)
    y = (cdf < u[..., None]).sum(-1).clamp(max=probs.shape[-1] - 1)
    return y.to(eta.dtype)


#: exact samplers of vector laws: (eta (..., k), law parameters, generator) -> y (...)
VECTOR_EXACT_SAMPLERS: dict[str, VectorExactFn] = {
    "normal": _normal,
    "gamma_shape": _gamma_shape,
    "beta": _beta,
    "inverse_gaussian": _inverse_gaussian,
    "categorical": _categorical,
}

_TRANSFORMS: dict[Support, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    # support -> (u -> y, log dy/du)
    Support.REAL: (torch.sinh, lambda u: torch.log(torch.cosh(u))),
    Support.POSITIVE_REAL: (torch.exp, lambda u: u),
    Support.UNIT_INTERVAL: (torch.sigmoid, lambda u: -torch.nn.functional.softplus(-u) * 2 - u),
}
_LATTICE_FLOOR = {
    Support.INTEGERS: None,
    Support.NONNEGATIVE_INTEGERS: 0.0,
    Support.POSITIVE_INTEGERS: 1.0,
    Support.BINARY: 0.0,
    Support.PLUS_MINUS_ONE: -1.0,
}
COARSE = 2001  # coarse grid points on u in [-U_MAX, U_MAX]
U_MAX = 40.0
FINE = 4096
MAX_LATTICE = 2_000_000
ROWS_PER_BLOCK = 256
LOG_TAIL = 40.0  # cells whose density is below e^-40 of the largest are outside the range


def tilted_log_density(family: VectorTorchFamily, eta: Tensor, y: Tensor) -> Tensor:
    """``log h(y) + <eta, T(y)> - A(eta)`` for ``eta`` ``(n, k)`` and a table ``y``
    ``(n, m)`` (NaN and points outside the support give ``-inf``)."""
    logp = (
        family.log_base_measure(y)
        + (eta[:, None, :] * family.sufficient_statistic(y)).sum(-1)
        - family.log_partition(eta)[:, None]
    )
    return torch.nan_to_num(logp, nan=-math.inf, posinf=-math.inf)


def _mass_range(family: VectorTorchFamily, eta: Tensor) -> tuple[Tensor, Tensor]:
    """``[lo, hi]`` in ``y`` per row of ``eta`` holding all but ``~e^-40`` of the mass,
    from a coarse grid in the transformed variable ``u``."""
    support = Support(family.support)
    if support in _TRANSFORMS:
        to_y, log_jac = _TRANSFORMS[support]
        u = torch.linspace(-U_MAX, U_MAX, COARSE, dtype=eta.dtype)
        y = to_y(u).expand(eta.shape[0], -1)
        logp = tilted_log_density(family, eta, y) + log_jac(u)
    else:  # lattice: integers on a symmetric log-spaced coarse grid
        mag = torch.unique(torch.round(torch.logspace(0, 9, COARSE // 2, dtype=eta.dtype)))
        y = torch.cat([-mag.flip(0), torch.zeros(1, dtype=eta.dtype), mag])
        floor = _LATTICE_FLOOR.get(support)
        if floor is not None:
            y = y[y >= floor]
        top = getattr(family, "support_max", None)
        if top is not None:
            y = y[y <= top]
        y = y.expand(eta.shape[0], -1)
        logp = tilted_log_density(family, eta, y)
    keep = logp >= logp.max(-1, keepdim=True).values - LOG_TAIL
    idx = torch.arange(y.shape[1])
    first = torch.where(keep, idx, y.shape[1]).min(-1).values
    last = torch.where(keep, idx, -1).max(-1).values
    # one coarse cell beyond the last kept point on each side
    lo = y.gather(1, (first - 1).clamp(min=0)[:, None])[:, 0]
    hi = y.gather(1, (last + 1).clamp(max=y.shape[1] - 1)[:, None])[:, 0]
    return lo, hi


def _grid_cdf(family: VectorTorchFamily, eta: Tensor) -> tuple[Tensor, Tensor, bool]:
    """Per row of ``eta``: the points ``y`` (fine cell midpoints, or the lattice points of the
    mass range) and the normalised CDF over them; and whether the support is continuous."""
    lo, hi = _mass_range(family, eta)
    continuous = Support(family.support) in _TRANSFORMS
    if continuous:
        t = (torch.arange(FINE, dtype=eta.dtype) + 0.5) / FINE
        y = lo[:, None] + (hi - lo)[:, None] * t[None, :]
        logp = tilted_log_density(family, eta, y)
    else:
        width = int((hi - lo).max()) + 1
        if width > MAX_LATTICE:
            raise ValueError(f"{family.name}: a sampling range of {width} points is too wide")
        y = lo[:, None] + torch.arange(width, dtype=eta.dtype)[None, :]
        logp = tilted_log_density(family, eta, y).masked_fill(y > hi[:, None], -math.inf)
    cdf = torch.cumsum(torch.softmax(logp, dim=1), dim=1)
    return y, cdf / cdf[:, -1:], continuous


def sample_vector_generic(family: VectorTorchFamily, eta: Tensor, gen: Gen) -> Tensor:
    """Inverse-CDF draws of the tilted density of a scalar observation (module docstring),
    one per row of ``eta`` ``(n, k)``; the table is built once per distinct row, in blocks."""
    if family.log_base_measure is None:
        raise ValueError(
            f"{family.name}: the spec gives no base measure h(y), so there is no generic "
            "sampler; add base_measure to the spec"
        )
    uniq, inverse = torch.unique(eta, dim=0, return_inverse=True)
    u = torch.rand(eta.shape[0], dtype=eta.dtype, generator=gen)
    out = torch.empty(eta.shape[0], dtype=eta.dtype)
    for start in range(0, uniq.shape[0], ROWS_PER_BLOCK):
        stop = min(start + ROWS_PER_BLOCK, uniq.shape[0])
        y, cdf, continuous = _grid_cdf(family, uniq[start:stop])
        mine = (inverse >= start) & (inverse < stop)
        row, um = inverse[mine] - start, u[mine]
        idx = _inverse_cdf(cdf, row, um)
        if not continuous:
            out[mine] = y[row, idx]
            continue
        # linear within the chosen cell (density at the cell midpoints)
        c0 = torch.where(idx > 0, cdf[row, (idx - 1).clamp(min=0)], torch.zeros_like(um))
        frac = ((um - c0) / (cdf[row, idx] - c0).clamp_min(1e-300)).clamp(0, 1)
        step = y[row, 1] - y[row, 0] if y.shape[1] > 1 else torch.zeros_like(um)
        out[mine] = y[row, idx] + (frac - 0.5) * step
    return out


def sample_vector(
    family: VectorTorchFamily, eta: Tensor, generator: Gen = None, exact: bool = True
) -> Tensor:
    """Draw ``y ~ p(y | eta)`` for ``eta`` of shape ``(..., k)``; the result has shape
    ``(...)``. The exact sampler of ``family.exact_sampler`` when there is one (and
    ``exact``), else the generic sampler."""
    eta = torch.as_tensor(eta)
    if not torch.is_floating_point(eta):
        eta = eta.to(torch.float64)
    if not bool(family.in_domain(eta).all()):
        raise ValueError(f"{family.name}: eta must lie in the open domain {family.domain}")
    with torch.no_grad():
        law = family.exact_sampler
        if exact and law is not None:
            if law.law not in VECTOR_EXACT_SAMPLERS:
                raise ValueError(f"{family.name}: unknown exact sampler {law.law!r}")
            return VECTOR_EXACT_SAMPLERS[law.law](eta, law.parameters, generator)
        flat = eta.reshape(-1, family.k)
        return sample_vector_generic(family, flat, generator).reshape(eta.shape[:-1])


def sample_columns(columns: ColumnFamilies, eta: Tensor, generator: Gen = None) -> Tensor:
    """A data matrix ``Y`` ``(N, d)`` with ``y_sj ~ p_j(y | eta_sj)`` for natural parameters
    ``eta`` ``(N, D)``, each column group drawn by its own family."""
    out = torch.empty((*eta.shape[:-1], columns.data_dim), dtype=eta.dtype)
    for g in columns.groups:
        eta_g = g.eta(eta)
        if g.vector:
            out[..., g.columns] = sample_vector(g.family, eta_g, generator)
        else:
            out[..., g.columns] = sample(g.family, eta_g[..., 0], generator)
    return out


__all__ = [
    "VECTOR_EXACT_SAMPLERS",
    "sample_columns",
    "sample_vector",
    "sample_vector_generic",
    "tilted_log_density",
]
