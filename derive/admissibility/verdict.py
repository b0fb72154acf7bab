"""The verdict: how the evidence of all stages combines into one answer (module docstring of
:mod:`deqfam.derive.admissibility` for the rules)."""

from __future__ import annotations

from typing import Any

from deqfam.vocab import Outcome, Strength, Verdict

from .report import Evidence
from .thresholds import ACCEPT_FACTOR


def decide(evidence: list[Evidence]) -> tuple[Verdict, Strength | None, str]:
    """(verdict, strength, reason) from the evidence of all stages.

    A proven failure rejects (proven) unless a proof of admissibility (``structure`` or
    ``series``) contradicts it (inconclusive); a proof of admissibility accepts (proven); a
    numerical failure rejects (numerical); convexity, every bound and every base measure
    passing accepts (numerical); anything else is inconclusive, naming the first undecided
    item.
    """
    by_proof = decide_by_proofs(evidence, ("structure", "series"))
    if by_proof is not None:
        return by_proof
    num_fail = [
        e for e in evidence if e.outcome == Outcome.FAIL and e.strength == Strength.NUMERICAL
    ]
    if num_fail:
        e = num_fail[0]
        return Verdict.NOT_ADMISSIBLE, Strength.NUMERICAL, f"{e.stage}: {e.summary}"
    conv = [e for e in evidence if e.stage == "convexity"]
    bound = [e for e in evidence if e.stage == "bound"]
    base = [e for e in evidence if e.stage == "base_measure"]
    ok = (
        conv
        and conv[0].outcome == Outcome.PASS
        and bound
        and all(e.outcome == Outcome.PASS for e in bound)
        and base
        and all(e.outcome == Outcome.PASS for e in base)
    )
    if ok:
        floors = [e.details.get("error_floor", 0.0) for e in base]
        res = ACCEPT_FACTOR * max(floors)
        tilts = ", ".join(f"{e.details['tilt']:g}" for e in base)
        return (
            Verdict.ADMISSIBLE,
            Strength.NUMERICAL,
            f"no negative mass found at resolution ~{res:.0e} at tilts {tilts}; "
            f"|phi| <= 1; convexity {conv[0].strength}",
        )
    undecided = [e for e in evidence if e.outcome in (Outcome.UNDECIDED,)]
    why = undecided[0].summary if undecided else "not enough evidence either way"
    return Verdict.INCONCLUSIVE, None, why


def decide_by_proofs(
    evidence: list[Evidence], proof_stages: tuple[str, ...]
) -> tuple[Verdict, Strength | None, str] | None:
    """The verdict when a proof settles it (scalar and vector checks alike), else None.

    A proven failure rejects (proven) unless a proof of admissibility (a proven pass of one of
    ``proof_stages``) contradicts it (inconclusive); a proof of admissibility accepts
    (proven), noting a numerical failure that disagreed.
    """
    proven_fail = [
        e for e in evidence if e.outcome == Outcome.FAIL and e.strength == Strength.PROVEN
    ]
    proven_pass = [
        e
        for e in evidence
        if e.outcome == Outcome.PASS and e.strength == Strength.PROVEN and e.stage in proof_stages
    ]
    num_fail = [
        e for e in evidence if e.outcome == Outcome.FAIL and e.strength == Strength.NUMERICAL
    ]
    if proven_fail and proven_pass:
        return (
            Verdict.INCONCLUSIVE,
            None,
            "contradiction between a proof of admissibility ("
            f"{proven_pass[0].summary}) and a proven rejection ({proven_fail[0].summary})",
        )
    if proven_fail:
        e = proven_fail[0]
        return Verdict.NOT_ADMISSIBLE, Strength.PROVEN, f"{e.stage}: {e.summary}"
    if proven_pass:
        e = proven_pass[0]
        reason = f"{e.stage}: {e.summary}"
        if num_fail:
            reason += f" (numerical stage {num_fail[0].stage} disagreed: see evidence)"
        return Verdict.ADMISSIBLE, Strength.PROVEN, reason
    return None


def convexity_summary(evidence: list[Evidence]) -> dict[str, Any]:
    """The report's ``convexity`` entry: status (``proven``/``numerical``/``violated``/
    ``unknown``), the method (the stage's summary) and the stage's details; ``unknown`` when
    the convexity stage did not run."""
    conv = next((e for e in evidence if e.stage == "convexity"), None)
    if conv is None:
        return {"status": "unknown", "method": "convexity stage did not run"}
    status = {Outcome.PASS: conv.strength, Outcome.FAIL: "violated"}.get(conv.outcome, "unknown")
    return {"status": status, "method": conv.summary, **conv.details}
