"""Report types of the admissibility check: one :class:`Evidence` per finding, the
:class:`TiltCurve` data behind the plot, and the :class:`Report` with its verdict.

Outcomes, strengths and verdicts are the shared enums of :mod:`deqfam.vocab`; they compare
equal to (and serialise as) the plain strings the JSON and text reports have always used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from deqfam.vocab import EXIT_CODES, Finding, Outcome, Strength, Verdict

#: Per stage, the details keys holding its representative (worst) value, first found wins.
VALUE_KEYS: dict[str, tuple[str, ...]] = {
    "convexity": ("min_A2",),
    "series": ("min_coefficient",),
    "bound": ("max_re_dA",),
    "base_measure": ("most_negative_mass", "most_negative_density"),
    "exp_convexity": ("min_eigenvalue",),
}


@dataclass
class Evidence:
    """One finding: ``stage`` (which test), ``outcome`` (pass/fail/inconclusive/skipped),
    ``strength`` (``proven``/``numerical``/None), a one-line ``summary`` and ``details``
    (the stage's JSON payload: grids, tolerances, worst values, witnesses)."""

    stage: str
    outcome: Outcome
    strength: Strength | None
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def finding(self) -> Finding:
        """This evidence in the shared vocabulary of :mod:`deqfam.vocab`; its value is the
        stage's worst value (:data:`VALUE_KEYS`) when the details record one."""
        strength = None if self.strength is None else Strength(self.strength)
        value = next(
            (self.details[k] for k in VALUE_KEYS.get(self.stage, ()) if k in self.details), None
        )
        value = None if value is None else float(value)
        return Finding(Outcome(self.outcome), strength, value, self.summary)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "outcome": str(self.outcome),
            "strength": None if self.strength is None else str(self.strength),
            "summary": self.summary,
            "details": jsonable(self.details),
        }


@dataclass
class TiltCurve:
    """Curves for one tilt (for :func:`plot_report`): phi(r) and the recovered tilted law.

    ``method`` is ``"lattice"`` (``values`` are masses at the integers ``y``) or
    ``"continuous"`` (``values`` is the density of ``mu_theta0 * N(0, s^2)`` on ``y``).
    """

    tilt: float
    method: str
    r: np.ndarray
    phi: np.ndarray
    y: np.ndarray
    values: np.ndarray
    floor: float


@dataclass
class Report:
    """Admissibility verdict for one family, its strength and the evidence behind it."""

    name: str
    log_partition: str
    domain: tuple[str, str]
    support: str
    verdict: Verdict
    strength: Strength | None
    reason: str
    convexity: dict[str, Any]
    evidence: list[Evidence]
    tilts: tuple[float, ...]
    elapsed_s: float
    curves: list[TiltCurve] = field(default_factory=list, repr=False)

    @property
    def exit_code(self) -> int:
        """CLI exit code: 0 admissible, 1 not admissible, 3 inconclusive."""
        return EXIT_CODES[Verdict(self.verdict)]

    def stage(self, name: str) -> list[Evidence]:
        """The evidence items of one stage."""
        return [e for e in self.evidence if e.stage == name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: name, verdict, strength, convexity, evidence, ..."""
        return {
            "name": self.name,
            "verdict": str(self.verdict),
            "strength": None if self.strength is None else str(self.strength),
            "reason": self.reason,
            "exit_code": self.exit_code,
            "log_partition": self.log_partition,
            "domain": list(self.domain),
            "support": self.support,
            "tilts": list(self.tilts),
            "convexity": jsonable(self.convexity),
            "evidence": [e.to_dict() for e in self.evidence],
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def format_text(self) -> str:
        """Human-readable multi-line report."""
        strength = f" ({self.strength})" if self.strength else ""
        lines = [
            f"{self.name}: {self.verdict}{strength}",
            f"  A(eta) = {self.log_partition} on ({self.domain[0]}, {self.domain[1]}), "
            f"support {self.support}",
            f"  reason: {self.reason}",
            f"  convexity: {self.convexity.get('status')} — {self.convexity.get('method')}",
            f"  tilts theta0: {', '.join(f'{t:g}' for t in self.tilts)}",
        ]
        return "\n".join(lines + self.evidence_lines(13))

    def evidence_lines(self, stage_width: int) -> list[str]:
        """The text report's evidence block (one line per item, ``*`` marking a proof, stage
        names padded to ``stage_width``) and its closing lines: legend and time taken."""
        lines = ["  evidence:"]
        for e in self.evidence:
            tag = e.outcome + ("*" if e.strength == Strength.PROVEN else "")
            lines.append(f"    [{tag:<13}] {e.stage:<{stage_width}} {e.summary}")
        lines.append("  (* = proof; other outcomes are numerical evidence)")
        lines.append(f"  checked in {self.elapsed_s:.2f} s")
        return lines


def jsonable(obj: Any) -> Any:
    """Convert numpy/mpmath/sympy/Fraction values to JSON types (non-finite floats as text)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating | mpmath.mpf):
        v = float(obj)
        return v if math.isfinite(v) else str(v)
    if isinstance(obj, complex | np.complexfloating | mpmath.mpc):
        return [jsonable(float(obj.real)), jsonable(float(obj.imag))]
    if obj is None:
        return obj
    if isinstance(obj, str):
        return str(obj)  # an enum of deqfam.vocab as its plain value
    if isinstance(obj, Fraction | sp.Basic):
        return str(obj)
    return str(obj)
