"""Kernels, kGLM initialisation, Assumption 2 and an independent kGLM solver.

Seed ``declarative-nets-kglm-deq``:

* Coordinate kernels ``k(x, x')`` (squared exponential, periodic, white noise, channel
  covariance, truncation; sums and products) give the kernel matrices ``K = k(X, X)`` and
  ``k(X~, X)`` of Theorem 3.
* ``kglm_init`` sets the DEQ (7)-(8) to the kGLM it solves: ``W1 = W3 = -K/lam``, ``W2 = K/lam``,
  ``V1 = -k(X~,X)/lam``, ``V2 = k(X~,X)/lam`` (Theorem 3, Corollary 6), biases zero.
* Corollary 11 / Appendix E: a kernel stationary in pixel coordinates and truncated at radius
  ``r`` makes ``K`` a multi-channel convolution; ``conv_filter`` reads the filters off the kernel
  and ``conv_matrix`` writes a filter back as the dense matrix (an independent construction).
* Assumption 2: ``|K/lam| sup|A''| sup|I + diag rho'| < 1`` gives a contraction (Proposition 4).
  ``check_contraction`` evaluates the bound with the spectral norm: power iteration for dense
  matrices, and for convolutions the exact FFT method of Sedghi, Gupta & Long (2019): a circular
  convolution is block-diagonalised by the 2-D DFT, so its singular values are those of the
  ``C x C`` matrices ``P(u, v) = sum_{p,q} w[:, :, p, q] e^{-2 pi i (pu/H + qv/W)}``.
* ``kglm_newton``: Newton / IRLS on the representer coefficients ``alpha`` of (5) (Appendix A.2,
  C.1), in numpy and written independently of the DEQ code, to verify Theorem 3.

Caveat on Appendix E: the box truncation ``1(|x1 - x1'| <= r)`` is *not* a PSD kernel (on three
collinear pixels with ``r = 1`` its matrix has eigenvalue ``1 - sqrt(2)``), so a box-truncated
kernel matrix need not be PSD. ``Truncation(taper="bartlett")`` (``prod (1 - |d|/(r+1))_+``, the
Fejer kernel, whose Fourier transform is non-negative) is PSD with the same support.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

# --------------------------------------------------------------------------------------------
# Coordinate kernels
# --------------------------------------------------------------------------------------------


def as_points(X: Any) -> Tensor:
    """Coordinates as a float64 tensor of shape ``(n, d)`` (a 1-D input is ``(n, 1)``)."""
    X = torch.as_tensor(X, dtype=torch.float64)
    if X.dim() == 1:
        X = X[:, None]
    if X.dim() != 2:
        raise ValueError(f"coordinates must have shape (n, d) or (n,), got {tuple(X.shape)}")
    return X


class Kernel:
    """A kernel ``k(x, x')`` on coordinates; ``k(X1, X2)`` is the ``(n1, n2)`` matrix.

    Kernels combine with ``+`` and ``*`` (with each other or with a non-negative number); sums
    and products of PSD kernels are PSD.
    """

    def __call__(self, X1: Any, X2: Any = None) -> Tensor:
        A = as_points(X1)
        B = A if X2 is None else as_points(X2)
        if A.shape[1] != B.shape[1]:
            raise ValueError(f"coordinate dimensions differ: {A.shape[1]} vs {B.shape[1]}")
        return self._eval(A, B)

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __add__(self, other: Kernel) -> Kernel:
        if not isinstance(other, Kernel):
            return NotImplemented
        return SumKernel(self, other)

    def __mul__(self, other: Kernel | float) -> Kernel:
        if isinstance(other, Kernel):
            return ProductKernel(self, other)
        if isinstance(other, int | float) and other >= 0:
            return ScaledKernel(self, float(other))
        return NotImplemented

    __rmul__ = __mul__


def _select(X: Tensor, dims: Sequence[int] | None) -> Tensor:
    return X if dims is None else X[:, list(dims)]


def _differences(A: Tensor, B: Tensor, dims: Sequence[int] | None) -> Tensor:
    """``(n1, n2, d)`` coordinate differences ``x - x'`` (exact, no ``|x|^2 - 2x.x'`` trick)."""
    return _select(A, dims)[:, None, :] - _select(B, dims)[None, :, :]


def _sqdist(A: Tensor, B: Tensor, dims: Sequence[int] | None) -> Tensor:
    return _differences(A, B, dims).square().sum(-1)


@dataclass(frozen=True)
class SquaredExponential(Kernel):
    """``variance * exp(-|x - x'|^2 / (2 lengthscale^2))`` on the coordinates ``dims``."""

    lengthscale: float = 1.0
    variance: float = 1.0
    dims: tuple[int, ...] | None = None

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        return self.variance * torch.exp(-_sqdist(A, B, self.dims) / (2 * self.lengthscale**2))


@dataclass(frozen=True)
class Periodic(Kernel):
    """``variance * exp(-2 sin^2(pi |x - x'| / period) / lengthscale^2)`` (MacKay's periodic
    kernel; ``|.|`` Euclidean). With ``period = pi`` and ``lengthscale = sqrt(2)`` it is
    ``exp(-sin^2 |x - x'|)``, the periodic factor of the sequence task of section 4."""

    period: float = 1.0
    lengthscale: float = 1.0
    variance: float = 1.0
    dims: tuple[int, ...] | None = None

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        d = _sqdist(A, B, self.dims).sqrt()
        s = torch.sin(math.pi * d / self.period)
        return self.variance * torch.exp(-2.0 * s.square() / self.lengthscale**2)


@dataclass(frozen=True)
class WhiteNoise(Kernel):
    """``variance * 1(x == x')``: jitter on the diagonal of ``k(X, X)`` (Assumption 1)."""

    variance: float = 1e-8
    dims: tuple[int, ...] | None = None

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        same = (_differences(A, B, self.dims) == 0).all(-1)
        return self.variance * same.to(torch.float64)


@dataclass(frozen=True)
class ChannelCovariance(Kernel):
    """``B[x_dim, x'_dim]`` for an integer channel coordinate ``dim`` and a PSD ``C x C``
    matrix ``B`` (a coregionalisation kernel)."""

    matrix: Any
    dim: int = -1

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        M = torch.as_tensor(np.asarray(self.matrix, dtype=np.float64))
        i = A[:, self.dim].round().long()
        j = B[:, self.dim].round().long()
        return M[i[:, None], j[None, :]]


@dataclass(frozen=True)
class Truncation(Kernel):
    """Compact support of radius ``radius`` in the coordinates ``dims`` (Appendix E (18)).

    ``taper="box"``: ``1(max_k |x_k - x'_k| <= radius)`` (the seed's ``h1 h2``; not PSD in
    general). ``taper="bartlett"``: ``prod_k max(0, 1 - |x_k - x'_k| / (radius + 1))`` (PSD).
    """

    radius: float = 1.0
    dims: tuple[int, ...] | None = None
    taper: str = "box"

    def __post_init__(self) -> None:
        if self.taper not in ("box", "bartlett"):
            raise ValueError(f"taper must be 'box' or 'bartlett', got {self.taper!r}")

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        d = _differences(A, B, self.dims).abs()
        if self.taper == "box":
            return (d <= self.radius).all(-1).to(torch.float64)
        return (1.0 - d / (self.radius + 1.0)).clamp_min(0.0).prod(-1)


@dataclass(frozen=True)
class FunctionKernel(Kernel):
    """A kernel given as a function ``fn(X1, X2) -> (n1, n2)`` tensor (float64 coordinates)."""

    fn: Callable[[Tensor, Tensor], Tensor]

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        return torch.as_tensor(self.fn(A, B), dtype=torch.float64)


@dataclass(frozen=True)
class SumKernel(Kernel):
    left: Kernel
    right: Kernel

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        return self.left._eval(A, B) + self.right._eval(A, B)


@dataclass(frozen=True)
class ProductKernel(Kernel):
    left: Kernel
    right: Kernel

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        return self.left._eval(A, B) * self.right._eval(A, B)


@dataclass(frozen=True)
class ScaledKernel(Kernel):
    kernel: Kernel
    scale: float

    def _eval(self, A: Tensor, B: Tensor) -> Tensor:
        return self.scale * self.kernel._eval(A, B)


# --------------------------------------------------------------------------------------------
# Convolutional form (Corollary 11, Appendix E)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Spectral norms of dense matrices
# --------------------------------------------------------------------------------------------


def spectral_norm_power(
    W: Any,
    *,
    tol: float = 1e-14,
    max_iter: int = 10_000,
    generator: torch.Generator | None = None,
) -> float:
    """``|W|_2`` by power iteration on ``W^T W`` (stopped when the estimate changes by less
    than ``tol`` relatively). The estimate increases monotonically towards ``|W|_2`` from below
    (for a start vector not orthogonal to the top singular vector)."""
    W = torch.as_tensor(W).detach().to(torch.float64)
    if W.numel() == 0:
        return 0.0
    gen = generator or torch.Generator().manual_seed(0)
    v = torch.randn(W.shape[1], generator=gen, dtype=torch.float64)
    v = v / v.norm()
    est = 0.0
    for _ in range(max_iter):
        u = W @ v
        new = float(u.norm())
        if new == 0.0:
            return 0.0
        v = W.T @ u
        v = v / v.norm()
        if abs(new - est) <= tol * new:
            return new
        est = new
    return est


def spectral_norm(W: Any, method: str = "exact") -> float:
    """``|W|_2``: ``"exact"`` (LAPACK singular values) or ``"power"`` (power iteration)."""
    if method == "exact":
        W = torch.as_tensor(W).detach().to(torch.float64)
        return float(torch.linalg.matrix_norm(W, ord=2)) if W.numel() else 0.0
    if method == "power":
        return spectral_norm_power(W)
    raise ValueError(f"method must be 'exact' or 'power', got {method!r}")


def lam_for(
    K: Any,
    C: float,
    *,
    image_shape: tuple[int, int] | None = None,
    padding_mode: str = "zeros",
) -> float:
    """``lam = |K| / C`` (section 4), so that ``|K/lam| = C``; with ``C sup|A''| (1 + sup
    rho') < 1`` Assumption 2 holds. ``K`` is a matrix, or a filter ``(C, C, kh, kw)`` with
    ``image_shape = (H, W)`` (FFT norm; an upper bound for zero padding)."""
    if not C > 0:
        raise ValueError(f"C must be > 0, got {C!r}")
    K = torch.as_tensor(K)
    if K.dim() == 4:
        if image_shape is None:
            raise ValueError("a convolutional K needs image_shape=(H, W)")
        norm = conv_spectral_norm(K, *image_shape, padding_mode=padding_mode)
    else:
        norm = spectral_norm(K, "exact")
    return norm / C


# --------------------------------------------------------------------------------------------
# Initialisation (Theorem 3, Corollaries 6 and 11)
# --------------------------------------------------------------------------------------------


def _is_conv(layer: Any) -> bool:
    return hasattr(layer, "C1") and hasattr(layer, "D1")


@torch.no_grad()
def kglm_init(layer: Any, K: Any, K_cross: Any, lam: float) -> Any:
    """Initialise a kGLM-DEQ layer to solve the kGLM (5) in its forward pass (Theorem 3):

        W1 = W3 = -K/lam,  W2 = K/lam,  V1 = -K_cross/lam,  V2 = K_cross/lam,  b = c = 0.

    ``KGLMDEQ``: ``K = k(X, X)`` is ``(n, n)`` and ``K_cross = k(X~, X)`` is ``(n_out, n)``.
    ``ConvKGLMDEQ`` (Corollary 11): ``K`` and ``K_cross`` are filters ``(C, C, 2r+1, 2r+1)``
    (``conv_filter``), giving ``C1 = C3 = -K/lam`` etc. ``K_cross=None`` leaves the readout as it
    is (the paper's "naive" initialisation keeps a random readout). ``W3`` is set only when the
    layer has a prior. Returns the layer.
    """
    if not lam > 0:
        raise ValueError(f"lam must be > 0, got {lam!r}")
    conv = _is_conv(layer)
    hidden = ("C1", "C2", "C3") if conv else ("W1", "W2", "W3")
    readout = ("D1", "D2") if conv else ("V1", "V2")
    ref = getattr(layer, hidden[0])
    Kt = torch.as_tensor(K, dtype=ref.dtype, device=ref.device)
    if Kt.shape != ref.shape:
        raise ValueError(f"K must have shape {tuple(ref.shape)}, got {tuple(Kt.shape)}")
    getattr(layer, hidden[0]).copy_(-Kt / lam)
    getattr(layer, hidden[1]).copy_(Kt / lam)
    w3 = getattr(layer, hidden[2])
    if w3 is not None:
        w3.copy_(-Kt / lam)
    if K_cross is not None:
        v1 = getattr(layer, readout[0])
        Kc = torch.as_tensor(K_cross, dtype=v1.dtype, device=v1.device)
        if Kc.shape != v1.shape:
            raise ValueError(f"K_cross must have shape {tuple(v1.shape)}, got {tuple(Kc.shape)}")
        v1.copy_(-Kc / lam)
        getattr(layer, readout[1]).copy_(Kc / lam)
    for name in ("b", "c"):
        bias = getattr(layer, name, None)
        if bias is not None and (name == "b" or K_cross is not None):
            bias.zero_()
    return layer


# --------------------------------------------------------------------------------------------
# Assumption 2 / Proposition 4
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContractionReport:
    """Assumption 2 evaluated for a layer (Proposition 4).

    The Jacobian of (7) is ``diag(sigma'(eta)) (W1 + W3 diag rho'(z))``, so with the spectral norm
    ``|DH| <= sup|A''| (|W1| + |W3| sup rho')``; for the kGLM initialisation ``W1 = W3 = -K/lam``
    this is the seed's ``|K/lam| sup|A''| sup|I + diag rho'|``. ``guaranteed`` means the bound is
    ``< 1``: the map is a contraction with a unique fixed point.

    Attributes:
        norm_W1, norm_W3: spectral norms (``norm_W3 = 0`` without a prior).
        sup_slope: ``sup A''`` used (the family's, or the caller's bound on an invariant set).
        sup_rho_grad: ``sup rho'`` (0 without a prior).
        bound: the contraction-factor bound.
        guaranteed: ``bound < 1``.
        norm_method: ``"power"``/``"exact"`` (dense), ``"fft"`` (circular convolution, exact) or
            ``"fft-upper-bound"`` (zero-padded convolution).
    """

    norm_W1: float
    norm_W3: float
    sup_slope: float
    sup_rho_grad: float
    bound: float
    guaranteed: bool
    norm_method: str

    def __str__(self) -> str:
        verdict = "holds: unique fixed point" if self.guaranteed else "violated: no guarantee"
        return (
            f"Assumption 2 {verdict} (bound {self.bound:.4g} = sup A'' {self.sup_slope:.4g} x "
            f"(|W1| {self.norm_W1:.4g} + |W3| {self.norm_W3:.4g} x sup rho' "
            f"{self.sup_rho_grad:.4g}); norms by {self.norm_method})"
        )


def check_contraction(
    layer: Any, *, sup_slope: float | None = None, norm_method: str = "power"
) -> ContractionReport:
    """Evaluate Assumption 2 for a ``KGLMDEQ`` (``norm_method`` ``"power"`` or ``"exact"``) or a
    ``ConvKGLMDEQ`` (FFT method of Sedghi et al.; exact for circular padding, an upper bound for
    zero padding).

    ``sup_slope`` overrides the family's ``sup A''`` (needed when it is infinite, e.g. Poisson:
    a bound of ``A''`` over a set of natural parameters the iteration cannot leave).
    """
    family = layer.family
    slope = family.sup_activation_grad if sup_slope is None else float(sup_slope)
    slope = math.inf if slope is None else float(slope)
    W3 = getattr(layer, "C3" if _is_conv(layer) else "W3")
    if _is_conv(layer):
        mode = layer.padding_mode
        method = "fft" if mode == "circular" else "fft-upper-bound"

        def norm(W: Tensor) -> float:
            return conv_spectral_norm(W, layer.height, layer.width, mode)

        n1 = norm(layer.C1)
    else:
        method = norm_method

        def norm(W: Tensor) -> float:
            return spectral_norm(W, norm_method)

        n1 = norm(layer.W1)
    if W3 is None or layer.prior is None:
        n3, rho_sup = 0.0, 0.0
    else:
        n3 = norm(W3)
        sup = layer.prior.sup_rho_grad
        rho_sup = math.inf if sup is None else float(sup)
    lip = n1 + (n3 * rho_sup if n3 > 0 else 0.0)
    bound = slope * lip if lip > 0 else 0.0
    return ContractionReport(n1, n3, slope, rho_sup, bound, bound < 1.0, method)


# --------------------------------------------------------------------------------------------
# Independent kGLM solver (Appendix A.2 / C.1)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KGLMNewtonResult:
    """Solution of the kGLM (5): ``alpha``, ``f = K alpha``, the final stationarity residual
    ``max|T - A'(f) - Q'(f) - lam alpha|`` and the Newton iterations taken."""

    alpha: np.ndarray
    f: np.ndarray
    residual: float
    iterations: int
    converged: bool


def kglm_newton(
    K: Any,
    t: Any,
    lam: float,
    A: Callable[[np.ndarray], np.ndarray],
    dA: Callable[[np.ndarray], np.ndarray],
    d2A: Callable[[np.ndarray], np.ndarray],
    Q: Callable[[np.ndarray], np.ndarray] | None = None,
    dQ: Callable[[np.ndarray], np.ndarray] | None = None,
    d2Q: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    tol: float = 1e-13,
    max_iter: int = 100,
) -> KGLMNewtonResult:
    """Newton's method (IRLS) on the representer coefficients of the kGLM (5),

        L(alpha) = -alpha^T K t + 1^T A(K alpha) + 1^T Q(K alpha) + lam/2 alpha^T K alpha,

    with gradient ``-K r``, ``r = t - A'(K alpha) - Q'(K alpha) - lam alpha``, and Hessian
    ``K (D K + lam I)``, ``D = diag(A'' + Q'')``, so the Newton step solves
    ``(D K + lam I) d = r`` (Appendix C.1's update, without forming ``K^{-1}``), followed by a
    backtracking Armijo line search on ``L`` (skipped once the predicted decrease is below the
    rounding level of ``L``). Pure numpy; ``t = T(Y)`` is one sample ``(n,)``.
    Stops when ``max|r| <= tol (1 + max|t|)``.
    """
    K = np.asarray(K, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    n = t.shape[0]
    zero = np.zeros_like

    def q_terms(f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if Q is None:
            return zero(f), zero(f), zero(f)
        return Q(f), dQ(f), d2Q(f)

    def objective(a: np.ndarray) -> float:
        f = K @ a
        return float(-a @ (K @ t) + np.sum(A(f)) + np.sum(q_terms(f)[0]) + 0.5 * lam * a @ f)

    alpha = np.zeros(n)
    scale = 1.0 + float(np.max(np.abs(t))) if n else 1.0
    steps = 0
    for _ in range(max_iter):
        f = K @ alpha
        _, dq, d2q = q_terms(f)
        r = t - dA(f) - dq - lam * alpha
        if (float(np.max(np.abs(r))) if n else 0.0) <= tol * scale:
            break
        D = d2A(f) + d2q
        step = np.linalg.solve(D[:, None] * K + lam * np.eye(n), r)
        slope = -float((K @ r) @ step)  # directional derivative of L, < 0
        current = objective(alpha)
        s = 1.0
        # Below rounding level of L the Armijo test is noise: take the full (quadratically
        # convergent) Newton step; otherwise backtrack.
        if -slope > 1e-12 * (1.0 + abs(current)):
            for _ in range(60):
                if objective(alpha + s * step) <= current + 1e-4 * s * slope:
                    break
                s *= 0.5
            else:  # pragma: no cover - no representable decrease along a descent direction
                break
        alpha = alpha + s * step
        steps += 1
    f = K @ alpha
    _, dq, _ = q_terms(f)
    residual = float(np.max(np.abs(t - dA(f) - dq - lam * alpha))) if n else 0.0
    return KGLMNewtonResult(alpha, f, residual, steps, residual <= tol * scale)


__all__ = [
    "ChannelCovariance",
    "ContractionReport",
    "FunctionKernel",
    "KGLMNewtonResult",
    "Kernel",
    "Periodic",
    "ProductKernel",
    "ScaledKernel",
    "SquaredExponential",
    "SumKernel",
    "Truncation",
    "WhiteNoise",
    "as_points",
    "check_contraction",
    "conv_filter",
    "conv_matrix",
    "conv_singular_values",
    "conv_spectral_norm",
    "kglm_init",
    "kglm_newton",
    "lam_for",
    "pixel_coordinates",
    "spectral_norm",
    "spectral_norm_power",
]
