"""Assumption 2 / Proposition 4: spectral norms of dense matrices (exact and power iteration),
``lam`` for a target ``|K/lam|``, and the contraction report of a kGLM-DEQ layer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .convolution import conv_spectral_norm
from .init import is_conv_layer


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
    W3 = getattr(layer, "C3" if is_conv_layer(layer) else "W3")
    if is_conv_layer(layer):
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
