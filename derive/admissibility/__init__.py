"""Admissibility of a log-partition function: Lemma 1 of the seed paper, checked with evidence.

A smooth, strictly convex ``A`` on an open interval ``D`` is the log-partition function of a
minimal regular exponential family iff ``exp(A)`` is a two-sided Laplace transform of a
nonnegative, non-degenerate measure ``mu``:

    exp(A(eta)) = int exp(eta * y) mu(dy),   eta in D.                                (L)

Equivalently (Lemma 1, Appendix A.2, and Bochner's theorem), at any tilt ``theta0`` in ``D``

    phi(r) = exp(A(theta0 + i r) - A(theta0))

is a positive-definite function: the characteristic function of the tilted law
``mu_theta0(dy) = exp(theta0 * y - A(theta0)) mu(dy)``. The paper writes ``exp(A(i r))``,
which needs ``0`` inside ``D``; Bose-Einstein with ``j = 0`` (``D = (-oo, 0)``) must be tested
at ``theta0 < 0``, so every numerical stage here works at tilts inside ``D``.

:func:`check` runs these stages and returns a :class:`Report` with a verdict, its strength
and the evidence behind it:

1. ``domain``       the declared domain (never auto-detected): ``A`` real and finite on a grid.
2. ``convexity``    ``A'' > 0``: SymPy proof (``Family.convexity``) and an mpmath grid; one
                    point with ``A'' <= 0`` is a certain rejection (for an admissible A, A'' is
                    the variance of a non-degenerate tilted law, so positive everywhere).
3. ``structure``    certain verdicts from the form of ``A``: polynomials (Marcinkiewicz) and a
                    registry of known Laplace transforms with closure rules.
4. ``bound``        ``|phi(r)| <= 1``; a violation is a certain rejection with a 2x2 Gram
                    witness.
5. ``base_measure`` reconstruction of ``mu_theta0`` from ``phi`` (lattice DFT or Gaussian-damped
                    Fourier inversion) at 2-3 tilts; ``series``: exact power-series masses of
                    ``exp(A)`` in ``x = e^eta``.
6. ``exp_convexity``/``hankel``  real-only cross-checks (Bernstein-Widder at 60 digits;
                    moment matrices at the middle tilt).

Verdicts: ``admissible`` (``proven`` from the registry or a finite exact series, else
``numerical``: no negative mass beyond 100 x the error floor at every tilt, floors <= 1e-10),
``not_admissible`` (``proven`` by a structural rule, an exact negative coefficient, a bound
violation, a non-convex point or a bad domain; ``numerical`` when a negative mass exceeds
1e6 x its error floor, or a real-only cross-check fails), or ``inconclusive``. Error floors
are measured, not assumed: the change of the DFT masses when N doubles (aliasing), of the
damped density when the window doubles (wrap-around), the imaginary residue, and roundoff.
"""

from __future__ import annotations

from deqfam.vocab import (
    CONTINUOUS_SUPPORTS,
    EXIT_CODES,
    LATTICE_SUPPORTS,
    Outcome,
    Strength,
    Verdict,
)

from .atoms import ATOMS, Atom, register_atom, unregister_atom
from .checker import check, default_stages, run_stages
from .grids import default_tilts
from .plot import plot_report
from .registry import Recognised, recognise
from .report import Evidence, Report, TiltCurve
from .stage import Context, Stage, StageResult, build_context

__all__ = [
    "ATOMS",
    "CONTINUOUS_SUPPORTS",
    "EXIT_CODES",
    "LATTICE_SUPPORTS",
    "Atom",
    "Context",
    "Evidence",
    "Outcome",
    "Recognised",
    "Report",
    "Stage",
    "StageResult",
    "Strength",
    "TiltCurve",
    "Verdict",
    "build_context",
    "check",
    "default_stages",
    "default_tilts",
    "plot_report",
    "recognise",
    "register_atom",
    "run_stages",
    "unregister_atom",
]
