"""Monte Carlo conjugate kernels of finite-width random networks: wide random DEQs solved by
fixed-point iteration, and explicit networks with ``N(0, 1)`` weights."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..solvers import SolverConfig, fixed_point
from .activations import as_phi
from .data import as_numpy
from .quadrature import gaussian_moments
from .scalars import check_sigmas, implicit_scalars


@dataclass
class MonteCarloCK:
    """``G = mean_r Z_r Z_r^T`` over ``realizations`` random DEQs of width ``width``, with the
    largest forward iteration count and whether every solve converged."""

    G: np.ndarray
    width: int
    realizations: int
    max_iterations: int
    all_converged: bool


def wide_deq_ck(
    phi: Any,
    sigma_a: float,
    sigma_b: float,
    X: Any,
    width: int,
    realizations: int = 1,
    shift: float | None = None,
    generator: torch.Generator | None = None,
    tol: float = 1e-10,
    batch_memory: int = 2**25,
) -> MonteCarloCK:
    """Monte Carlo CK of random DEQs ``z = m^{-1/2} phi_c(sigma_a A z + sigma_b B x)``, every
    row of ``X`` and every realisation solved by plain fixed-point iteration
    (``runtime.solvers.fixed_point``); realisations are batched (``bmm``) up to
    ``batch_memory`` weight entries at a time."""
    check_sigmas(sigma_a, sigma_b)
    Xt = torch.as_tensor(as_numpy(X))
    n, p = Xt.shape
    f = as_phi(phi)
    if shift is None:
        shift = implicit_scalars(f, sigma_a, sigma_b, float((Xt * Xt).sum(1).mean())).shift
    G = torch.zeros(n, n, dtype=torch.float64)
    cfg = SolverConfig(tol=tol, max_iter=500)
    max_it, ok = 0, True
    scale = 1 / math.sqrt(width)
    per_batch = max(1, min(realizations, batch_memory // (width * (width + p))))
    done = 0
    while done < realizations:
        r = min(per_batch, realizations - done)
        done += r
        At = sigma_a * torch.randn(r, width, width, generator=generator, dtype=torch.float64)
        B = torch.randn(r, width, p, generator=generator, dtype=torch.float64)
        inj = sigma_b * torch.matmul(Xt, B.transpose(1, 2))  # (r, n, m)

        def T(z: Tensor, inj: Tensor = inj, At: Tensor = At, r: int = r) -> Tensor:
            pre = torch.bmm(z.view(r, n, width), At.transpose(1, 2)) + inj
            return ((f.torch(pre) - shift) * scale).view(r * n, width)

        z, stats = fixed_point(T, torch.zeros(r * n, width, dtype=torch.float64), cfg)
        max_it = max(max_it, int(stats.iterations.max()))
        ok = ok and stats.all_converged
        z = z.view(r, n, width)
        G += torch.einsum("rim,rjm->ij", z, z)
    return MonteCarloCK((G / realizations).numpy(), width, realizations, max_it, ok)


def explicit_monte_carlo_ck(
    layers: Sequence[Any],
    X: Any,
    width: int,
    realizations: int = 1,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Monte Carlo CK ``mean_r Y_L Y_L^T`` of the explicit network with ``N(0, 1)`` weights."""
    Xt = torch.as_tensor(as_numpy(X))
    s2 = float((Xt * Xt).sum(1).mean())
    fs, shifts = [], []
    for layer in layers:
        f = as_phi(layer)
        mo = gaussian_moments(f, math.sqrt(s2), 64)
        fs.append(f)
        shifts.append(mo.mean)
        s2 = mo.var
    G = torch.zeros(Xt.shape[0], Xt.shape[0], dtype=torch.float64)
    for _ in range(realizations):
        y = Xt
        for f, c in zip(fs, shifts, strict=True):
            W = torch.randn(width, y.shape[1], generator=generator, dtype=torch.float64)
            y = (f.torch(y @ W.T) - c) / math.sqrt(width)
        G += y @ y.T
    return (G / realizations).numpy()
