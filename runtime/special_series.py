"""Shared numerics of the special functions (``runtime/special.py`` and its sibling
modules): working precision and tail tolerance of the mpmath-built series constants, the
switch points of the piecewise functions, Horner evaluation and the assembly of piecewise
branches. Split out of ``special.py`` so that each function family can live in its own
module without importing ``special`` back."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

# ---------------------------------------------------------------------------------------
# Shared numerical helpers
# ---------------------------------------------------------------------------------------

_DPS = 40  # mpmath working precision (decimal digits) for all constants
_TAIL_TOL = 1e-17  # relative truncation tolerance for all series
_MAX_TERMS = 4000  # safety cap on any series length

#: polylog_exp: series for x <= POLYLOG_X0, expansion about 0 for POLYLOG_X0 < x < 0.
POLYLOG_X0 = -1.5
#: fermi_dirac: alternating series for x <= FERMI_DIRAC_X0, expansion about 0 above.
FERMI_DIRAC_X0 = -1.0
#: logexpm1x: Taylor series for |x| < LOGEXPM1X_THRESHOLDS[k], closed forms otherwise.
LOGEXPM1X_THRESHOLDS = (2.5, 2.5, 3.0, 3.5, 4.0, 4.0, 4.0)
#: largest derivative order accepted by logexpm1x (backward of order k needs k + 1).
LOGEXPM1X_K_MAX = len(LOGEXPM1X_THRESHOLDS) - 1


#: devices on which piecewise functions index each branch's elements (others use torch.where)
_INDEXED_DEVICES = ("cpu",)


def _horner(t: torch.Tensor, coeffs: Sequence[float]) -> torch.Tensor:
    """sum_i coeffs[i] t^i by Horner's rule (fresh tensor, t untouched)."""
    if len(coeffs) == 0:
        return torch.zeros_like(t)
    acc = torch.full_like(t, float(coeffs[-1]))
    for c in reversed(coeffs[:-1]):
        acc.mul_(t)
        if c != 0.0:
            acc.add_(float(c))
    return acc


def _assemble(
    x: torch.Tensor, pieces: Sequence[tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]]
) -> torch.Tensor:
    """Piecewise evaluation: element i gets fn(x_i) for the first (mask, fn) with mask_i true.

    Elements in no mask (NaN inputs, out-of-domain) are NaN. On CPU each branch is evaluated
    only on its own elements (boolean indexing); on other devices every branch is evaluated
    on the whole tensor and merged with ``torch.where`` (no host synchronisation).
    """
    out = torch.full_like(x, math.nan)
    if x.device.type in _INDEXED_DEVICES:
        taken = torch.zeros_like(x, dtype=torch.bool)
        for mask, fn in pieces:
            m = mask & ~taken
            taken |= m
            sub = x[m]
            if sub.numel() > 0:
                out[m] = fn(sub)
    else:
        for mask, fn in reversed(pieces):
            out = torch.where(mask, fn(x), out)
    return out


def _check_float(x: torch.Tensor, name: str) -> None:
    if not (x.is_floating_point()):
        raise TypeError(f"{name}: expected a floating-point tensor, got {x.dtype}")


def _is_integer(s: float) -> bool:
    return math.isfinite(s) and float(s).is_integer()


def _choose_terms(mags: Sequence[float], tol: float, window: int = 8) -> int:
    """Smallest n such that every |term_k| (k >= n) in the rest of ``mags`` is below tol.

    ``mags`` are bounds |c_k| r^k at the largest |argument| of the region; the terms decay
    at least geometrically beyond the checked window, so the neglected tail is a small
    multiple of tol.
    """
    n = len(mags)
    while n > 0 and mags[n - 1] < tol:
        n -= 1
    if n + window > len(mags):
        raise RuntimeError("series term count did not converge (increase the trial length)")
    return max(n, 1)
