"""The inner problem of Theorem 1 (6), batched over samples:

    J_s(z) = lam/2 |z|^2 - z^T W^T T(Y_s) + 1^T A(W z + B),

strongly convex (``A`` strictly convex, ``lam > 0``), with gradient (the left side of (9))
``F(z) = lam z - W^T (T(Y_s) - sigma(W z + B))`` and Hessian (the Laplace precision of
Appendix D) ``H(z) = lam I + W^T diag(sigma'(W z + B)) W``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..family import TorchFamily, as_torch_family
from .result import row_norm


class InnerProblem:
    """``J_s(z) = lam/2|z|^2 - z^T W^T T_s + 1^T A(W z + B)`` for a batch of samples.

    ``T`` is ``T(Y)`` of shape ``(N, d)``, ``W`` is ``(d, l)``, ``B`` is ``(d,)``; latents are rows
    of ``z`` with shape ``(N, l)`` so ``eta = z W^T + B`` has shape ``(N, d)``.
    """

    def __init__(self, family: Any, W: Tensor, B: Tensor, T: Tensor, lam: float) -> None:
        if lam <= 0:
            raise ValueError(f"lam must be > 0 (strong convexity), got {lam!r}")
        self.family: TorchFamily = as_torch_family(family)
        self.W, self.B, self.T, self.lam = W, B, T, float(lam)
        self.WtT = T @ W  # rows W^T T(Y_s), reused by every objective evaluation
        self.abs_W = W.abs()
        self.abs_T = T.abs()
        # Value substituted for out-of-domain eta before evaluating A, so no NaN is produced
        # in a branch that torch.where then discards.
        self.safe_eta = self.family.interior_point()
        self.whole_line = self.family.domain == (-math.inf, math.inf)

    def eta(self, z: Tensor) -> Tensor:
        return z @ self.W.T + self.B

    def value(self, z: Tensor, eta: Tensor) -> tuple[Tensor, Tensor]:
        """``J`` (``+inf`` where ``eta`` leaves the domain) and the magnitude of its terms.

        ``z``/``eta`` may carry extra leading dimensions (batched trial steps).
        """
        if self.whole_line:
            # Domain R: no masking needed; overflow/NaN make J non-finite, which the line
            # search rejects.
            a = self.family.log_partition(eta)
            inside_all = None
        else:
            inside = self.family.in_domain(eta)
            a = self.family.log_partition(eta.masked_fill(~inside, self.safe_eta))
            inside_all = inside.all(-1)
        quad = 0.5 * self.lam * (z * z).sum(-1)
        lin = (z * self.WtT).sum(-1)
        value = quad - lin + a.sum(-1)
        if inside_all is not None:
            value = value.masked_fill(~inside_all, math.inf)
        scale = quad + lin.abs() + a.abs().sum(-1)
        return value, scale

    def gradient(self, z: Tensor, eta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``F(z) = lam z - W^T (T - sigma(eta))`` (eq. (9)), the activation, and the magnitude
        ``lam|z| + | |W|^T (|T| + |sigma|) |`` of the terms that cancel in ``F``."""
        sigma = self.family.activation(eta)
        grad = self.lam * z - (self.T - sigma) @ self.W
        scale = self.lam * row_norm(z) + row_norm((self.abs_T + sigma.abs()) @ self.abs_W)
        return grad, sigma, scale

    def hessian(self, eta: Tensor) -> Tensor:
        """``H = lam I + W^T diag(sigma'(eta)) W`` (Appendix D), shape ``(N, l, l)``."""
        sp = self.family.activation_grad(eta)
        return hessian_from_slope(self.W, sp, self.lam)

    def hvp(self, v: Tensor, sp: Tensor) -> Tensor:
        """``H v = lam v + W^T (sigma' * (W v))`` without forming ``H``."""
        return self.lam * v + (sp * (v @ self.W.T)) @ self.W

    def check_feasible_start(self, z0: Tensor) -> None:
        """Raise ``ValueError`` unless ``W z0 + B`` is strictly inside the domain for every row."""
        require_inside_start(
            self.family.in_domain(self.eta(z0)).all(-1),
            f"W z0 + B outside the domain {self.family.domain} of family {self.family.name!r}",
            "choose B (or z0) so that eta starts strictly inside the domain",
        )


def require_inside_start(inside: Tensor, where: str, remedy: str) -> None:
    """Raise ``ValueError`` unless every sample's start is inside (``inside``: ``(N,)`` bool),
    naming how many samples are outside and the first ten (one host sync when all are in)."""
    if not bool(inside.all()):
        bad = torch.nonzero(~inside).flatten().tolist()
        raise ValueError(
            f"the starting point puts {where} for {len(bad)} samples (first: {bad[:10]}); {remedy}"
        )


def hessian_from_slope(W: Tensor, sp: Tensor, lam: float) -> Tensor:
    """``lam I + W^T diag(sp_s) W`` for every row ``sp_s`` of ``sp`` (shape ``(N, l, l)``)."""
    l = W.shape[1]
    # one GEMM (N x d) @ (d x l^2) with the outer products W_i W_j of the rows of W: several
    # times faster than einsum("nd,di,dj->nij"), which torch does not map to one GEMM
    outer = (W[:, :, None] * W[:, None, :]).reshape(W.shape[0], l * l)
    gram = (sp @ outer).reshape((*sp.shape[:-1], l, l))
    return gram + lam * torch.eye(l, dtype=W.dtype, device=W.device)
