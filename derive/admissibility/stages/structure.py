"""Stage ``structure``: certain verdicts from the form of ``A``.

Polynomials are decided by Marcinkiewicz's theorem (degree <= 2 with a positive leading
coefficient, or not admissible); other forms by the registry of known Laplace transforms.
"""

from __future__ import annotations

import sympy as sp

from deqfam.vocab import Outcome, Strength

from ...spec import ETA
from ..registry import recognise
from ..report import Evidence
from ..stage import Context, Stage, StageResult


def structure_evidence(ctx: Context) -> Evidence:
    A = ctx.A
    if A.is_polynomial(ETA):
        p = sp.Poly(A, ETA)
        deg = p.degree()
        details = {"polynomial_degree": deg}
        if deg >= 3:
            return Evidence(
                "structure",
                Outcome.FAIL,
                Strength.PROVEN,
                f"A is a polynomial of degree {deg} >= 3: exp(polynomial of degree > 2) is "
                "never a characteristic function (Marcinkiewicz)",
                {
                    **details,
                    "rule": "Marcinkiewicz 1938; exp(A) entire, so an MGF finite on an "
                    "interval extends to R (Widder: its singularity would lie on the real "
                    "axis), and phi(r) = exp(A(theta0 + i r) - A(theta0)) is exp of a "
                    f"degree-{deg} polynomial",
                },
            )
        lead = p.all_coeffs()[0]
        if deg == 2 and lead.is_positive:
            return Evidence(
                "structure",
                Outcome.PASS,
                Strength.PROVEN,
                f"A is quadratic with leading coefficient {lead} > 0: Gaussian N(0, {2 * lead})",
                {**details, "law": f"N(0, {2 * lead})", "infinitely_divisible": True},
            )
        return Evidence(
            "structure",
            Outcome.FAIL,
            Strength.PROVEN,
            f"A is a polynomial of degree {deg} with A'' = {sp.diff(A, ETA, 2)} <= 0",
            details,
        )
    rec = recognise(A, ctx.domain)
    if rec is None:
        return Evidence(
            "structure",
            Outcome.SKIPPED,
            None,
            "form of A not in the registry (no certain verdict from structure)",
        )
    return Evidence(
        "structure",
        Outcome.PASS,
        Strength.PROVEN,
        f"registry: exp(A) is the Laplace transform of {rec.law}",
        {"law": rec.law, "infinitely_divisible": rec.infinitely_divisible, "steps": rec.steps},
    )


class StructureStage(Stage):
    """Certain verdicts from the form of ``A`` (:func:`structure_evidence`); symbolic, so it
    also runs when the declared domain failed."""

    name = stage = "structure"
    after_bad_domain = True

    def run(self, ctx: Context) -> StageResult:
        return StageResult.of(structure_evidence(ctx))
