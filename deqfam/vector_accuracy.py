"""Measure a vector family's generated mean and covariance against mpmath (the vector
counterpart of :mod:`deqfam.accuracy`, which ``deqfam generate`` runs for a scalar family).

The generated torch module's ``log_partition``, ``mean`` and ``covariance`` (what ships:
stable forms, custom ops) are evaluated in float64 at points of the domain box, and compared
with the ORIGINAL A, grad A and Hess A (plain SymPy, no stable rewriting) evaluated by mpmath at 60
digits and again at 120; a point where the two precisions disagree beyond 1e-25 relative
has no reference and is skipped (counted).

Points: per natural parameter, five values reaching towards each end of its interval (1e-6
from a finite end, out to 100 units from a finite end with the other end infinite, +-50 on
the whole line), combined as a product grid, at most :data:`MAX_POINTS` of them (a fixed,
seeded subsample beyond that).

Tolerance, as for scalar families (``deqfam.accuracy.RTOL``, ``ATOL``): A and a mean entry are
accurate when |got - ref| <= RTOL |ref| + ATOL; a covariance entry (i, j) when
|got - ref| <= RTOL sqrt(C_ii C_jj) + ATOL, i.e. relative to the matrix's own scale (an
off-diagonal entry can be zero where the diagonal is not).
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp
import torch

from deqfam.accuracy import ATOL, RTOL
from deqfam.derive.vector_derivation import VectorFamily

MAX_POINTS = 40
_DPS = (60, 120)
_REF_AGREE = 1e-25


def axis_points(lo: float, hi: float) -> list[float]:
    """Five values strictly inside (lo, hi) reaching towards both ends."""
    if math.isfinite(lo) and math.isfinite(hi):
        w = hi - lo
        return [lo + w * f for f in (1e-6, 0.05, 0.5, 0.95, 1 - 1e-6)]
    if math.isfinite(lo):
        return [lo + d for d in (1e-6, 1e-2, 1.0, 10.0, 100.0)]
    if math.isfinite(hi):
        return [hi - d for d in (1e-6, 1e-2, 1.0, 10.0, 100.0)]
    return [-50.0, -3.0, 0.0, 0.7, 50.0]


def box_points(fam: VectorFamily) -> np.ndarray:
    """The measurement points, shape (n, k)."""
    axes = [axis_points(lo, hi) for lo, hi in fam.domain_floats]
    grid = np.array(list(itertools.product(*axes)), dtype=float)
    if len(grid) > MAX_POINTS:
        keep = np.random.default_rng(0).choice(len(grid), MAX_POINTS, replace=False)
        grid = grid[np.sort(keep)]
    return grid


@dataclass
class VectorAccuracyReport:
    """Worst scaled errors of the mean and the covariance, and the failing points."""

    name: str
    points: int
    worst: dict[str, float] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)
    unreferenced: int = 0

    @property
    def ok(self) -> bool:
        return not self.bad

    def summary(self) -> str:
        worst = ", ".join(f"{k} {v:.1g}" for k, v in self.worst.items())
        return (
            f"{self.points} points of the domain box against mpmath; tolerance {RTOL:g} "
            f"relative (+{ATOL:g}); worst scaled error: {worst}"
        )

    def format_text(self) -> str:
        lines = [f"accuracy of the generated code for {self.name}: " + self.summary()]
        if self.unreferenced:
            lines.append(f"  ({self.unreferenced} points had no mpmath reference and were skipped)")
        lines += [f"  INACCURATE {b}" for b in self.bad]
        return "\n".join(lines)


def _references(fam: VectorFamily):
    """point -> (A, grad A, Hess A) as floats from the highest precision, or None when the
    two precisions disagree."""
    k = fam.k
    exprs = (
        [fam.plain(fam.A)]
        + [fam.plain(g) for g in fam.grad]
        + [fam.plain(fam.hessian[i][j]) for i in range(k) for j in range(k)]
    )
    fn = sp.lambdify(fam.etas, exprs, modules="mpmath")

    def at(point):
        values = []
        for dps in _DPS:
            with mpmath.workdps(dps):
                try:
                    values.append(fn(*[mpmath.mpf(float(x)) for x in point]))
                except (ValueError, ZeroDivisionError, OverflowError):
                    return None
        lo, hi = values
        for a, b in zip(lo, hi, strict=True):
            if abs(a - b) > _REF_AGREE * abs(b) + mpmath.mpf(10) ** -300:
                return None
        return float(hi[0]), [float(v) for v in hi[1 : k + 1]], [float(v) for v in hi[k + 1 :]]

    return at


def measure_vector(fam: VectorFamily, module) -> VectorAccuracyReport:
    """Evaluate ``module.mean`` / ``module.covariance`` at :func:`box_points` and compare."""
    k = fam.k
    points = box_points(fam)
    eta = torch.tensor(points, dtype=torch.float64)
    with torch.no_grad():
        got_a = module.log_partition(eta).numpy()
        got_mean = module.mean(eta).numpy()
        got_cov = module.covariance(eta).reshape(len(points), k * k).numpy()
    reference = _references(fam)
    worst = {"A": 0.0, "mean": 0.0, "covariance": 0.0}
    report = VectorAccuracyReport(fam.name, len(points), worst)
    for p, point in enumerate(points):
        ref = reference(point)
        if ref is None:
            report.unreferenced += 1
            continue
        ref_a, ref_mean, ref_cov = ref
        diag = [abs(ref_cov[i * k + i]) for i in range(k)]
        checks = [("A", got_a[p], ref_a, abs(ref_a))]
        checks += [("mean", got_mean[p][i], ref_mean[i], abs(ref_mean[i])) for i in range(k)]
        checks += [
            ("covariance", got_cov[p][i * k + j], ref_cov[i * k + j], math.sqrt(diag[i] * diag[j]))
            for i in range(k)
            for j in range(k)
        ]
        for role, got, want, scale in checks:
            err = abs(got - want)
            scaled = err / scale if scale > 0 else (0.0 if err == 0 else math.inf)
            if not math.isfinite(got):
                scaled = math.inf
            report.worst[role] = max(report.worst[role], scaled)
            if not err <= RTOL * scale + ATOL:
                report.bad.append(
                    f"{role} at eta = {tuple(float(x) for x in point)}: "
                    f"got {float(got)!r}, true {want:.6g}"
                )
    return report


def measure_vector_rendered(fam: VectorFamily) -> VectorAccuracyReport:
    """Render the torch module into a temporary folder, import it and measure it."""
    import tempfile

    from deqfam.api import import_generated
    from deqfam.derive.vector_codegen import write_vector_generated

    with tempfile.TemporaryDirectory(prefix="deqfam-accuracy-") as tmp:
        module = import_generated(write_vector_generated(fam, tmp)["torch"])
    return measure_vector(fam, module)


def vector_accuracy_gate(fam: VectorFamily, require_accurate: bool) -> bool:
    """Measure and report; an inaccurate family is refused (False) under
    ``--require-accurate`` and written with a loud warning otherwise."""
    report = measure_vector_rendered(fam)
    if report.ok:
        print(f"accuracy {report.summary()}")
        return True
    head = "refused" if require_accurate else "WARNING"
    print(f"deqfam: {head}: generated code is INACCURATE.\n{report.format_text()}", file=sys.stderr)
    if require_accurate:
        print(
            "deqfam: nothing written (drop --require-accurate to write it anyway)", file=sys.stderr
        )
    return not require_accurate


__all__ = [
    "VectorAccuracyReport",
    "box_points",
    "measure_vector",
    "measure_vector_rendered",
    "vector_accuracy_gate",
]
