"""digamma and polygamma in float64 to ~1e-15 relative for x > 0, differentiable by autograd.

Why not ``torch.special.polygamma``: on CPU in float64 it misses mpmath by up to ~5e-10
relative (measured: polygamma(1, 1.5) is off by 4.6e-10), too coarse for the vector
families' covariances (beta, gamma_shape). Here, for x > 0:

* recurrence: psi^(n)(x) = psi^(n)(x + S) + (-1)^(n+1) n! sum_{j<S} (x + j)^-(n+1), S = 10;
* asymptotic series at z = x + S >= 10:
  psi(z) ~ log z - 1/(2z) - sum_k B_2k / (2k z^2k),
  psi^(n)(z) ~ (-1)^(n+1) [(n-1)!/z^n + n!/(2 z^(n+1)) + sum_k B_2k (2k+n-1)!/((2k)! z^(2k+n))],
  8 terms (measured against mpmath: below 9e-16 relative for n <= 9 on x in [1e-3, 1e3]).
Both are plain torch expressions, so autograd differentiates them, and TorchScript compiles
them (the constants are literals inside the functions: TorchScript cannot read module-level
floats, and has no generator expressions or math.factorial).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _factorial(m: int) -> float:
    """m! as a float (TorchScript has no math.factorial)."""
    out = 1.0
    for i in range(2, m + 1):
        out *= float(i)
    return out


def digamma(x: Tensor) -> Tensor:
    """psi(x) = d/dx log Gamma(x), x > 0."""
    # Bernoulli numbers B_2, B_4, ..., B_16
    b2k = [1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510]
    shift = torch.zeros_like(x)
    for j in range(10):
        shift = shift + torch.reciprocal(x + j)
    z = x + 10
    w = torch.reciprocal(z * z)
    tail = torch.zeros_like(x)
    for k in range(8):
        tail = tail + b2k[k] / (2 * (k + 1)) * torch.pow(w, k + 1)
    return torch.log(z) - 0.5 / z - tail - shift


def polygamma(n: int, x: Tensor) -> Tensor:
    """psi^(n)(x) = d^n/dx^n psi(x) for an integer n >= 0, x > 0."""
    if n == 0:
        return digamma(x)
    # Bernoulli numbers B_2, B_4, ..., B_16
    b2k = [1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510]
    sign = 1.0 if n % 2 == 1 else -1.0
    shift = torch.zeros_like(x)
    for j in range(10):
        shift = shift + torch.pow(x + j, -(n + 1))
    z = x + 10
    series = _factorial(n - 1) * torch.pow(z, -n) + 0.5 * _factorial(n) * torch.pow(z, -(n + 1))
    for k in range(1, 9):
        coef = b2k[k - 1] * _factorial(2 * k + n - 1) / _factorial(2 * k)
        series = series + coef * torch.pow(z, -(2 * k + n))
    return sign * (series + _factorial(n) * shift)


__all__ = ["digamma", "polygamma"]
