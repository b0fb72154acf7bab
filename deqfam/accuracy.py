"""Measure generated code against mpmath: is what ``generate`` ships accurate?

The generated module's torch functions ``log_partition``, ``activation`` and
``activation_grad`` (what actually ships, stable primitives and all) are evaluated in float64
on a grid over the family's domain that reaches the far tails (|eta| up to 700 where the
domain is unbounded, to 1e-8 from a finite end), and compared with the ORIGINAL spec
expressions A, A', A'' (plain SymPy, no stable rewriting) evaluated by mpmath. The plain
forms cancel badly in the tails, so each reference value is computed at 40 digits and again
at twice that, doubling until two successive precisions agree to 1e-25 relative (at most 4000
digits; an exact 0 only once the precision covers the worst cancellation, ``_mp_value``).

Tolerance: a point is accurate when |got - ref| <= RTOL |ref| + ATOL with RTOL = 1e-8 and
ATOL = 1e-290. float64 carries 16 digits; the primitives are accurate to ~1e-14 relative and
the closed forms lose at most ~1e3 to cancellation near their switch points, so 1e-8 leaves a
wide margin while catching the failures that matter (inf/nan for a finite mean, a variance
32x too large). ATOL only absorbs reference values near the bottom of the float64 range;
near a zero of A or A' (e.g. the Gaussian's A = eta^2/2 at 0) an eps-level absolute error
would need |ref| < 1e-8 at a grid point to trip the test, and none of the built-ins do.
A reference value beyond the largest double is met by +-inf (nothing better is possible).

This is the wiring layer (it imports torch and SymPy-derived data), so it lives in deqfam/.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from types import ModuleType

import mpmath
import numpy as np
import torch

from deqfam.derive.family import Family

RTOL = 1e-8
ATOL = 1e-290
#: |eta| reached in an unbounded direction (e^700 ~ 1e304 is still a double).
TAIL = 700.0
#: mpmath precisions (decimal digits): start, and the cap of the doubling.
DPS_START, DPS_MAX = 40, 4000
#: two successive precisions must agree to this relative difference.
REF_AGREE = 1e-25

ROLES = (
    ("log_partition", "A", "A"),
    ("activation", "sigma", "sigma = A'"),
    ("activation_grad", "dsigma", "sigma' = A''"),
)


class InaccurateCodeError(ValueError):
    """The generated code misses the mpmath reference by more than the tolerance."""


@dataclass(frozen=True)
class BadRange:
    """A run of consecutive grid points where one function misses the tolerance."""

    role: str
    lo: float
    hi: float
    worst_eta: float
    got: float
    ref: float
    rel_error: float

    def format(self) -> str:
        what = (
            f"returns {self.got!r} where the true value is {self.ref:.6g}"
            if not math.isfinite(self.got)
            else f"relative error {self.rel_error:.2g} (got {self.got:.6g}, true {self.ref:.6g})"
        )
        span = f"eta = {self.lo:g}" if self.lo == self.hi else f"eta in [{self.lo:g}, {self.hi:g}]"
        return f"{self.role}: {span}: worst at eta = {self.worst_eta:g}, {what}"


@dataclass
class AccuracyReport:
    """Outcome of :func:`measure`: the grid, worst errors, and the failing ranges."""

    name: str
    grid: np.ndarray
    worst: dict[str, float] = field(default_factory=dict)
    bad: list[BadRange] = field(default_factory=list)
    unreferenced: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad

    def summary(self) -> str:
        worst = ", ".join(f"{k} {v:.1g}" for k, v in self.worst.items())
        return (
            f"{len(self.grid)} points on eta in [{self.grid[0]:g}, {self.grid[-1]:g}] against "
            f"mpmath; tolerance {RTOL:g} relative (+{ATOL:g}); worst relative error: {worst}"
        )

    def format_text(self) -> str:
        lines = [f"accuracy of the generated code for {self.name}: " + self.summary()]
        if self.unreferenced:
            lines.append(f"  ({self.unreferenced} points had no mpmath reference and were skipped)")
        lines += [f"  INACCURATE {b.format()}" for b in self.bad]
        lines += [f"  numeric warning during generation: {w}" for w in self.warnings]
        return "\n".join(lines)


def measurement_grid(lo: float, hi: float) -> np.ndarray:
    """Points strictly inside (lo, hi): a linear core, geometric tails out to |eta| = 700,
    and geometric approaches to 1e-8 from each finite end."""
    parts: list[np.ndarray] = []
    if math.isfinite(lo) and math.isfinite(hi):
        width = hi - lo
        parts.append(lo + width * np.linspace(0.02, 0.98, 25))
        parts.append(lo + np.geomspace(1e-8, 0.5 * width, 12))
        parts.append(hi - np.geomspace(1e-8, 0.5 * width, 12))
    else:
        c = hi - 10.0 if math.isfinite(hi) else (lo + 10.0 if math.isfinite(lo) else 0.0)
        parts.append(np.linspace(c - 10.0, c + 10.0, 41))
        far = np.geomspace(20.0, TAIL, 8)
        if not math.isfinite(lo):
            parts.append(c - far)
        if not math.isfinite(hi):
            parts.append(c + far)
        for end, sign in ((lo, 1.0), (hi, -1.0)):
            if math.isfinite(end):
                parts.append(end + sign * np.geomspace(1e-8, 20.0, 10))
    grid = np.unique(np.concatenate(parts))
    return grid[(grid > lo) & (grid < hi)]


def _cancellation_dps(eta: float) -> int:
    """Digits at which an exact 0 is believed: the plain derivatives of A can cancel terms of
    size ~e^(2|eta|) (e.g. e^(2 eta) e^(2 e^eta)/(e^(e^eta) - 1)^2 against
    e^eta e^(e^eta)/(e^(e^eta) - 1) in the zero-truncated Poisson A'') down to exactly 0 at
    low precision; measured to need at most 0.9 |eta| digits (eta = -700 settles at 640)."""
    return DPS_START + int(abs(eta))


def _agree(val, prev) -> bool:
    return val == prev or abs(val - prev) <= REF_AGREE * max(abs(val), abs(prev))


def _mp_value(fn, eta: float) -> float | None:
    """fn(eta) with doubling precision (from 40 digits) until two successive precisions
    agree to REF_AGREE; total cancellation gives the same exact 0 at both, so a 0 is only
    believed from ``_cancellation_dps`` digits on. A failure at low precision (e^u - 1
    rounding to 0) just doubles. None if the value is complex or never settles."""
    prev = None
    dps = DPS_START
    while dps <= DPS_MAX:
        with mpmath.workdps(dps):
            try:
                val = mpmath.mpmathify(fn(mpmath.mpf(eta)))
            except (ValueError, ArithmeticError, TypeError, NameError):
                # NameError: a symbolic derivative with no mpmath form (DiracDelta at a kink)
                val = None
            if isinstance(val, mpmath.mpc):
                if abs(val.imag) > 1e-20 * max(1, abs(val.real)):
                    return None
                val = val.real
            if val is not None and prev is not None and _agree(val, prev):
                if val != 0 or dps >= _cancellation_dps(eta):
                    return _to_float(val)
            prev = val
        dps *= 2
    return None


def _to_float(val) -> float:
    """An mpf as a double, with +-inf beyond the largest double (not an OverflowError)."""
    if mpmath.isinf(val) or abs(val) > mpmath.mpf(np.finfo(float).max):
        return math.copysign(math.inf, float(mpmath.sign(val)))
    return float(val)


def reference_values(fam: Family, grid: np.ndarray) -> dict[str, np.ndarray]:
    """mpmath values of the ORIGINAL A, A', A'' on ``grid`` (NaN where undefined)."""
    out = {}
    for _, attr, label in ROLES:
        fn = fam.mpmath_function(getattr(fam, attr))
        vals = [_mp_value(fn, float(e)) for e in grid]
        out[label] = np.array([math.nan if v is None else v for v in vals])
    return out


def _errors(got: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(relative error |got - ref| / |ref|, failing mask); inf error where got is not finite
    but ref is; points without a reference (NaN) never fail."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        same_inf = np.isinf(ref) & (got == ref)
        diff = np.abs(got - ref)
        rel = np.where(same_inf, 0.0, diff / np.maximum(np.abs(ref), ATOL))
        rel = np.where(np.isfinite(got) | same_inf, rel, np.inf)
        fails = ~(same_inf | (diff <= RTOL * np.abs(ref) + ATOL)) & ~np.isnan(ref)
    return np.where(np.isnan(ref), np.nan, rel), fails


def _bad_ranges(label: str, grid, got, ref, rel, bad) -> list[BadRange]:
    """Group consecutive failing grid points into ranges, each with its worst point."""
    out: list[BadRange] = []
    i = 0
    while i < len(grid):
        if not bad[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(grid) and bad[j + 1]:
            j += 1
        w = i + int(np.argmax(np.nan_to_num(rel[i : j + 1], nan=np.inf)))
        out.append(
            BadRange(label, grid[i], grid[j], grid[w], float(got[w]), float(ref[w]), float(rel[w]))
        )
        i = j + 1
    return out


def measure(fam: Family, module: ModuleType) -> AccuracyReport:
    """Evaluate ``module``'s torch functions on the grid and compare with mpmath."""
    grid = measurement_grid(*fam.domain_floats)
    refs = reference_values(fam, grid)
    report = AccuracyReport(fam.name, grid)
    x = torch.tensor(grid, dtype=torch.float64)
    for fn_name, _, label in ROLES:
        with torch.no_grad():
            got = getattr(module, fn_name)(x).detach().cpu().numpy().astype(float)
        ref = refs[label]
        rel, fails = _errors(got, ref)
        report.unreferenced = max(report.unreferenced, int(np.isnan(ref).sum()))
        known = rel[~np.isnan(rel)]
        report.worst[label] = float(known.max()) if known.size else math.nan
        report.bad += _bad_ranges(label, grid, got, ref, rel, fails)
    return report


@contextlib.contextmanager
def captured_numeric_warnings(sink: list[str]):
    """Count RuntimeWarnings (numpy's overflow/invalid value messages) by message and append
    one-line summaries to ``sink`` instead of letting them print raw. Only the counts are
    kept (a grid scan can raise millions), other warnings are shown as usual."""
    counts: Counter[str] = Counter()
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def _count(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, RuntimeWarning):
                counts[str(message)] += 1
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = _count
        warnings.simplefilter("always", RuntimeWarning)
        try:
            yield
        finally:
            sink += [f"{msg} (x{n})" for msg, n in sorted(counts.items())]


def measure_rendered(fam: Family) -> AccuracyReport:
    """Render the torch module into a temporary folder, import it and :func:`measure` it
    (the module's name is its content digest, so the final import reuses it)."""
    import tempfile

    from deqfam.api import import_generated
    from deqfam.derive.codegen import write_generated

    with tempfile.TemporaryDirectory(prefix="deqfam-accuracy-") as tmp:
        paths = write_generated(fam, tmp, targets=("torch",))
        module = import_generated(paths["torch"])
    return measure(fam, module)
