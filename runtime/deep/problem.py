"""The stacked objective ``J(z_1..z_L)`` of deep exponential-family PCA, its gradient and its
block-tridiagonal Hessian (formulas in the ``runtime.deep`` package docstring)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .functions import LayerFunctions


def row_norm(x: Tensor) -> Tensor:
    return torch.linalg.vector_norm(x, dim=-1)


class StackProblem:
    """``J``, its gradient and its Hessian blocks (module docstring) for a batch of data ``Y``.

    ``Ws[l]`` is ``(d_l, d_{l+1})`` and ``bs[l]`` is ``(d_l,)`` in 0-based layer numbering
    (``Ws[0]`` maps ``z_1`` to the data's natural parameters). Latents are lists of per-layer
    tensors ``(..., N, d_{l+1})``; extra leading dimensions (batched line-search trials) are
    allowed in :meth:`value`.
    """

    def __init__(
        self,
        layers: Sequence[LayerFunctions],
        Ws: Sequence[Tensor],
        bs: Sequence[Tensor],
        lam: float,
        Y: Tensor,
    ) -> None:
        if not lam > 0:
            raise ValueError(f"lam must be > 0, got {lam!r}")
        self.layers, self.Ws, self.bs, self.lam, self.Y = list(layers), list(Ws), list(bs), lam, Y
        self.sizes = [W.shape[1] for W in self.Ws]
        self.abs_W = [W.abs() for W in self.Ws]

    @property
    def depth(self) -> int:
        return len(self.layers)

    def split(self, z: Tensor) -> list[Tensor]:
        return list(torch.split(z, self.sizes, dim=-1))

    def observations(self, zs: Sequence[Tensor]) -> list[Tensor]:
        """``x_l``: the data for the first layer, ``z_{l}`` for layer ``l + 1``."""
        return [self.Y, *zs[:-1]]

    def etas(self, zs: Sequence[Tensor]) -> list[Tensor]:
        return [z @ W.T + b for z, W, b in zip(zs, self.Ws, self.bs, strict=True)]

    def value(self, zs: Sequence[Tensor], etas: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """``J`` (``+inf`` where some ``eta`` leaves its domain) and the magnitude of its terms."""
        top = zs[-1]
        quad = 0.5 * self.lam * (top * top).sum(-1)
        value, scale = quad, quad.clone()
        outside = torch.zeros_like(quad, dtype=torch.bool)
        for l, (layer, x, eta) in enumerate(
            zip(self.layers, self.observations(zs), etas, strict=True)
        ):
            if not layer.whole_line:
                inside = layer.in_domain(eta)
                outside = outside | ~inside.all(-1)
                eta = eta.masked_fill(~inside, layer.interior_point())
            core = layer.core(x, eta)
            value = value - core.sum(-1)
            scale = scale + core.abs().sum(-1)
            if l > 0:
                log_h = layer.log_base(x)
                value = value - log_h.sum(-1)
                scale = scale + log_h.abs().sum(-1)
        value = torch.where(torch.isfinite(value), value, math.inf)
        return value.masked_fill(outside, math.inf), scale

    def gradient(
        self, zs: Sequence[Tensor], etas: Sequence[Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Per layer ``g_l`` and the magnitude of the terms that cancel in it."""
        xs = self.observations(zs)
        grads, scales = [], []
        for l, layer in enumerate(self.layers):
            W = self.Ws[l]
            g = -(layer.score_eta(xs[l], etas[l]) @ W)
            scale = row_norm(layer.scale_eta(xs[l], etas[l]) @ self.abs_W[l])
            if l + 1 < self.depth:
                above = self.layers[l + 1]
                g = g - above.score_x(zs[l], etas[l + 1])
                scale = scale + row_norm(above.scale_x(zs[l], etas[l + 1]))
            else:
                g = g + self.lam * zs[l]
                scale = scale + self.lam * row_norm(zs[l])
            grads.append(g)
            scales.append(scale)
        return grads, scales

    def hessian_blocks(
        self, zs: Sequence[Tensor], etas: Sequence[Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Diagonal blocks ``H_ll`` (``N x d_l x d_l``) and super-diagonal ``H_l,l+1``."""
        xs = self.observations(zs)
        diag, off = [], []
        for l, layer in enumerate(self.layers):
            W = self.Ws[l]
            curv = -layer.d2_eta(xs[l], etas[l])
            block = (curv[..., None] * W).mT @ W  # W^T diag(curv) W, batched
            if l + 1 < self.depth:
                above = self.layers[l + 1]
                block = block + torch.diag_embed(-above.d2_x(zs[l], etas[l + 1]))
                cross = -above.d2_xeta(zs[l], etas[l + 1])
                off.append(cross[..., None] * self.Ws[l + 1])
            else:
                block = block + self.lam * torch.eye(W.shape[1], dtype=W.dtype, device=W.device)
            diag.append(block)
        return diag, off
