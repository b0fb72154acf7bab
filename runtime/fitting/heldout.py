"""A predictive criterion for the prior of ``fit``: the held-out half loss.

Training deviance always prefers a weaker prior on ``(W, B)`` (BENCHMARKS.md, "The default
prior"), and so does the deviance of held-out rows at latents fitted to those same entries.
What a prior should be judged by is how well the fitted loadings predict entries no fit has
seen. For held-out rows ``y_s`` and a seeded split of the ``d`` columns into halves ``a``
and ``b``, the latent of each row is the MAP from half ``a`` alone (Theorem 1 (6) restricted
to the columns of ``a``),

    z_s(a) = argmin_z  lam/2 |z|^2 - z^T W_a^T T(y_sa) + 1^T A(W_a z + B_a),

and the loss of the other half is the negative log-likelihood up to ``log h`` (which does not
depend on the fit),

    L_b = (1/n) sum_s sum_{j in b} [A(eta_sj) - T(y_sj) eta_sj],   eta_sb = W_b z_s(a) + B_b.

The held-out half loss is ``L_b + L_a`` (each half predicted from the other). Half the
deviance of the unseen entries differs from it by a constant of the data only, so both rank
priors the same way.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..solvers import newton


def column_halves(n_columns: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A seeded random split of ``range(n_columns)`` into two halves (sizes ``d // 2`` and
    ``d - d // 2``)."""
    if n_columns < 2:
        raise ValueError(f"the held-out half loss needs at least 2 columns, got {n_columns}")
    perm = torch.as_tensor(np.random.default_rng(seed).permutation(n_columns))
    return perm[: n_columns // 2], perm[n_columns // 2 :]


def predicted_halves(
    family, Y: Tensor, W: Tensor, B: Tensor, lam: float, seed: int = 0
) -> list[tuple[Tensor, Tensor]]:
    """``[(b, eta_b), (a, eta_a)]``: the columns of each half of :func:`column_halves` and
    their natural parameters ``W_b z_s(a) + B_b`` predicted from the MAP latents of the
    other half (module docstring)."""
    Y, W, B = (t.to(torch.float64) for t in (Y, W, B))
    T = family.sufficient_statistic(Y)
    halves = column_halves(Y.shape[1], seed)
    out = []
    for seen, unseen in (halves, halves[::-1]):
        z = newton(family, W[seen], B[seen], T[:, seen], lam).value
        out.append((unseen, z @ W[unseen].T + B[unseen]))
    return out


def heldout_half_loss(family, Y: Tensor, W: Tensor, B: Tensor, lam: float, seed: int = 0) -> float:
    """``L_a + L_b`` of the module docstring for the rows ``Y`` under loadings ``W`` (``d x l``)
    and offsets ``B`` (``d``), per row."""
    T = family.sufficient_statistic(Y.to(torch.float64))
    total = 0.0
    for unseen, eta in predicted_halves(family, Y, W, B, lam, seed):
        total += float((family.log_partition(eta) - T[:, unseen] * eta).sum()) / Y.shape[0]
    return total


def holdout_rows(n_rows: int, fraction: float, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A seeded split of ``range(n_rows)`` into (fitted, held-out) rows, ``fraction`` of them
    held out (at least one of each)."""
    if not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must lie in (0, 1), got {fraction}")
    n_out = min(max(1, round(fraction * n_rows)), n_rows - 1)
    if n_out < 1:
        raise ValueError(f"choosing the prior needs at least 2 rows, got {n_rows}")
    perm = torch.as_tensor(np.random.default_rng(seed).permutation(n_rows))
    return perm[n_out:], perm[:n_out]
