"""The joint MAP objective of exponential-family PCA (Theorem 1 (6) with Gaussian priors).

With latents ``Z`` (``N x l``), loadings ``W`` (``d x l``), offsets ``B`` (``d``) and
``eta = Z W^T + B``, the negative log joint density per sample, up to constants, is

    F(Z, W, B) = (1/N) [ sum_{s,j} (A(eta_sj) - T_sj eta_sj) + lam/2 |Z|^2
                         + w/2 (|W|^2 + |B|^2) ]

(``w`` = ``weight_decay``), exactly what ``ExpFamPCA.loss`` evaluates over the whole data
set at ``Z = Z*(W, B)``; the Adam path minimises ``F(Z*(W, B), W, B)`` over ``(W, B)``, the
second-order path minimises ``F`` over all three blocks by alternation. Its gradient in the
loadings is ``dF/dW = (1/N)((sigma(eta) - T)^T Z + w W)``, ``dF/dB = (1/N)(1^T (sigma(eta) - T)
+ w B)``; at the MAP latents ``dF/dZ = 0``, so these are the whole gradient there (and, by
the envelope theorem, the gradient of the profile objective the Adam path follows).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..family import TorchFamily


def joint_objective(
    family: TorchFamily,
    T: Tensor,
    Z: Tensor,
    W: Tensor,
    B: Tensor,
    lam: float,
    weight_decay: float,
) -> float:
    """``F(Z, W, B)`` of the module docstring (``+inf`` if some ``eta`` leaves the domain)."""
    eta = Z @ W.T + B
    if not bool(family.in_domain(eta).all()):
        return math.inf
    n = T.shape[0]
    data_term = (family.log_partition(eta) - T * eta).sum()
    prior = 0.5 * lam * Z.square().sum() + 0.5 * weight_decay * (
        W.square().sum() + B.square().sum()
    )
    return float((data_term + prior) / n)


def loadings_gradient(
    family: TorchFamily, T: Tensor, Z: Tensor, W: Tensor, B: Tensor, weight_decay: float
) -> tuple[Tensor, Tensor]:
    """``(dF/dW, dF/dB)`` of the module docstring, shapes ``(d, l)`` and ``(d,)``."""
    n = T.shape[0]
    resid = family.activation(Z @ W.T + B) - T
    return (resid.T @ Z + weight_decay * W) / n, (resid.sum(0) + weight_decay * B) / n


def gradient_norm(grad_w: Tensor, grad_b: Tensor) -> float:
    """Euclidean norm of the loadings gradient ``|(dF/dW, dF/dB)|_2``."""
    return float(torch.sqrt(grad_w.square().sum() + grad_b.square().sum()))


__all__ = ["gradient_norm", "joint_objective", "loadings_gradient"]
