"""Generic samplers of the tilted law p(y | eta) = h(y) exp(eta y - A(eta)), vectorised over eta.

Used for lattice and continuous user specs that ``derive/laws.py`` did not identify as a known
law (T(y) = y). No Python loop runs per distinct eta: the ranges of every eta are computed as
tensors, the etas are grouped into a few blocks whose padded (eta x point) table stays below
:data:`MAX_CELLS`, and each block is sampled by one log-pmf evaluation, a cumulative sum and
``searchsorted`` (inverse CDF).

Exactness, stated: every eta's range [lo, hi] starts at mean +- TAIL_SDS = 8 sd (A', A'') and
is widened until the Chernoff bound

    P(Y >= c) <= exp(A(eta + t) - A(eta) - t c),   P(Y <= c) <= exp(A(eta - t) - A(eta) + t c)

(t > 0 with eta +- t in the domain; the minimum over a geometric grid of t) puts less than
:data:`TAIL_MASS` = 1e-12 outside it on each side. The bound uses A only, so independently the
lattice pmf summed over the range must be 1 within :data:`SUM_TOL` (h and A describe one law).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from deqfam.vocab import Support

from .family import TorchFamily

#: standard deviations either side of the mean where every range starts (a Gaussian tail
#: beyond 8 sd is 6e-16; skewed laws get widened by the Chernoff test)
TAIL_SDS = 8.0
#: the most probability mass allowed outside a range, on each side (Chernoff bound)
TAIL_MASS = 1e-12
#: |sum of the lattice pmf over its range - 1| allowed (h and A must describe one law)
SUM_TOL = 1e-8
#: at most this many (eta, point) cells are held in memory at once
MAX_CELLS = 4_000_000
#: the widest lattice range sampled (points)
MAX_WIDTH = 5_000_000
#: grid of Chernoff exponents t, relative to the scale 1 / max(sd, 1e-3)
_T_GRID = torch.logspace(-3.0, 2.0, 13, dtype=torch.float64)
#: the Chernoff widening grows a range's distance from the mean by half at most this often
_MAX_WIDEN = 60

Gen = torch.Generator | None


def log_tail_bound(family: TorchFamily, eta: Tensor, sd: Tensor, c: Tensor, upper: bool) -> Tensor:
    """log of min_t exp(A(eta +- t) - A(eta) -+ t c): a bound on P(Y >= c) (``upper``) or
    P(Y <= c), t over a geometric grid scaled by 1/sd (sd = sqrt(A'')) and, on a bounded
    side of the domain, over fractions of the room left (t leaving the domain is skipped)."""
    sign = 1.0 if upper else -1.0
    lo, hi = family.domain
    t = _T_GRID.to(eta.dtype)[None, :] / sd.clamp_min(1e-3)[:, None]
    room = (hi - eta) if upper else (eta - lo)
    if math.isfinite(hi if upper else lo):
        frac = torch.tensor([0.5, 0.9, 0.99, 0.999], dtype=eta.dtype)
        t = torch.cat([t, room[:, None] * frac[None, :]], dim=1)
    shifted = eta[:, None] + sign * t
    val = family.log_partition(shifted) - sign * t * c[:, None]
    ok = family.in_domain(shifted) & (t > 0) & (room[:, None] > t)
    val = torch.where(ok, torch.nan_to_num(val, nan=math.inf, posinf=math.inf), math.inf)
    return val.min(dim=1).values - family.log_partition(eta)


def _widened(
    family: TorchFamily,
    eta: Tensor,
    mean: Tensor,
    sd: Tensor,
    end: Tensor,
    upper: bool,
    floor: float | None = None,
) -> Tensor:
    """``end`` moved away from the mean (its distance times 1.5, at least 1) until the tail
    beyond it carries less than TAIL_MASS by :func:`log_tail_bound` (a lower end at or below
    the support's ``floor`` has no tail)."""
    sign = 1.0 if upper else -1.0
    log_tol = math.log(TAIL_MASS)
    step = 1.0 if family.support in _LATTICE_STEP else 0.0  # a lattice tail starts one beyond
    end = end.clone()
    todo = torch.arange(eta.numel())  # only the ends still failing are evaluated again
    for _ in range(_MAX_WIDEN):
        e, m, x = eta[todo], mean[todo], end[todo]
        bad = log_tail_bound(family, e, sd[todo], x + sign * step, upper) >= log_tol
        if floor is not None:
            bad &= x > floor
        if not bool(bad.any()):
            return end
        todo, x, m = todo[bad], x[bad], m[bad]
        end[todo] = x + sign * torch.clamp(0.5 * (x - m).abs(), min=1.0)
    raise ValueError(
        f"{family.name}: no sampling range holds all but {TAIL_MASS:g} of the mass "
        "(the Chernoff bound does not fall: A(eta) may not match the support)"
    )


#: spacing of the lattice supports handled here
_LATTICE_STEP = {
    Support.BINARY: 1,
    Support.PLUS_MINUS_ONE: 2,
    Support.INTEGERS: 1,
    Support.NONNEGATIVE_INTEGERS: 1,
    Support.POSITIVE_INTEGERS: 1,
}


def lattice_ranges(family: TorchFamily, eta: Tensor) -> tuple[Tensor, Tensor]:
    """Integer ranges [lo_i, hi_i] (int64) of every eta holding all but TAIL_MASS of the
    tilted pmf on each side, clipped to the support (and to ``support_max``)."""
    support = family.support
    if support == Support.BINARY:
        return torch.zeros_like(eta, dtype=torch.int64), torch.ones_like(eta, dtype=torch.int64)
    if support == Support.PLUS_MINUS_ONE:
        return -torch.ones_like(eta, dtype=torch.int64), torch.ones_like(eta, dtype=torch.int64)
    mean, sd = family.activation(eta), torch.sqrt(family.activation_grad(eta))
    floor = {Support.NONNEGATIVE_INTEGERS: 0.0, Support.POSITIVE_INTEGERS: 1.0}.get(support)
    hi = _widened(family, eta, mean, sd, torch.ceil(mean + TAIL_SDS * sd), upper=True)
    lo = torch.floor(mean - TAIL_SDS * sd)
    if floor is not None:
        lo = lo.clamp_min(floor)
    lower_open = (lo > floor) if floor is not None else torch.ones_like(lo, dtype=torch.bool)
    if bool(lower_open.any()):
        lo = torch.where(lower_open, _widened(family, eta, mean, sd, lo, False, floor), lo)
        if floor is not None:
            lo = lo.clamp_min(floor)
    if family.support_max is not None:
        hi = hi.clamp_max(float(family.support_max))
    width = hi - lo + 1
    if bool((width > MAX_WIDTH).any()):
        raise ValueError(
            f"{family.name}: a sampling range of {int(width.max())} points is too wide for "
            "the generic lattice sampler"
        )
    return lo.to(torch.int64), hi.to(torch.int64)


def tilted_logpmf(family: TorchFamily, eta: Tensor, y: Tensor) -> Tensor:
    """log h(y) + eta y - A(eta) for a table y of shape (n_eta, n_points) (NaN -> -inf)."""
    logp = (
        family.log_base_measure(y)
        + eta[:, None] * family.sufficient_statistic(y)
        - family.log_partition(eta)[:, None]
    )
    return torch.nan_to_num(logp, nan=-math.inf)


def blocks(width: Tensor, max_cells: int) -> list[tuple[int, int]]:
    """Split rows sorted by ascending ``width`` into [start, stop) blocks whose padded table
    (rows x widest row) holds at most ``max_cells`` (a single row may exceed it)."""
    n = width.numel()
    out, start = [], 0
    while start < n:
        rows = torch.arange(1, n - start + 1, dtype=torch.int64)
        fits = rows * width[start:] <= max_cells  # True then False: widths ascend
        stop = start + max(int(fits.sum()), 1)
        out.append((start, stop))
        start = stop
    return out


def lattice_logpmf(family: TorchFamily, eta: Tensor, lo: Tensor, hi: Tensor, step: int):
    """(y, log p) tables of shape (n_eta, n_points): row i holds lo_i, lo_i + step, ... padded
    to the widest row, with log p = log h(y) + eta_i T(y) - A(eta_i) (-inf past hi_i).

    log h and T are evaluated once per distinct point of the block (a 1-D table gathered into
    the rows), not once per (eta, point) cell."""
    k = torch.arange(int(torch.div(hi - lo, step, rounding_mode="floor").max()) + 1)
    y_int = lo[:, None] + step * k[None, :]
    inside = y_int <= hi[:, None]
    base = int(lo.min())
    points = torch.arange(base, int(hi.max()) + 1, dtype=eta.dtype)
    table_h, table_t = family.log_base_measure(points), family.sufficient_statistic(points)
    pos = (y_int - base).clamp(max=points.numel() - 1)
    logp = table_h[pos] + eta[:, None] * table_t[pos] - family.log_partition(eta)[:, None]
    logp = torch.nan_to_num(logp, nan=-math.inf).masked_fill_(~inside, -math.inf)
    return y_int.to(eta.dtype), logp


def _inverse_cdf(cdf: Tensor, row: Tensor, u: Tensor) -> Tensor:
    """Index of the first cell with cdf[row_j] >= u_j for each sample j (clamped to the
    last cell). The samples are laid out as a (rows x most-per-row) table searched against
    cdf row by row, so cdf is not copied once per sample (unless that table would be much
    larger than the samples)."""
    n_rows = cdf.shape[0]
    counts = torch.bincount(row, minlength=n_rows)
    per_row = int(counts.max()) if row.numel() else 0
    if n_rows * per_row > 4 * (row.numel() + n_rows):  # very uneven: copy rows instead
        idx = torch.searchsorted(cdf[row], u.unsqueeze(1)).flatten()
        return idx.clamp(max=cdf.shape[1] - 1)
    order = torch.argsort(row, stable=True)
    first = torch.cumsum(counts, 0) - counts  # index in ``order`` of each row's first sample
    slot = torch.arange(row.numel()) - first[row[order]]
    table = torch.zeros((n_rows, per_row), dtype=u.dtype)
    table[row[order], slot] = u[order]
    found = torch.searchsorted(cdf, table).clamp(max=cdf.shape[1] - 1)
    idx = torch.empty_like(row)
    idx[order] = found[row[order], slot]
    return idx


def sample_lattice(family: TorchFamily, eta: Tensor, gen: Gen) -> Tensor:
    """Inverse-CDF draws of the tilted pmf on each eta's range (see the module docstring)."""
    flat = eta.reshape(-1)
    uniq, inverse = torch.unique(flat, return_inverse=True)
    u = torch.rand(flat.shape, dtype=eta.dtype, generator=gen)
    step = _LATTICE_STEP[family.support]
    lo, hi = lattice_ranges(family, uniq)
    npts = torch.div(hi - lo, step, rounding_mode="floor") + 1
    order = torch.argsort(npts)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    sample_rank = rank[inverse]
    out = torch.empty_like(flat)
    for start, stop in blocks(npts[order], MAX_CELLS):
        ids = order[start:stop]
        y, logp = lattice_logpmf(family, uniq[ids], lo[ids], hi[ids], step)
        top = logp.max(dim=1, keepdim=True).values  # finite: the mode lies in the range
        cdf = torch.cumsum(torch.exp(logp - top), dim=1)  # one pass gives mass and CDF
        total = cdf[:, -1:]
        _check_mass(family, (total * top.exp()).flatten(), lo[ids], hi[ids])
        cdf = cdf / total
        mine = (sample_rank >= start) & (sample_rank < stop)
        row = sample_rank[mine] - start
        out[mine] = y[row, _inverse_cdf(cdf, row, u[mine])]
    return out.reshape(eta.shape)


def _check_mass(family: TorchFamily, mass: Tensor, lo: Tensor, hi: Tensor) -> None:
    """Refuse a pmf whose total ``mass`` over its range is not 1 within SUM_TOL."""
    bad = ~((mass - 1).abs() <= SUM_TOL)  # NaN counts as bad
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        raise ValueError(
            f"{family.name}: the tilted pmf on [{int(lo[i])}, {int(hi[i])}] sums to "
            f"{float(mass[i]):.6g}, not 1: h(y) and A(eta) do not describe one law "
            "(or the support is wrong)"
        )


def continuous_ranges(family: TorchFamily, eta: Tensor) -> tuple[Tensor, Tensor]:
    """Intervals [lo_i, hi_i] holding all but TAIL_MASS of each tilted density per side,
    clipped to the support."""
    if family.support == Support.UNIT_INTERVAL:
        return torch.zeros_like(eta), torch.ones_like(eta)
    mean, sd = family.activation(eta), torch.sqrt(family.activation_grad(eta))
    hi = _widened(family, eta, mean, sd, mean + TAIL_SDS * sd, upper=True)
    lo = mean - TAIL_SDS * sd
    if family.support == Support.POSITIVE_REAL:
        lo = lo.clamp_min(0.0)
        open_lo = lo > 0
        if bool(open_lo.any()):
            lo = torch.where(open_lo, _widened(family, eta, mean, sd, lo, False, 0.0), lo)
            lo = lo.clamp_min(0.0)
        return lo, hi
    return _widened(family, eta, mean, sd, lo, upper=False), hi


def sample_continuous(family: TorchFamily, eta: Tensor, gen: Gen, n_grid: int = 4096) -> Tensor:
    """Inverse CDF of the tilted density on ``n_grid`` cells of each eta's interval, linear
    within a cell (density at cell midpoints: never at an end, where h may be infinite)."""
    flat = eta.reshape(-1)
    uniq, inverse = torch.unique(flat, return_inverse=True)
    u = torch.rand(flat.shape, dtype=eta.dtype, generator=gen)
    lo, hi = continuous_ranges(family, uniq)
    t = (torch.arange(n_grid, dtype=eta.dtype) + 0.5) / n_grid
    out = torch.empty_like(flat)
    rows_per_block = max(MAX_CELLS // n_grid, 1)
    for start in range(0, uniq.numel(), rows_per_block):  # blocks of etas, not single etas
        stop = min(start + rows_per_block, uniq.numel())
        a, width = lo[start:stop], (hi - lo)[start:stop]
        y = a[:, None] + width[:, None] * t[None, :]
        p = torch.softmax(tilted_logpmf(family, uniq[start:stop], y), dim=1)
        cdf = torch.cat([torch.zeros_like(p[:, :1]), torch.cumsum(p, dim=1)], dim=1)
        mine = (inverse >= start) & (inverse < stop)
        row = inverse[mine] - start
        uu = u[mine] * cdf[row, -1]
        idx = torch.searchsorted(cdf[row], uu.unsqueeze(1)).flatten().clamp(1, n_grid)
        c0, c1 = cdf[row, idx - 1], cdf[row, idx]
        frac = ((uu - c0) / (c1 - c0).clamp_min(1e-300)).clamp(0, 1)
        out[mine] = a[row] + width[row] * (idx - 1 + frac) / n_grid
    return out.reshape(eta.shape)
