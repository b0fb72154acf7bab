"""Starting point of the second-order fit: offsets at the link of the column means, loadings
from a truncated SVD of the Pearson residuals of the offsets-only model.

With ``W = 0`` the maximum-likelihood offsets are ``B_j = (A')^{-1}(mean_j)``
(:func:`initial_offsets`). One Fisher-scoring linearisation about them gives
``T - sigma(B) ~ sigma'(B) * (Z W^T)``, i.e. the Pearson residuals
``R = (T - sigma(B)) / sqrt(sigma'(B))`` are ``~ Z (sqrt(sigma'(B)) W)^T``. With the rank-``l``
SVD ``R ~ U S V^T`` and unit-variance latents ``Z = sqrt(N) U`` this gives
``W_j = gain * V_j S / (sqrt(N) sqrt(sigma'(B_j)))``; ``gain < 1`` starts a little small, so
that ``eta = Z W^T + B`` starts where ``sigma`` is moderate (Poisson's ``exp`` does not
overflow) and the alternation grows ``W`` from there.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..family import TorchFamily
from .link import initial_offsets

#: shrink factor of the SVD loadings (see the module docstring)
INIT_GAIN = 0.5


def pearson_residuals(family: TorchFamily, T: Tensor, B: Tensor) -> Tensor:
    """``(T - sigma(B)) / sqrt(sigma'(B))``, shape ``(N, d)``."""
    return (T - family.activation(B)) / torch.sqrt(family.activation_grad(B))


def initial_loadings(
    family: TorchFamily, T: Tensor, B: Tensor, latent_dim: int, gain: float = INIT_GAIN
) -> Tensor:
    """``W`` from the truncated SVD of the Pearson residuals (module docstring), ``(d, l)``.

    Signs are fixed (the largest entry of each singular vector is positive) so the start is
    deterministic. Columns beyond the rank of ``R`` are zero.
    """
    n, d = T.shape
    R = pearson_residuals(family, T, B)
    _, s, vh = torch.linalg.svd(R, full_matrices=False)
    k = min(latent_dim, s.shape[0])
    v = vh[:k].T  # (d, k)
    sign = torch.sign(v.gather(0, v.abs().argmax(0, keepdim=True)))
    v = v * torch.where(sign == 0, torch.ones_like(sign), sign)
    scale = gain * s[:k] / math.sqrt(n)
    W = torch.zeros(d, latent_dim, dtype=T.dtype, device=T.device)
    W[:, :k] = v * scale / torch.sqrt(family.activation_grad(B))[:, None]
    return W


def initial_parameters(family: TorchFamily, T: Tensor, latent_dim: int) -> tuple[Tensor, Tensor]:
    """``(W, B)``: :func:`initial_loadings` at :func:`initial_offsets`."""
    B = initial_offsets(family, T)
    return initial_loadings(family, T, B, latent_dim), B


__all__ = ["INIT_GAIN", "initial_loadings", "initial_parameters", "pearson_residuals"]
