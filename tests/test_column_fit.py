"""The second-order fit (runtime/fitting) on mixed scalar columns through the column-wise
family, checked with the block model: its z* and the stationarity of its loss."""

from __future__ import annotations

import pytest
import torch
from oracles.vector_families import BERNOULLI, GAUSSIAN, NORMAL, POISSON

from deqfam.runtime.column_family import columnwise_family
from deqfam.runtime.columns import ColumnFamilies
from deqfam.runtime.fitting import NewtonFitConfig, fit_newton
from deqfam.runtime.models import ExpFamPCA

F64 = torch.float64
FAMS = [POISSON, BERNOULLI, GAUSSIAN, POISSON, BERNOULLI]


def _data(n: int, gen: torch.Generator) -> torch.Tensor:
    """Rows from a rank-1 latent model: counts, flags, reals."""
    z = torch.randn(n, 1, generator=gen, dtype=F64)
    eta = z @ torch.tensor([[0.8, 1.2, 1.0, -0.6, -1.0]], dtype=F64) + 0.2
    return torch.stack(
        [
            torch.poisson(torch.exp(eta[:, 0]), generator=gen),
            torch.bernoulli(torch.sigmoid(eta[:, 1]), generator=gen),
            eta[:, 2] + torch.randn(n, generator=gen, dtype=F64),
            torch.poisson(torch.exp(eta[:, 3]), generator=gen),
            torch.bernoulli(torch.sigmoid(eta[:, 4]), generator=gen),
        ],
        1,
    )


def test_fit_newton_on_mixed_scalar_columns_agrees_with_block_model():
    """The fit's objective decreases monotonically, and at the fitted (W, B) its latents and
    objective equal the block model's (per-column groups, its own Newton solve)."""
    gen = torch.Generator().manual_seed(21)
    Y = _data(60, gen)
    cols = ColumnFamilies(FAMS)
    cols.validate_observations(Y)
    model = ExpFamPCA(columnwise_family(cols), 5, 1, lam=1.0, dtype=F64)
    cfg = NewtonFitConfig(max_iter=12, progress=False)
    hist = fit_newton(model, Y, cfg)
    losses = torch.tensor(hist.loss)
    assert bool((losses[1:] <= losses[:-1] + 1e-12).all()) and losses[-1] < 0.3 * losses[0]
    block = ExpFamPCA(FAMS, 5, 1, lam=1.0, dtype=F64, solver_options={"tol": 1e-13})
    with torch.no_grad():
        block.W.copy_(model.W)
        block.B.copy_(model.B)
        torch.testing.assert_close(block(Y), model(Y), atol=1e-9, rtol=0)
        torch.testing.assert_close(block.loss(Y), model.loss(Y), atol=1e-12, rtol=1e-12)


def test_columnwise_family_refuses_vector_and_mixed_domains():
    with pytest.raises(ValueError, match="scalar columns only"):
        columnwise_family(ColumnFamilies([POISSON, NORMAL]))
