"""Input validation for data handed to layers and to ``deqfam fit``: clear errors that name
the offending row and column, before any work (or any output file) is done."""

from __future__ import annotations

import torch
from torch import Tensor


class DataError(ValueError):
    """Data that does not fit the model or the family's support."""


def _first_bad(mask: Tensor) -> tuple[int, int]:
    idx = torch.nonzero(mask)[0].tolist()
    return (idx[0], idx[1]) if len(idx) == 2 else (idx[0], 0)


def _support_violation(y: Tensor, support: str) -> Tensor:
    """Boolean mask of entries outside ``support``."""
    integer = y == torch.round(y)
    if support == "binary":
        return (y != 0) & (y != 1)
    if support == "plus_minus_one":
        return (y != -1) & (y != 1)
    if support == "integers":
        return ~integer
    if support == "nonnegative_integers":
        return ~integer | (y < 0)
    if support == "positive_integers":
        return ~integer | (y < 1)
    if support == "positive_real":
        return y <= 0
    if support == "unit_interval":
        return (y < 0) | (y > 1)
    return torch.zeros_like(y, dtype=torch.bool)


def validate_observations(
    y: Tensor, support: str, data_dim: int | None = None, what: str = "data"
) -> Tensor:
    """Check a 2-D float tensor of observations: shape, finiteness, the family's support.

    Returns the tensor (unchanged). Raises :class:`DataError` naming the first bad entry.
    """
    if not isinstance(y, Tensor):
        raise DataError(f"{what} must be a torch tensor, got {type(y).__name__}")
    if y.ndim != 2:
        raise DataError(f"{what} must be 2-D (samples x features), got shape {tuple(y.shape)}")
    if y.shape[0] == 0:
        raise DataError(f"{what} is empty")
    if data_dim is not None and y.shape[1] != data_dim:
        raise DataError(f"{what} has {y.shape[1]} columns, the model expects {data_dim}")
    if not torch.is_floating_point(y):
        raise DataError(f"{what} must be floating point, got {y.dtype}")
    finite = torch.isfinite(y)
    if not bool(finite.all()):
        r, c = _first_bad(~finite)
        raise DataError(f"{what} has a non-finite value {float(y[r, c])} at row {r}, column {c}")
    bad = _support_violation(y, support)
    if bool(bad.any()):
        r, c = _first_bad(bad)
        raise DataError(
            f"{what} value {float(y[r, c])!r} at row {r}, column {c} is outside the "
            f"family's support ({support}); {int(bad.sum())} such value(s) in all"
        )
    return y
