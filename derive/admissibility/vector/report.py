"""The vector report: the scalar :class:`..report.Report` with ``k`` natural parameters.

``domain`` holds one ``(lo, hi)`` pair of strings per natural parameter and ``tilts`` the
box points of the base-measure stage; ``to_dict`` writes the domain as a mapping
``{eta_i: [lo, hi]}`` and adds ``natural_parameters``, so ``--json`` keeps the scalar keys
(``name``, ``verdict``, ``strength``, ``reason``, ``exit_code``, ``convexity``,
``evidence``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..report import Report


@dataclass
class VectorReport(Report):
    """Admissibility verdict of a vector family (k natural parameters)."""

    natural_parameters: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["natural_parameters"] = list(self.natural_parameters)
        out["domain"] = {
            n: [lo, hi] for n, (lo, hi) in zip(self.natural_parameters, self.domain, strict=True)
        }
        out["tilts"] = [list(t) for t in self.tilts]
        return out

    def format_text(self) -> str:
        strength = f" ({self.strength})" if self.strength else ""
        box = " x ".join(
            f"{n} in ({lo}, {hi})"
            for n, (lo, hi) in zip(self.natural_parameters, self.domain, strict=True)
        )
        lines = [
            f"{self.name}: {self.verdict}{strength}",
            f"  A = {self.log_partition} on {box}, support {self.support}",
            f"  reason: {self.reason}",
            f"  convexity: {self.convexity.get('status')} — {self.convexity.get('method')}",
        ]
        return "\n".join(lines + self.evidence_lines(14))
