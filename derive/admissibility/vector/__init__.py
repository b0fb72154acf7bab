"""Admissibility in k dimensions (issue 16): is ``A(eta_1, ..., eta_k)`` the log-partition
function of a minimal regular exponential family?

Entry point: :func:`check_vector(view) -> VectorReport <check_vector>` on a
:class:`VectorSpecView` (A, the natural-parameter symbols, the product domain, support, T, h,
parameters). Stages, one module each behind :class:`VectorStage`:

1. ``domain``     A real and finite at box points (:mod:`.domain`);
2. ``structure``  multivariate Marcinkiewicz: polynomial A of total degree > 2, or a
                  polynomial of degree > 2 (or <= 1) along a line (:mod:`.marcinkiewicz`);
3. ``closure``    sums of admissible scalar parts in linear forms of eta (separable sums,
                  affine maps), each part by the scalar registry or the scalar check
                  (:mod:`.closure`);
4. ``convexity``  Hess A positive definite: Sylvester proof within a budget, else smallest
                  eigenvalues on the box with 30/60-digit confirmation (:mod:`.convexity`);
5. ``bound``, ``line_*``  the bound test over directions and the scalar necessary tests on
                  restrictions to lines (:mod:`.lines`);
6. ``base_measure`` k-dimensional lattice DFT, normalisation identity of the spec's h
                  (:mod:`.measure`).

The verdict rules are in :mod:`.verdict`; every finding says proof or numerical evidence.
"""

from __future__ import annotations

from .checker import check_vector, vector_stages
from .context import VectorContext, VectorStage, build_vector_context
from .report import VectorReport
from .verdict import decide_vector
from .view import VectorSpecView

__all__ = [
    "VectorContext",
    "VectorReport",
    "VectorSpecView",
    "VectorStage",
    "build_vector_context",
    "check_vector",
    "decide_vector",
    "vector_stages",
]
