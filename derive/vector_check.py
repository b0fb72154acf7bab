"""The admissibility check of a derived vector family: the k-dimensional stages of
:mod:`deqfam.derive.admissibility.vector` (Marcinkiewicz along lines, closure, convexity,
restrictions to lines, base measure) run on a :class:`VectorSpecView` of the family, plus one
finding of the derive side, ``known_law``: the family is provably a known law
(:mod:`deqfam.derive.vector_laws`), whose ``exp(A)`` is a Laplace transform of a positive
measure by construction, which makes an otherwise numerical acceptance a proof.
"""

from __future__ import annotations

import dataclasses

from deqfam.vocab import Outcome, Strength, Verdict

from .admissibility.report import Evidence, Report
from .admissibility.vector import VectorSpecView, build_vector_context, check_vector
from .admissibility.vector.convexity import hessian_convexity
from .vector_derivation import VectorFamily
from .vector_laws import identify_vector_law


def _law_evidence(fam: VectorFamily) -> Evidence:
    found = identify_vector_law(fam)
    if found is None:
        return Evidence("known_law", Outcome.UNDECIDED, None, "not identified as a known law", {})
    law, params = found
    return Evidence(
        "known_law",
        Outcome.PASS,
        Strength.PROVEN,
        f"T and grad A equal those of the {law} law (SymPy identity)",
        {"law": law, "parameters": params},
    )


def _view(fam: VectorFamily) -> VectorSpecView:
    """What the k-dimensional stages read of a derived vector family."""
    support_max = None if fam.support_max is None else float(fam.support_max)
    return VectorSpecView(
        name=fam.name,
        A=fam.A,
        etas=fam.etas,
        domain=fam.domain,
        support=fam.support,
        T=fam.T,
        h=fam.h,
        parameters=dict(fam.parameters),
        support_max=support_max,
    )


def hessian_positive_definite(fam: VectorFamily, seed: int = 0) -> Evidence:
    """Whether ``Hess A`` is positive definite on the family's box: the ``convexity`` stage's
    finding (:func:`~deqfam.derive.admissibility.vector.convexity.hessian_convexity`: a
    Sylvester proof, else eigenvalues on seeded box points), without the rest of the check.
    ``details["symbolic"]`` says whether the proof went through."""
    return hessian_convexity(build_vector_context(_view(fam), seed))


def check_vector_family(fam: VectorFamily, time_limit: float | None = None) -> Report:
    """The k-dimensional admissibility check (:func:`check_vector`) of ``fam``, with the
    ``known_law`` finding added: a family that is provably a known law is admissible by proof
    (``exp(A)`` is the Laplace transform of that law's measure), unless a stage refuted it,
    in which case the contradiction is reported as inconclusive rather than hidden."""
    report = check_vector(_view(fam), time_limit=time_limit)
    law = _law_evidence(fam)
    evidence = [*report.evidence, law]
    if law.outcome is not Outcome.PASS:
        return dataclasses.replace(report, evidence=evidence)
    if Verdict(report.verdict) is Verdict.NOT_ADMISSIBLE:
        reason = f"{report.reason}; but {law.summary}"
        return dataclasses.replace(
            report, verdict=Verdict.INCONCLUSIVE, strength=None, reason=reason, evidence=evidence
        )
    return dataclasses.replace(
        report,
        verdict=Verdict.ADMISSIBLE,
        strength=Strength.PROVEN,
        reason=law.summary,
        evidence=evidence,
    )


__all__ = ["check_vector_family", "hessian_positive_definite"]
