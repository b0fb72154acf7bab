"""Kernels, kGLM initialisation and Assumption 2.

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

Caveat on Appendix E: the box truncation ``1(|x1 - x1'| <= r)`` is *not* a PSD kernel (on three
collinear pixels with ``r = 1`` its matrix has eigenvalue ``1 - sqrt(2)``), so a box-truncated
kernel matrix need not be PSD. ``Truncation(taper="bartlett")`` (``prod (1 - |d|/(r+1))_+``, the
Fejer kernel, whose Fourier transform is non-negative) is PSD with the same support.

Modules: ``coordinate`` (the kernels), ``convolution`` (Corollary 11), ``contraction``
(Assumption 2, spectral norms, ``lam_for``), ``init`` (``kglm_init``).
"""

from .contraction import (
    ContractionReport,
    check_contraction,
    lam_for,
    spectral_norm,
    spectral_norm_power,
)
from .convolution import (
    conv_filter,
    conv_matrix,
    conv_singular_values,
    conv_spectral_norm,
    pixel_coordinates,
)
from .coordinate import (
    ChannelCovariance,
    Kernel,
    Periodic,
    ProductKernel,
    ScaledKernel,
    SquaredExponential,
    SumKernel,
    Truncation,
    WhiteNoise,
    as_points,
)
from .init import kglm_init

__all__ = [
    "ChannelCovariance",
    "ContractionReport",
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
    "lam_for",
    "pixel_coordinates",
    "spectral_norm",
    "spectral_norm_power",
]
