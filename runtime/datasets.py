"""Synthetic data as in the paper (seed scoring-deq-expfam-pca, section 3, Appendix C).

Ground-truth latents (Figure 2): a regular grid on [-5, 5]^2 restricted to the disc of
radius 3 centred at (2, 2), the disc of radius 2 centred at (-3, -3) and the diamond
(square rotated by 45 degrees) of side 1 centred at (4, -4). W in R^{d x 2} has entries
N(0, 1/2) and Y ~ family(W Z) (B = 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .family import as_torch_family
from .sampling import sample


def ground_truth_latents(n_grid: int = 320, dtype=torch.float64) -> torch.Tensor:
    """Points of an n_grid x n_grid grid on [-5, 5]^2 inside the three shapes, shape (N, 2).

    The paper reports 42453 points; ``n_grid`` = 320 (the default) gives 42560, the closest
    density of a grid with the corners on (+-5, +-5); tests use a coarse grid.
    """
    axis = torch.linspace(-5.0, 5.0, n_grid, dtype=dtype)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    z = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    disc1 = ((z - torch.tensor([2.0, 2.0], dtype=dtype)) ** 2).sum(1) <= 9.0
    disc2 = ((z - torch.tensor([-3.0, -3.0], dtype=dtype)) ** 2).sum(1) <= 4.0
    # a square of side 1 rotated by 45 degrees: |dx| + |dy| <= side / sqrt(2)
    diamond = (z - torch.tensor([4.0, -4.0], dtype=dtype)).abs().sum(1) <= 1.0 / math.sqrt(2.0)
    return z[disc1 | disc2 | diamond]


#: Names of the labels of :func:`shape_labels` (legends of embedding plots).
SHAPE_NAMES = {0: "disc r=3 at (2, 2)", 1: "disc r=2 at (-3, -3)", 2: "diamond at (4, -4)"}


def shape_labels(z: torch.Tensor) -> torch.Tensor:
    """0, 1, 2 for the big disc, the small disc and the diamond (for colouring plots)."""
    labels = torch.full((z.shape[0],), 2, dtype=torch.int64)
    labels[((z - z.new_tensor([2.0, 2.0])) ** 2).sum(1) <= 9.0] = 0
    labels[((z - z.new_tensor([-3.0, -3.0])) ** 2).sum(1) <= 4.0] = 1
    return labels


@dataclass(frozen=True)
class SyntheticDataset:
    """Y ~ family(W Z + B) with known latents Z and weights W."""

    Y: torch.Tensor  # (N, d)
    Z: torch.Tensor  # (N, 2)
    W: torch.Tensor  # (d, 2)
    B: torch.Tensor  # (d,)
    labels: torch.Tensor  # (N,)


def make_dataset(
    module: Any,
    n_grid: int = 320,
    data_dim: int = 50,
    w_var: float = 0.5,
    bias: float | None = None,
    seed: int = 0,
) -> SyntheticDataset:
    """The paper's data-generating process for a generated family module.

    For families whose domain is not all of R (eta < 0: Bose-Einstein, gamma, negative
    binomial, logarithmic), B shifts every canonical parameter inside the domain:
    B_i = hi - 1 - max_n (W Z_n)_i unless ``bias`` is given.
    """
    gen = torch.Generator().manual_seed(seed)
    z = ground_truth_latents(n_grid)
    w = torch.randn((data_dim, 2), dtype=torch.float64, generator=gen) * math.sqrt(w_var)
    eta = z @ w.T
    lo, hi = as_torch_family(module).domain
    if bias is not None:
        b = torch.full((data_dim,), float(bias), dtype=torch.float64)
    elif math.isfinite(hi):
        b = hi - 1.0 - eta.max(0).values
    elif math.isfinite(lo):
        b = lo + 1.0 - eta.min(0).values
    else:
        b = torch.zeros(data_dim, dtype=torch.float64)
    y = sample(module, eta + b, gen)
    return SyntheticDataset(Y=y, Z=z, W=w, B=b, labels=shape_labels(z))
