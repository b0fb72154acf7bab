"""The minimal admissibility check of a vector family (until the k-dimensional stages of
``derive/admissibility/vector*.py`` [veccheck] are merged; ``deqfam check`` prefers those).

Two findings, each a :class:`~deqfam.derive.admissibility.report.Evidence`:

* ``hessian_pd``: ``Hess A`` positive definite on the box (Sylvester proof, else grid
  evidence: :mod:`deqfam.derive.vector_pd`); a grid point where it is not is a rejection
  (for an admissible ``A`` the Hessian is the covariance of a non-degenerate statistic);
* ``known_law``: the family is provably a known law (:mod:`deqfam.derive.vector_laws`), whose
  ``exp(A)`` is a Laplace transform of a positive measure by construction.

Verdict: ``admissible`` (proven) when both pass, ``not_admissible`` (numerical) when the
Hessian fails, else ``inconclusive`` (a positive definite Hessian alone does not make
``exp(A)`` a Laplace transform).
"""

from __future__ import annotations

import time

import sympy as sp

from deqfam.vocab import Outcome, Strength, Verdict

from .admissibility.report import Evidence, Report
from .vector_derivation import VectorFamily
from .vector_laws import identify_vector_law
from .vector_pd import hessian_positive_definite


def _pd_evidence(fam: VectorFamily) -> Evidence:
    pd = hessian_positive_definite(fam)
    strength = Strength.PROVEN if pd.proven else Strength.NUMERICAL
    details = {
        "method": pd.method,
        "minors": list(pd.minors),
        "grid_points": pd.grid_points,
        "worst_point": pd.worst_point,
        "min_relative_eigenvalue": pd.worst_relative_eigenvalue,
    }
    outcome = Outcome.PASS if pd.positive else Outcome.FAIL
    return Evidence("hessian_pd", outcome, strength, pd.method, details)


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


def minimal_vector_check(fam: VectorFamily) -> Report:
    """The report of the two findings above (JSON keys as the scalar report's)."""
    start = time.perf_counter()
    pd, law = _pd_evidence(fam), _law_evidence(fam)
    if pd.outcome is Outcome.FAIL:
        verdict, strength, reason = Verdict.NOT_ADMISSIBLE, Strength.NUMERICAL, pd.summary
    elif law.outcome is Outcome.PASS:
        verdict, strength, reason = Verdict.ADMISSIBLE, Strength.PROVEN, law.summary
    else:
        verdict, strength = Verdict.INCONCLUSIVE, None
        reason = "Hess A is positive definite, but exp(A) is not shown to be a Laplace transform"
    lo = ", ".join(str(b[0]) for b in fam.domain)
    hi = ", ".join(str(b[1]) for b in fam.domain)
    return Report(
        name=fam.name,
        log_partition=sp.sstr(fam.A),
        domain=(f"({lo})", f"({hi})"),
        support=fam.support,
        verdict=verdict,
        strength=strength,
        reason=reason,
        convexity={
            "status": "proven"
            if pd.strength is Strength.PROVEN and pd.outcome is Outcome.PASS
            else ("refuted" if pd.outcome is Outcome.FAIL else "numerical"),
            "method": pd.summary,
        },
        evidence=[pd, law],
        tilts=(),
        elapsed_s=time.perf_counter() - start,
    )


def check_vector_family(fam: VectorFamily) -> Report:
    """``check_vector`` of [veccheck] (``derive/admissibility/vector.py``) when it is there,
    else :func:`minimal_vector_check`."""
    try:
        from .admissibility.vector import check_vector  # type: ignore[import-not-found]
    except ImportError:
        return minimal_vector_check(fam)
    return check_vector(fam)


__all__ = ["check_vector_family", "minimal_vector_check"]
