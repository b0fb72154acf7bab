"""Exact minimisation of the joint objective along the invariance ``eta = Z W^T``.

For any invertible ``G`` (``l x l``), ``Z' = Z G^{-T}``, ``W' = W G`` leave ``eta = Z W^T + B``
and so the data term unchanged, while the priors become
``lam/2 tr(G^{-1} P G^{-T}) + w/2 tr(G^T Q G)`` with ``P = Z^T Z``, ``Q = W^T W``. Their
minimum is where the factors are balanced, ``lam Z'^T Z' = w W'^T W'``, i.e.
``X = G G^T`` solves ``lam P = X (w Q) X``: ``X = Q~^{-1/2} (Q~^{1/2} P~ Q~^{1/2})^{1/2}
Q~^{-1/2}`` (``P~ = lam P``, ``Q~ = w Q``), and ``G = X^{1/2}`` is the symmetric choice (no
rotation). Alternating minimisation drifts along this direction only slowly (the data term
does not see it), so :func:`rebalance` takes that step exactly, at ``O(N l^2)`` cost.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _sym_power(M: Tensor, power: float) -> Tensor:
    """``M^power`` of a symmetric positive definite matrix by its eigendecomposition."""
    vals, vecs = torch.linalg.eigh(M)
    return (vecs * vals.clamp_min(torch.finfo(M.dtype).tiny) ** power) @ vecs.T


def balancing_transform(Z: Tensor, W: Tensor, lam: float, weight_decay: float) -> Tensor | None:
    """``G`` of the module docstring, or ``None`` when no finite balance exists (``w = 0``,
    or ``Z`` or ``W`` is rank-deficient to working precision)."""
    if weight_decay <= 0:
        return None
    P, Q = lam * (Z.T @ Z), weight_decay * (W.T @ W)
    floor = 1e3 * torch.finfo(Z.dtype).eps
    for M in (P, Q):
        vals = torch.linalg.eigvalsh(M)
        if not bool(vals[0] > floor * vals[-1].clamp_min(torch.finfo(Z.dtype).tiny)):
            return None
    q_half, q_minus_half = _sym_power(Q, 0.5), _sym_power(Q, -0.5)
    X = q_minus_half @ _sym_power(q_half @ P @ q_half, 0.5) @ q_minus_half
    return _sym_power(0.5 * (X + X.T), 0.5)


def rebalance(Z: Tensor, W: Tensor, lam: float, weight_decay: float) -> tuple[Tensor, Tensor]:
    """``(Z G^{-T}, W G)`` with the balancing ``G`` (unchanged when there is none)."""
    G = balancing_transform(Z, W, lam, weight_decay)
    if G is None:
        return Z, W
    return torch.linalg.solve(G, Z.T).T, W @ G


__all__ = ["balancing_transform", "rebalance"]
