"""The vector verdict: how the evidence of the vector stages combines into one answer.

* a proven failure (domain, Marcinkiewicz, convexity, a separable part, a bound violated on a
  line, a line's convexity or polynomial degree) rejects with a proof, unless a proof of
  admissibility (``structure``: Gaussian; ``closure`` with proven parts) contradicts it
  (inconclusive);
* a proof of admissibility accepts with a proof;
* a numerical failure (a negative mass in the k-dimensional or a line's recovered law) rejects
  numerically;
* ``closure`` passing numerically (a part accepted on numerical evidence) accepts numerically;
* otherwise acceptance needs ``Hess A`` positive definite and every ``base_measure`` item
  passing (the k-dimensional DFT or the normalisation identity of the spec's ``h``): lines
  alone are necessary tests and never accept.
"""

from __future__ import annotations

from deqfam.vocab import Outcome, Strength, Verdict

from ..report import Evidence

PROOF_STAGES = ("structure", "closure")
LINE_STAGES = ("bound", "line_convexity", "line_structure", "line_measure")


def decide_vector(evidence: list[Evidence]) -> tuple[Verdict, Strength | None, str]:
    """(verdict, strength, reason) from the evidence of all vector stages."""
    fails = [e for e in evidence if e.outcome == Outcome.FAIL]
    proven_fail = [e for e in fails if e.strength == Strength.PROVEN]
    passes = [e for e in evidence if e.outcome == Outcome.PASS and e.stage in PROOF_STAGES]
    proven_pass = [e for e in passes if e.strength == Strength.PROVEN]
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
        return Verdict.ADMISSIBLE, Strength.PROVEN, f"{e.stage}: {e.summary}"
    if fails:
        e = fails[0]
        return Verdict.NOT_ADMISSIBLE, Strength.NUMERICAL, f"{e.stage}: {e.summary}"
    if passes:
        e = passes[0]
        return Verdict.ADMISSIBLE, Strength.NUMERICAL, f"{e.stage}: {e.summary}"
    conv = [e for e in evidence if e.stage == "convexity"]
    base = [e for e in evidence if e.stage == "base_measure"]
    lines = [e for e in evidence if e.stage in LINE_STAGES]
    if (
        conv
        and conv[0].outcome == Outcome.PASS
        and base
        and all(e.outcome == Outcome.PASS for e in base)
    ):
        ok = sum(e.outcome == Outcome.PASS for e in lines)
        return (
            Verdict.ADMISSIBLE,
            Strength.NUMERICAL,
            f"{base[0].summary}; Hess A positive definite ({conv[0].strength}); "
            f"{ok} of {len(lines)} line tests passed, none failed",
        )
    undecided = [e for e in evidence if e.outcome == Outcome.UNDECIDED]
    skipped = [e for e in base if e.outcome == Outcome.SKIPPED]
    why = (
        undecided[0].summary
        if undecided
        else skipped[0].summary
        if skipped
        else "not enough evidence either way"
    )
    return Verdict.INCONCLUSIVE, None, why


def vector_convexity_summary(evidence: list[Evidence]) -> dict:
    """The report's ``convexity`` entry (status proven/numerical/violated/unknown, method)."""
    conv = next((e for e in evidence if e.stage == "convexity"), None)
    if conv is None:
        return {"status": "unknown", "method": "convexity stage did not run"}
    status = {Outcome.PASS: conv.strength, Outcome.FAIL: "violated"}.get(conv.outcome, "unknown")
    return {"status": status, "method": conv.summary, **conv.details}
