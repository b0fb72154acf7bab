"""The admissibility check: build the context, run the stages in order, decide the verdict."""

from __future__ import annotations

import time
from pathlib import Path

from deqfam.vocab import Outcome

from ..budget import checkpoint
from ..family import Family, load_family
from .grids import default_tilts
from .path import BranchTrouble, NotAnalytic, TooCoarse
from .report import Evidence, Report, TiltCurve
from .stage import Context, Stage, StageResult, build_context
from .stages import (
    ConvexityStage,
    DomainStage,
    ExpConvexityStage,
    FourierStage,
    HankelStage,
    SeriesStage,
    StructureStage,
)
from .thresholds import SERIES_ORDER
from .verdict import convexity_summary, decide

#: Numerical breakdowns a stage may raise; each becomes an ``inconclusive`` item, never a verdict.
BREAKDOWNS = (
    ArithmeticError,
    ValueError,
    TypeError,
    NameError,
    NotAnalytic,
    BranchTrouble,
    TooCoarse,
)


def default_stages(
    tilts: tuple[float, ...],
    *,
    structural: bool = True,
    series_order: int = SERIES_ORDER,
    hankel: bool = True,
) -> list[Stage]:
    """The stages of :func:`check`, in order: domain, convexity, structure (optional),
    series, one Fourier stage per tilt, exponential convexity and Hankel at the middle tilt
    (optional: its high-order numerical derivatives are the slowest mpmath work)."""
    stages: list[Stage] = [DomainStage(), ConvexityStage()]
    if structural:
        stages.append(StructureStage())
    stages.append(SeriesStage(series_order))
    stages.extend(FourierStage(t) for t in tilts)
    stages.append(ExpConvexityStage())
    if hankel:
        stages.append(HankelStage(tilts[len(tilts) // 2]))
    return stages


def run_guarded(stage: Stage, ctx: Context) -> StageResult:
    """Run one stage; a numerical breakdown (overflow, a function mpmath/numpy cannot evaluate
    on this input) becomes an ``inconclusive`` item naming the error, never a verdict."""
    checkpoint()
    try:
        return stage.run(ctx)
    except BREAKDOWNS as exc:
        return StageResult.of(
            Evidence(
                stage.stage,
                Outcome.UNDECIDED,
                None,
                f"{stage.name}: evaluation failed ({type(exc).__name__}: {exc})",
            )
        )


def run_stages(
    stages: list[Stage], ctx: Context, progress: bool = False
) -> tuple[list[Evidence], list[TiltCurve]]:
    """Run ``stages`` in order; after a failed ``domain`` only the stages marked
    ``after_bad_domain`` (symbolic ones) still run. ``progress`` shows a tqdm bar."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(stages), desc=f"check {ctx.family.name}", unit="stage", leave=False)
    evidence: list[Evidence] = []
    curves: list[TiltCurve] = []
    domain_ok = True
    for stage in stages:
        if bar is not None:
            bar.set_postfix_str(stage.name)
        if domain_ok or stage.after_bad_domain:
            result = run_guarded(stage, ctx)
            evidence.extend(result.evidence)
            curves.extend(result.curves)
            if stage.name == "domain" and result.failed():
                domain_ok = False
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return evidence, curves


def check(
    family: Family | str | Path,
    *,
    tilts: tuple[float, ...] | list[float] | None = None,
    progress: bool = False,
    structural: bool = True,
    series_order: int = SERIES_ORDER,
    hankel: bool = True,
) -> Report:
    """Check that ``family.A`` is an admissible log-partition function (Lemma 1).

    ``family`` is a :class:`Family` (or anything :func:`load_family` accepts). ``tilts`` are
    the theta0 for the Fourier stages (default :func:`default_tilts`; each must lie strictly
    inside the declared domain). ``structural=False`` skips the structural/registry stage
    (to see what the numerical stages alone conclude); ``series_order`` is the number of
    coefficients of exp(A) in x = e^eta; ``hankel=False`` skips the moment-matrix cross-check
    (its high-order numerical derivatives are the slowest mpmath work). ``progress`` shows a
    tqdm bar over the stages. Returns a :class:`Report`.
    """
    start = time.perf_counter()
    fam = family if isinstance(family, Family) else load_family(family)
    lo, hi = fam.domain
    if tilts is None:
        tilts = default_tilts(fam.domain)
    tilts = tuple(float(t) for t in tilts)
    for t in tilts:
        if not (bool(lo < t) and bool(t < hi)):
            raise ValueError(f"tilt {t} is not inside the open domain ({lo}, {hi})")
    ctx = build_context(fam, tilts)
    stages = default_stages(tilts, structural=structural, series_order=series_order, hankel=hankel)
    evidence, curves = run_stages(stages, ctx, progress)
    verdict, strength, reason = decide(evidence)
    return Report(
        name=fam.name,
        log_partition=str(fam.A),
        domain=(str(lo), str(hi)),
        support=fam.support,
        verdict=verdict,
        strength=strength,
        reason=reason,
        convexity=convexity_summary(evidence),
        evidence=evidence,
        tilts=tilts,
        elapsed_s=time.perf_counter() - start,
        curves=curves,
    )
