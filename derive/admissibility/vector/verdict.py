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
from ..verdict import convexity_summary, decide_by_proofs

PROOF_STAGES = ("structure", "closure")
LINE_STAGES = ("bound", "line_convexity", "line_structure", "line_measure")


def decide_vector(evidence: list[Evidence]) -> tuple[Verdict, Strength | None, str]:
    """(verdict, strength, reason) from the evidence of all vector stages."""
    by_proof = decide_by_proofs(evidence, PROOF_STAGES)
    if by_proof is not None:
        return by_proof
    fails = [e for e in evidence if e.outcome == Outcome.FAIL]
    passes = [e for e in evidence if e.outcome == Outcome.PASS and e.stage in PROOF_STAGES]
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


#: the report's ``convexity`` entry: the scalar check's summary serves (one convexity stage)
vector_convexity_summary = convexity_summary
