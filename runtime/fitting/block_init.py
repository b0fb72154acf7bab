"""Starting point and objective of the second-order fit with one family per column.

Offsets: with ``W = 0`` the maximum-likelihood ``B_j`` solves ``mu_j(B_j) = m_j``, the column
mean of ``T_j`` (shrunk by one pseudo-observation at the mean of an interior point, as the
scalar ``shrunk_means``: a convex combination with an interior mean is inside the open mean
space). A scalar column inverts ``sigma`` numerically (``link.invert_activation``); a vector
column uses its family's closed-form ``inverse_mean`` where it has one, and the interior
point where it has none (or where the inverse leaves the domain).

Loadings: linearising about ``B``, ``T_sj - mu_j(B_j) ~ C_j (W_j z_s)``. With
``C_j = L_j L_j^T`` the whitened residuals ``R_sj = L_j^{-1} (T_sj - mu_j(B_j))`` are
``~ L_j^T W_j z_s``; the rank-``l`` SVD ``R ~ U S V^T`` with ``Z = sqrt(N) U`` gives
``W_j = L_j^{-T} gain V_j S / sqrt(N)`` (for a scalar column ``L_j = sqrt(sigma'(B_j))``,
the Pearson residuals of ``init``).

Objective: ``F(Z, W, B) = (1/N)[sum_{s,j} (A_j(eta_sj) - <T_sj, eta_sj>) + lam/2 |Z|^2 +
w/2 (|W|^2 + |B|^2)]`` with ``eta_s = W z_s + B`` in eta order, and its loadings gradient
``dF/dW = (1/N)((mu(eta) - T)^T Z + w W)``, ``dF/dB = (1/N)(1^T (mu(eta) - T) + w B)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..columns import ColumnFamilies, ColumnGroup
from .init import INIT_GAIN
from .link import invert_activation


def _interior(group: ColumnGroup, like: Tensor) -> Tensor:
    """The group's interior point as a ``(1, k)`` tensor (one column's natural parameters)."""
    return torch.tensor([group.interior()], dtype=like.dtype, device=like.device)


def group_shrunk_means(group: ColumnGroup, T_g: Tensor) -> Tensor:
    """``m_j = (sum_s T_sj + mu(eta0)) / (N + 1)`` per column, ``(n_g, k)``."""
    mu0 = group.mean(_interior(group, T_g))[0]
    return (T_g.sum(0) + mu0) / (T_g.shape[0] + 1)


def group_offsets(group: ColumnGroup, T_g: Tensor) -> Tensor:
    """``B_j = mu_j^{-1}(m_j)`` per column of the group (module docstring), ``(n_g, k)``."""
    means = group_shrunk_means(group, T_g)
    if not group.vector:
        return invert_activation(group.family, means[:, 0])[:, None]
    fallback = _interior(group, T_g).expand_as(means)
    inverse = group.family.inverse_mean
    if inverse is None:
        return fallback.clone()
    with torch.no_grad():
        B = inverse(means)
    ok = torch.isfinite(B).all(-1) & group.in_domain(B)
    return torch.where(ok[:, None], B, fallback)


def block_initial_offsets(columns: ColumnFamilies, T: Tensor) -> Tensor:
    """The offsets ``B`` (``(D,)``, eta order) of every group's :func:`group_offsets`."""
    parts = [group_offsets(g, T[:, g.index.to(T.device)]) for g in columns.groups]
    return columns._assemble_eta(parts)


def _whitening_factors(columns: ColumnFamilies, B: Tensor) -> list[Tensor]:
    """``L_j`` with ``L_j L_j^T = C_j(B_j)`` per group, each ``(n_g, k, k)``."""
    return [torch.linalg.cholesky(g.covariance(g.eta(B))) for g in columns.groups]


def block_whitened_residuals(columns: ColumnFamilies, T: Tensor, B: Tensor) -> Tensor:
    """``R_sj = L_j^{-1} (T_sj - mu_j(B_j))``, ``(N, D)`` in eta order."""
    parts = []
    for g, L in zip(columns.groups, _whitening_factors(columns, B), strict=True):
        resid = T[:, g.index.to(T.device)] - g.mean(g.eta(B))  # (N, n_g, k)
        solved = torch.linalg.solve_triangular(L, resid[..., None], upper=False)
        parts.append(solved[..., 0])
    return columns._assemble_eta(parts)


def block_initial_loadings(
    columns: ColumnFamilies, T: Tensor, B: Tensor, latent_dim: int, gain: float = INIT_GAIN
) -> Tensor:
    """``W`` (``D x l``) from the SVD of the whitened residuals (module docstring); signs
    fixed as the scalar ``initial_loadings`` (largest entry of each singular vector > 0)."""
    n = T.shape[0]
    R = block_whitened_residuals(columns, T, B)
    _, s, vh = torch.linalg.svd(R, full_matrices=False)
    r = min(latent_dim, s.shape[0])
    v = vh[:r].T
    sign = torch.sign(v.gather(0, v.abs().argmax(0, keepdim=True)))
    v = v * torch.where(sign == 0, torch.ones_like(sign), sign)
    M = torch.zeros(columns.natural_dim, latent_dim, dtype=T.dtype, device=T.device)
    M[:, :r] = v * (gain * s[:r] / math.sqrt(n))
    W = torch.zeros_like(M)
    for g, L in zip(columns.groups, _whitening_factors(columns, B), strict=True):
        index = g.index.to(T.device)
        W[index] = torch.linalg.solve_triangular(L.mT, M[index], upper=True)
    return W


def block_initial_parameters(
    columns: ColumnFamilies, T: Tensor, latent_dim: int
) -> tuple[Tensor, Tensor]:
    """``(W, B)``: :func:`block_initial_loadings` at :func:`block_initial_offsets`."""
    B = block_initial_offsets(columns, T)
    return block_initial_loadings(columns, T, B, latent_dim), B


def block_joint_objective(
    columns: ColumnFamilies,
    T: Tensor,
    Z: Tensor,
    W: Tensor,
    B: Tensor,
    lam: float,
    weight_decay: float,
) -> float:
    """``F(Z, W, B)`` of the module docstring (``+inf`` if some ``eta_j`` leaves its domain)."""
    eta = Z @ W.T + B
    if not bool(columns.in_domain(eta).all()):
        return math.inf
    data_term = columns.log_partition(eta).sum() - (T * eta).sum()
    prior = 0.5 * lam * Z.square().sum() + 0.5 * weight_decay * (
        W.square().sum() + B.square().sum()
    )
    return float((data_term + prior) / T.shape[0])


def block_loadings_gradient(
    columns: ColumnFamilies, T: Tensor, Z: Tensor, W: Tensor, B: Tensor, weight_decay: float
) -> tuple[Tensor, Tensor]:
    """``(dF/dW, dF/dB)`` of the module docstring, shapes ``(D, l)`` and ``(D,)``."""
    n = T.shape[0]
    resid = columns.mean(Z @ W.T + B) - T
    return (resid.T @ Z + weight_decay * W) / n, (resid.sum(0) + weight_decay * B) / n


__all__ = [
    "block_initial_loadings",
    "block_initial_offsets",
    "block_initial_parameters",
    "block_joint_objective",
    "block_loadings_gradient",
    "block_whitened_residuals",
    "group_offsets",
    "group_shrunk_means",
]
