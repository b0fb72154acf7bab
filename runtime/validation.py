"""Input validation for data handed to layers and to ``deqfam fit``: clear errors that name
the offending row and column, before any work (or any output file) is done.

Two kinds of bad input are told apart:

* :class:`DataError`: observations that do not fit the model (shape, dtype, non-finite values,
  values outside the family's support ``y in Y``);
* :class:`DomainError` (a ``DataError``): a canonical parameter ``eta = W z + B`` (or a given
  ``eta``) outside the open interval where the log-partition ``A`` is finite, where ``A``,
  ``sigma = A'`` and ``sigma' = A''`` would silently return NaN or inf.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import torch
from torch import Tensor


class DataError(ValueError):
    """Data that does not fit the model or the family's support."""


class DomainError(DataError):
    """A canonical parameter outside the family's domain (where ``A(eta)`` is infinite)."""


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


#: supports that constrain the values (the others, ``real``, accept every finite value)
_CONSTRAINED_SUPPORTS = frozenset(
    {
        "binary",
        "plus_minus_one",
        "integers",
        "nonnegative_integers",
        "positive_integers",
        "positive_real",
        "unit_interval",
    }
)

#: largest |y| accepted: 2**53, beyond which float64 no longer holds every integer (a count's
#: integrality is meaningless there) and the loss's terms in y overflow long before 1e300
MAX_ABS_OBSERVATION = 2.0**53


def validate_observations(
    y: Tensor,
    support: str,
    data_dim: int | None = None,
    what: str = "data",
    support_max: float | None = None,
) -> Tensor:
    """Check a 2-D float tensor of observations: shape, finiteness, magnitude (|y| <= 2**53),
    the family's support, and ``y <= support_max`` when the family's parameters bound it
    (binomial: ``y <= n``).

    Returns the tensor (unchanged). Raises :class:`DataError` naming the first bad entry
    (row and column) and how many bad entries there are.
    """
    if not isinstance(y, Tensor):
        raise DataError(f"{what} must be a torch tensor, got {type(y).__name__}")
    if y.ndim != 2:
        raise DataError(f"{what} must be 2-D (samples x features), got shape {tuple(y.shape)}")
    if y.shape[0] == 0:
        raise DataError(f"{what} is empty (0 rows)")
    if y.shape[1] == 0:
        raise DataError(f"{what} has no columns")
    if data_dim is not None and y.shape[1] != data_dim:
        raise DataError(f"{what} has {y.shape[1]} columns, the model expects {data_dim}")
    if not torch.is_floating_point(y):
        raise DataError(f"{what} must be floating point, got {y.dtype}")
    # one pass for finiteness and magnitude: min and max (NaN propagates through both, and
    # NaN and +-inf fail -2**53 <= min, max <= 2**53); the entry-by-entry diagnosis only when
    # it fails: the batch is checked on every solve (aminmax allocates nothing of y's size)
    low, high = torch.aminmax(y.detach())
    if not (-MAX_ABS_OBSERVATION <= float(low) and float(high) <= MAX_ABS_OBSERVATION):
        _raise_non_finite_or_huge(y, what)
    if support not in _CONSTRAINED_SUPPORTS and support_max is None:
        return y
    bad = _support_violation(y, support)
    if support_max is not None:
        bad = bad | (y > support_max)
        support = f"{support}, at most {support_max:g}"
    if bool(bad.any()):
        r, c = _first_bad(bad)
        raise DataError(
            f"{what} value {float(y[r, c])!r} at row {r}, column {c} is outside the "
            f"family's support ({support}); {int(bad.sum())} such value(s) in all"
        )
    return y


def _raise_non_finite_or_huge(y: Tensor, what: str) -> None:
    """Raise :class:`DataError` naming the first non-finite entry of ``y``, else the first
    entry larger in magnitude than 2**53 (the caller found one of the two)."""
    finite = torch.isfinite(y)
    if not bool(finite.all()):
        r, c = _first_bad(~finite)
        raise DataError(
            f"{what} has a non-finite value {float(y[r, c])} at row {r}, column {c}; "
            f"{int((~finite).sum())} such value(s) in all"
        )
    huge = y.abs() > MAX_ABS_OBSERVATION
    r, c = _first_bad(huge)
    raise DataError(
        f"{what} value {float(y[r, c])!r} at row {r}, column {c} is larger in magnitude "
        f"than 2**53 = {MAX_ABS_OBSERVATION:.4g} (rescale the data); {int(huge.sum())} "
        "such value(s) in all"
    )


def validate_canonical(
    eta: Tensor, domain: tuple[float, float], family: str = "", what: str = "eta"
) -> Tensor:
    """Check that every canonical parameter in ``eta`` lies strictly inside ``domain``.

    ``eta`` is a vector (one entry per column) or a matrix (samples x columns). Raises
    :class:`DomainError` naming the first entry outside (NaN counts as outside).
    """
    lo, hi = (float(domain[0]), float(domain[1]))
    inside = (eta > lo) & (eta < hi)
    if bool(inside.all()):
        return eta
    outside = ~inside
    n_bad = int(outside.sum())
    fam = f" of family {family!r}" if family else ""
    lo_s = "-inf" if math.isinf(lo) else f"{lo:g}"
    hi_s = "inf" if math.isinf(hi) else f"{hi:g}"
    if eta.ndim == 1:
        (c,) = torch.nonzero(outside)[0].tolist()
        where = f"{what}[{c}] = {float(eta[c]):.6g} (column {c})"
    else:
        r, c = _first_bad(outside.reshape(eta.shape[0], -1))
        where = f"{what} = {float(eta.reshape(eta.shape[0], -1)[r, c]):.6g} at row {r}, column {c}"
    raise DomainError(
        f"{where} is outside the domain ({lo_s}, {hi_s}){fam}, where the log-partition is "
        f"finite; {n_bad} such value(s) in all"
    )


def validate_finite_parameters(named: dict[str, Tensor], what: str = "model") -> None:
    """Raise :class:`DataError` naming the first non-finite entry of any named tensor."""
    for name, value in named.items():
        finite = torch.isfinite(value.detach())
        if not bool(finite.all()):
            idx = torch.nonzero(~finite)[0].tolist()
            raise DataError(
                f"{what} parameter {name}{idx} = {float(value.detach()[tuple(idx)])} is not "
                f"finite; {int((~finite).sum())} such value(s) in all"
            )


def parameters_pass(W: Tensor, B: Tensor, domain: tuple[float, float]) -> bool:
    """Fast sufficient test that ``W`` is finite and every entry of ``B`` lies strictly inside
    ``domain``, by three reductions and no tensor of their size: ``sum(W)`` is finite only if
    every entry is (NaN and +-inf propagate), and ``lo < min(B)``, ``max(B) < hi`` (NaN fails
    both). False does not mean bad (the sum of large finite entries can overflow): the caller
    then runs the exact checks (``validate_finite_parameters``, ``validate_canonical``)."""
    with torch.no_grad():
        total = float(W.sum())
        low, high = torch.aminmax(B)
    return math.isfinite(total) and float(domain[0]) < float(low) and float(high) < float(domain[1])


class CheckMemo:
    """The tensors that last passed a check, so that an unchanged tensor is not checked again:
    each is held by weak reference (a freed tensor whose ``id`` is reused never matches) with
    its version counter (which every in-place operation bumps: autograd's own test for a
    modified tensor), storage pointer, shape and strides. Writes that bypass the version
    counter (through ``.data``, or a NumPy array sharing the storage) are not seen, as autograd
    does not see them. Pickles and copies as empty."""

    def __init__(self) -> None:
        self._entries: tuple[tuple[Any, tuple[Any, ...]], ...] = ()

    @staticmethod
    def _stamp(t: Tensor) -> tuple[Any, ...]:
        return (t._version, t.data_ptr(), t.shape, t.stride())

    def unchanged(self, *tensors: Tensor) -> bool:
        """Whether ``tensors`` are the remembered ones, none modified since."""
        if len(tensors) != len(self._entries):
            return False
        return all(
            ref() is t and stamp == self._stamp(t)
            for (ref, stamp), t in zip(self._entries, tensors, strict=True)
        )

    def remember(self, *tensors: Tensor) -> None:
        """Remember ``tensors`` as they are now (they have just passed the check)."""
        self._entries = tuple((weakref.ref(t), self._stamp(t)) for t in tensors)

    def forget(self) -> None:
        self._entries = ()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._entries = ()

    def __deepcopy__(self, memo: dict[int, Any]) -> CheckMemo:
        return CheckMemo()


__all__ = [
    "CheckMemo",
    "DataError",
    "DomainError",
    "parameters_pass",
    "validate_canonical",
    "validate_finite_parameters",
    "validate_observations",
]


def check_choice(kind: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming ``value`` (with the closest valid choice) unless it is one
    of ``choices``: a misspelt option must fail, not be ignored."""
    if value not in choices:
        import difflib

        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.4)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown {kind} {value!r}{hint} (choose one of {', '.join(choices)})")
