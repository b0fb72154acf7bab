"""The vector admissibility check: build the context, run the stages in order, decide."""

from __future__ import annotations

import time

from deqfam.vocab import Outcome, Strength

from ...budget import time_budget
from ..checker import run_guarded
from ..report import Evidence
from .closure import ClosureStage
from .context import VectorStage, build_vector_context
from .convexity import SYMBOLIC_S, VectorConvexityStage
from .domain import VectorDomainStage
from .lines import LinesStage
from .marcinkiewicz import MarcinkiewiczStage
from .measure import VectorMeasureStage, box_tilts
from .report import VectorReport
from .verdict import decide_vector, vector_convexity_summary
from .view import VectorSpecView

#: stages whose proven outcome settles the verdict (the rest only add evidence)
DECISIVE = ("domain", "structure", "closure", "convexity")


def vector_stages(lines: int = 3, symbolic_s: float = SYMBOLIC_S) -> list[VectorStage]:
    """The stages of :func:`check_vector`, in order: domain, structure (Marcinkiewicz),
    closure (registry), convexity, lines (bound over directions, restrictions to lines),
    base_measure."""
    return [
        VectorDomainStage(),
        MarcinkiewiczStage(),
        ClosureStage(),
        VectorConvexityStage(symbolic_s),
        LinesStage(lines),
        VectorMeasureStage(),
    ]


def settled(evidence: list[Evidence]) -> bool:
    """True once a decisive stage has a proven outcome (a proof either way)."""
    return any(
        e.stage in DECISIVE
        and e.strength == Strength.PROVEN
        and (e.outcome == Outcome.FAIL or e.stage in ("structure", "closure"))
        for e in evidence
    )


def check_vector(
    view: VectorSpecView,
    *,
    lines: int = 3,
    seed: int = 0,
    exhaustive: bool = False,
    symbolic_s: float = SYMBOLIC_S,
    time_limit: float | str | None = None,
    progress: bool = False,
) -> VectorReport:
    """Check that ``view.A`` is an admissible log-partition function in ``k`` dimensions.

    ``lines`` random lines are tested besides the ``k`` axes; ``seed`` fixes every random
    choice; ``exhaustive`` runs every stage even after a proof has settled the verdict (by
    default the numerical stages are skipped then); ``symbolic_s`` bounds the Sylvester proof;
    ``time_limit`` bounds the whole check (:class:`deqfam.derive.budget.time_budget`, which
    raises ``BudgetExceeded``; None: the configured default). ``progress`` shows a tqdm bar.
    """
    start = time.perf_counter()
    with time_budget(time_limit, what=f"check {view.name}"):
        ctx = build_vector_context(view, seed)
        stages = vector_stages(lines, symbolic_s)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(stages), desc=f"check {view.name}", unit="stage", leave=False)
        evidence: list[Evidence] = []
        for stage in stages:
            if exhaustive or not settled(evidence):
                evidence.extend(run_guarded(stage, ctx).evidence)  # type: ignore[arg-type]
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    verdict, strength, reason = decide_vector(evidence)
    return VectorReport(
        name=view.name,
        log_partition=str(view.A),
        domain=tuple((str(lo), str(hi)) for lo, hi in view.domain),  # type: ignore[arg-type]
        support=view.support,
        verdict=verdict,
        strength=strength,
        reason=reason,
        convexity=vector_convexity_summary(evidence),
        evidence=evidence,
        tilts=tuple(box_tilts(view)),  # type: ignore[arg-type]
        elapsed_s=time.perf_counter() - start,
        natural_parameters=tuple(str(e) for e in view.etas),
    )
