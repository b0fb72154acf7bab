"""The proof-first verdict rules shared by the scalar and the vector check
(``admissibility.verdict.decide_by_proofs``), on hand-written evidence."""

from __future__ import annotations

import pytest

from deqfam.derive.admissibility.report import Evidence
from deqfam.derive.admissibility.vector.verdict import decide_vector
from deqfam.derive.admissibility.verdict import convexity_summary, decide
from deqfam.vocab import Outcome, Strength, Verdict

PROOF = Evidence("structure", Outcome.PASS, Strength.PROVEN, "Gaussian")
REFUTED = Evidence("convexity", Outcome.FAIL, Strength.PROVEN, "Hess A singular")
NUMERIC_FAIL = Evidence("base_measure", Outcome.FAIL, Strength.NUMERICAL, "negative mass")


@pytest.mark.parametrize("rule", [decide, decide_vector])
def test_proofs_settle_the_verdict_in_both_checks(rule):
    verdict, strength, reason = rule([PROOF, REFUTED])
    assert verdict is Verdict.INCONCLUSIVE and strength is None and "contradiction" in reason
    assert rule([REFUTED, NUMERIC_FAIL]) == (
        Verdict.NOT_ADMISSIBLE,
        Strength.PROVEN,
        "convexity: Hess A singular",
    )
    verdict, strength, reason = rule([NUMERIC_FAIL, PROOF])
    assert (verdict, strength) == (Verdict.ADMISSIBLE, Strength.PROVEN)
    assert reason == "structure: Gaussian (numerical stage base_measure disagreed: see evidence)"
    assert rule([NUMERIC_FAIL])[:2] == (Verdict.NOT_ADMISSIBLE, Strength.NUMERICAL)


def test_convexity_summary_without_the_stage_is_unknown():
    assert convexity_summary([PROOF])["status"] == "unknown"
    assert convexity_summary([REFUTED])["status"] == "violated"
