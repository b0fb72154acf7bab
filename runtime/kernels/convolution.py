"""Convolutional form of stationary truncated kernels (Corollary 11, Appendix E): pixel
coordinates, the filters read off a kernel, the dense matrix of a filter, and the exact FFT
singular values of a circular convolution (Sedghi, Gupta & Long 2019)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .coordinate import Kernel


def pixel_coordinates(channels: int, height: int, width: int) -> Tensor:
    """Rows ``(i, j, c)`` for every pixel-channel, in the order of a flattened ``(C, H, W)``
    image (``Y.reshape(N, -1)``), so ``k(X, X)`` acts on flattened images."""
    c, i, j = torch.meshgrid(
        torch.arange(channels), torch.arange(height), torch.arange(width), indexing="ij"
    )
    return torch.stack([i.flatten(), j.flatten(), c.flatten()], dim=1).to(torch.float64)


def conv_filter(kernel: Kernel, channels: int, radius: int, *, check: bool = True) -> Tensor:
    """Filters ``w`` of shape ``(C, C, 2r+1, 2r+1)`` with ``w[c, c', p, q] = k((r, r, c),
    (p, q, c'))`` (Corollary 11: the filter entries are the kernel between the centre pixel and
    its neighbours; cross-correlation convention of ``conv2d``).

    The kernel must act on ``(i, j, c)`` rows (``pixel_coordinates``), be stationary in the pixel
    coordinates and vanish beyond pixel offset ``r`` (multiply by ``Truncation(r, dims=(0, 1))``);
    with ``check`` both are verified (a shifted anchor gives the same filter; the ring at offset
    ``r + 1`` is zero) and a ``ValueError`` is raised otherwise.
    """
    k = 2 * radius + 1
    offsets = torch.arange(k, dtype=torch.float64)
    p, q = torch.meshgrid(offsets, offsets, indexing="ij")

    def read(anchor: tuple[float, float]) -> Tensor:
        out = torch.empty(channels, channels, k, k, dtype=torch.float64)
        for c in range(channels):
            centre = torch.tensor(
                [[anchor[0] + radius, anchor[1] + radius, c]], dtype=torch.float64
            )
            for c2 in range(channels):
                pts = torch.stack(
                    [
                        anchor[0] + p.flatten(),
                        anchor[1] + q.flatten(),
                        torch.full((k * k,), float(c2)),
                    ],
                    dim=1,
                ).to(torch.float64)
                out[c, c2] = kernel(centre, pts).reshape(k, k)
        return out

    w = read((0.0, 0.0))
    if check:
        shifted = read((3.0, -2.0))
        if not torch.allclose(w, shifted, rtol=1e-12, atol=1e-300):
            raise ValueError("kernel is not stationary in the pixel coordinates (dims 0, 1)")
        edge = range(-radius - 1, radius + 2)
        ring = torch.tensor(
            [[s * (radius + 1), t] for s in (-1, 1) for t in edge]
            + [[t, s * (radius + 1)] for s in (-1, 1) for t in edge],
            dtype=torch.float64,
        )
        for c in range(channels):
            for c2 in range(channels):
                centre = torch.tensor([[0.0, 0.0, c]], dtype=torch.float64)
                pts = torch.cat([ring, torch.full((ring.shape[0], 1), float(c2))], dim=1)
                if bool((kernel(centre, pts) != 0).any()):
                    raise ValueError(
                        f"kernel does not vanish beyond pixel offset {radius}; multiply it by "
                        f"Truncation({radius}, dims=(0, 1))"
                    )
    return w


def conv_matrix(weight: Any, height: int, width: int, padding_mode: str = "zeros") -> np.ndarray:
    """The dense ``(C H W) x (C H W)`` matrix of the 'same' multi-channel convolution
    (Definitions 9-10) with filters ``weight`` (``(C_out, C_in, kh, kw)``, odd sizes), acting on
    flattened ``(C, H, W)`` images; built entry by entry from the definition
    ``out[c, i, j] = sum_{c', p, q} w[c, c', p, q] x[c', i + p - rh, j + q - rw]`` (zero outside
    the image, or indices mod ``H``/``W`` for ``"circular"``)."""
    w = np.asarray(torch.as_tensor(weight).detach().cpu(), dtype=np.float64)
    cout, cin, kh, kw = w.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"filter sizes must be odd, got {kh}x{kw}")
    rh, rw = kh // 2, kw // 2
    M = np.zeros((cout, height, width, cin, height, width))
    ii, jj = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    for p in range(kh):
        for q in range(kw):
            si, sj = ii + p - rh, jj + q - rw
            if padding_mode == "circular":
                si, sj, ok = si % height, sj % width, np.ones_like(si, dtype=bool)
            elif padding_mode == "zeros":
                ok = (si >= 0) & (si < height) & (sj >= 0) & (sj < width)
            else:
                raise ValueError(
                    f"padding_mode must be 'zeros' or 'circular', got {padding_mode!r}"
                )
            for c in range(cout):
                for c2 in range(cin):
                    np.add.at(M[c, :, :, c2], (ii[ok], jj[ok], si[ok], sj[ok]), w[c, c2, p, q])
    return M.reshape(cout * height * width, cin * height * width)


def conv_singular_values(weight: Any, height: int, width: int) -> Tensor:
    """All singular values of the *circular* 'same' convolution with ``weight`` on ``H x W``
    images (Sedghi, Gupta & Long 2019, Theorem 6): the filter is wrapped onto the ``H x W``
    torus, transformed by the 2-D DFT, and the ``C_out x C_in`` matrix at each of the ``H W``
    frequencies contributes its singular values. Shape ``(H, W, min(C_out, C_in))``."""
    w = torch.as_tensor(weight).detach().to(torch.float64).cpu()
    cout, cin, kh, kw = w.shape
    P = torch.zeros(cout, cin, height, width, dtype=torch.float64)
    for p in range(kh):
        for q in range(kw):
            P[:, :, p % height, q % width] += w[:, :, p, q]
    transform = torch.fft.fft2(P).permute(2, 3, 0, 1)
    return torch.linalg.svdvals(transform)


def conv_spectral_norm(
    weight: Any, height: int, width: int, padding_mode: str = "circular"
) -> float:
    """Spectral norm of the 'same' convolution with ``weight`` on ``H x W`` images by the FFT
    method. Exact for ``"circular"``. For ``"zeros"`` the operator is ``P C E`` with ``C`` the
    circular convolution on the ``(H + 2r) x (W + 2r)`` torus, ``E`` zero-embedding and ``P``
    restriction (no tap wraps onto the image), so the returned value is an upper bound."""
    w = torch.as_tensor(weight)
    if padding_mode == "circular":
        return float(conv_singular_values(w, height, width).max())
    if padding_mode == "zeros":
        kh, kw = w.shape[-2:]
        return float(conv_singular_values(w, height + kh - 1, width + kw - 1).max())
    raise ValueError(f"padding_mode must be 'zeros' or 'circular', got {padding_mode!r}")
