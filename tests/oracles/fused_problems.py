"""Shared helpers of the fused-layer tests: problems at tilts inside a family's domain and the
comparison with the torch path (runtime.implicit.newton_equilibrium, a solver written
another way: batched torch tensors, torch's Cholesky, autograd for T')."""

from __future__ import annotations

import math

import torch

from deqfam.runtime.family import as_torch_family
from deqfam.runtime.fused import fused_equilibrium
from deqfam.runtime.implicit import newton_equilibrium


def tilted_problem(family, n: int, d: int, l: int, scale: float, seed: int, dtype=torch.float64):
    """(W, B, Y): ``W`` with entries ``N(0, scale^2)``, ``B`` at tilts strictly inside the
    domain (within 1 of an interior point, shifted away from a finite end), and data ``Y``
    drawn from the family's support near the mean ``sigma(B)``."""
    fam = as_torch_family(family)
    g = torch.Generator().manual_seed(seed)
    lo, hi = fam.domain
    centre = fam.interior_point()
    if math.isfinite(hi):
        centre = min(centre, hi - 1.5)
    if math.isfinite(lo):
        centre = max(centre, lo + 1.5)
    W = torch.randn(d, l, generator=g, dtype=torch.float64) * scale
    B = centre + 0.5 * (torch.rand(d, generator=g, dtype=torch.float64) - 0.5)
    mean = fam.activation(B).expand(n, d)
    Y = _support_draw(fam, mean, g)
    return W.to(dtype), B.to(dtype), Y.to(dtype)


def _support_draw(fam, mean, g):
    """Observations on ``fam``'s support around ``mean`` (the statistic is ``T(y) = y`` for
    every family tested; only the support matters for the solver)."""
    support = str(fam.support.value if hasattr(fam.support, "value") else fam.support)
    u = torch.rand(mean.shape, generator=g, dtype=torch.float64)
    if support == "binary":
        return (u < mean.clamp(0.05, 0.95)).double()
    if support == "plus_minus_one":
        return torch.where(u < 0.5 * (1 + mean.clamp(-0.9, 0.9)), 1.0, -1.0).double()
    if support == "unit_interval":
        return u.clamp(0.01, 0.99)
    if support in ("nonnegative_integers", "positive_integers", "integers"):
        counts = torch.poisson(mean.abs().clamp(0.1, 20.0), generator=g)
        if fam.support_max is not None:
            counts = counts.clamp(max=fam.support_max)
        return counts + (1.0 if support == "positive_integers" else 0.0)
    if support == "positive_real":
        return mean.abs().clamp(0.1, 20.0) * (0.5 + u)
    return mean + torch.randn(mean.shape, generator=g, dtype=torch.float64)


def both_paths(ops, family, W, B, Y, lam, z0=None):
    """(z, stats, grads) of the fused op and of the torch path for the same problem; the
    gradients are of ``<z, G>`` for a fixed random ``G`` w.r.t. ``W``, ``B`` and ``Y``."""
    out = []
    G = torch.randn(Y.shape[0], W.shape[1], generator=torch.Generator().manual_seed(7))
    G = G.to(W.dtype)
    for fused in (True, False):
        leaves = [t.detach().clone().requires_grad_(True) for t in (W, B, Y)]
        if fused:
            z, stats = fused_equilibrium(ops, family, *leaves, lam, z0=z0)
        else:
            z, stats = newton_equilibrium(family, *leaves, lam, z0=z0)
        grads = torch.autograd.grad((z * G).sum(), leaves)
        out.append((z.detach(), stats, grads))
    return out


def max_relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b| / max |b|`` (a tensor's relative error as one number)."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))
