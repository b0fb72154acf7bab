"""The shared vocabulary of verdicts and findings, for both sides of the project.

``derive/`` (admissibility, concavity) and ``runtime/`` (pcDEQ certificates, contraction
reports) speak about the same things: a check has an :class:`Outcome`, and a passed or failed
check is either a proof or numerical evidence (:class:`Strength`). A family's admissibility
:class:`Verdict` maps to a CLI exit code, and its support is one of the :class:`Support` names.
This module imports neither torch nor SymPy (``tests/test_architecture.py`` checks), so both
sides may import it.

The enums are :class:`enum.StrEnum`: a member compares equal to its string value and
serialises to it (``json.dumps(Outcome.PASS) == '"pass"'``), so reports written with plain
strings before keep their JSON and their comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CONTINUOUS_SUPPORTS",
    "EXIT_CODES",
    "LATTICE_SUPPORTS",
    "Finding",
    "Outcome",
    "Strength",
    "Support",
    "Verdict",
]


class Verdict(StrEnum):
    """Is ``A`` the log-partition function of a minimal regular exponential family?"""

    ADMISSIBLE = "admissible"
    NOT_ADMISSIBLE = "not_admissible"
    INCONCLUSIVE = "inconclusive"


class Strength(StrEnum):
    """How a decided outcome was reached: a proof (symbolic/exact) or numerical evidence."""

    PROVEN = "proven"
    NUMERICAL = "numerical"


class Outcome(StrEnum):
    """The outcome of one check."""

    PASS = "pass"
    FAIL = "fail"
    UNDECIDED = "inconclusive"
    SKIPPED = "skipped"


class Support(StrEnum):
    """The support of ``y`` a family spec may declare."""

    REAL = "real"
    BINARY = "binary"
    PLUS_MINUS_ONE = "plus_minus_one"
    UNIT_INTERVAL = "unit_interval"
    INTEGERS = "integers"
    NONNEGATIVE_INTEGERS = "nonnegative_integers"
    POSITIVE_INTEGERS = "positive_integers"
    POSITIVE_REAL = "positive_real"


#: CLI exit code of each verdict (2 is reserved for bad input).
EXIT_CODES: dict[Verdict, int] = {
    Verdict.ADMISSIBLE: 0,
    Verdict.NOT_ADMISSIBLE: 1,
    Verdict.INCONCLUSIVE: 3,
}

#: Supports on the integer lattice (their tilted laws have 2 pi-periodic characteristic
#: functions), each with its membership test for an integer ``n``.
LATTICE_SUPPORTS = {
    Support.BINARY: lambda n: n in (0, 1),
    Support.PLUS_MINUS_ONE: lambda n: n in (-1, 1),
    Support.INTEGERS: lambda n: True,
    Support.NONNEGATIVE_INTEGERS: lambda n: n >= 0,
    Support.POSITIVE_INTEGERS: lambda n: n >= 1,
}

#: Continuous supports as closed-open intervals ``(lo, hi)`` of the real line.
CONTINUOUS_SUPPORTS: dict[Support, tuple[float, float]] = {
    Support.REAL: (-float("inf"), float("inf")),
    Support.POSITIVE_REAL: (0.0, float("inf")),
    Support.UNIT_INTERVAL: (0.0, 1.0),
}


@dataclass(frozen=True)
class Finding:
    """One finding of any check: its ``outcome``, whether it is a proof or numerical
    evidence (``strength``, None when nothing was decided), a representative ``value``
    (the worst value seen, a bound, ...; None when there is none) and a one-line ``detail``."""

    outcome: Outcome
    strength: Strength | None
    value: float | None
    detail: str

    @property
    def decided(self) -> bool:
        """True when the check passed or failed (not undecided or skipped)."""
        return self.outcome in (Outcome.PASS, Outcome.FAIL)

    @property
    def proof(self) -> bool:
        """True when the outcome is backed by a proof rather than numerical evidence."""
        return self.decided and self.strength == Strength.PROVEN

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable form with plain-string enum values."""
        return {
            "outcome": str(self.outcome),
            "strength": None if self.strength is None else str(self.strength),
            "value": self.value,
            "detail": self.detail,
        }
