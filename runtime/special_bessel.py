"""The exponentially scaled modified Bessel function e^-|x| I_n(x) in torch, any real x.

Generated modules reach it as ``special.besselie(x, n)``: the stable form of ``besseli``
(``derive/bessel_stable.py``) writes ``I_n(x) = e^|x| besselie(x, n)`` so that
``log I_0(x) = |x| + log besselie(x, 0)`` and ratios ``I_1/I_0`` never overflow (``I_0``
overflows a double beyond x ~ 713).

* n = 0, 1: ``torch.special.i0e`` / ``i1e`` (Chebyshev fits good to ~1e-16, with autograd).
* n >= 2, |x| <= 30: the power series sum_k (x/2)^(2k+n) / (k! (k+n)!) times e^-|x|
  (positive terms, no cancellation; 80 terms reach below 1e-17 relative at |x| = 30).
* n >= 2, |x| > 30: upward recurrence e^-x I_{m+1} = e^-x I_{m-1} - (2m/x) e^-x I_m from
  i0e, i1e (stable while m < x, and the orders used stay far below 30).

I_n(-x) = (-1)^n I_n(x). Plain torch expressions, so autograd differentiates them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: where the power series hands over to the recurrence (written as a literal in the
#: functions below, which TorchScript compiles: it cannot read module-level floats)
BESSEL_SWITCH = 30.0


def _series_scaled(a: Tensor, n: int) -> Tensor:
    """e^-a I_n(a) for 0 <= a <= BESSEL_SWITCH by the power series."""
    q = 0.25 * a * a
    term = torch.pow(0.5 * a, n) / math.factorial(n)
    total = term
    for k in range(1, 80):
        term = term * q / (k * (k + n))
        total = total + term
    return torch.exp(-a) * total


def _recurrence_scaled(a: Tensor, n: int) -> Tensor:
    """e^-a I_n(a) for a > BESSEL_SWITCH by the upward recurrence from i0e, i1e."""
    prev, cur = torch.special.i0e(a), torch.special.i1e(a)
    for m in range(1, n):
        prev, cur = cur, prev - (2.0 * m) / a * cur
    return cur


def besselie(x: Tensor, n: int) -> Tensor:
    """e^-|x| I_n(x) for an integer order n >= 0 and real x."""
    n = abs(int(n))
    if n == 0:
        return torch.special.i0e(x)
    if n == 1:
        return torch.special.i1e(x)
    a = torch.abs(x)
    far = a > 30.0
    # each branch sees safe inputs only, so the unselected one cannot put NaN into gradients
    near_value = _series_scaled(torch.where(far, torch.zeros_like(a), a), n)
    far_value = _recurrence_scaled(torch.where(far, a, torch.full_like(a, 60.0)), n)
    value = torch.where(far, far_value, near_value)
    if n % 2 == 1:
        value = torch.where(x < 0, -value, value)
    return value


__all__ = ["BESSEL_SWITCH", "besselie"]
