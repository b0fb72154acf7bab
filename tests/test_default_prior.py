"""The default prior of ``fit``: ``w = c N`` (``runtime.fitting.prior``), a weight decay per
sample, so the fit depends on the data, not on how many times it was collected."""

from __future__ import annotations

import pytest
import torch

from deqfam.fitting import DEFAULT_WEIGHT_DECAY, fit
from deqfam.runtime.fitting.prior import DEFAULT_WEIGHT_DECAY_PER_SAMPLE, default_weight_decay


def _counts(n: int, d: int, seed: int) -> torch.Tensor:
    """Poisson counts of a rank-2 log-mean, seeded."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    w = 0.7 * torch.randn(d, 2, generator=gen, dtype=torch.float64)
    return torch.poisson(torch.exp(z @ w.T), generator=gen)


def _eta(res) -> torch.Tensor:
    """``Z W^T + B`` of a fit: invariant under the rotation ``(Z R, W R)`` the prior allows."""
    W, B = res.model.W.detach(), res.model.B.detach()
    return torch.as_tensor(res.latents) @ W.T + B


def test_rule_is_a_weight_decay_per_sample():
    assert DEFAULT_WEIGHT_DECAY is None  # fit resolves it from the data
    assert default_weight_decay(4097) == pytest.approx(512.125)
    assert default_weight_decay(8, per_sample=0.5) == 4.0
    with pytest.raises(ValueError, match="at least one sample"):
        default_weight_decay(0)


def test_default_prior_is_recorded_as_c_times_rows():
    y = _counts(40, 6, seed=1)
    res = fit(y, "poisson", 2, progress=False)
    assert res.model.weight_decay == DEFAULT_WEIGHT_DECAY_PER_SAMPLE * 40


def test_replicated_data_gives_the_same_fit_under_the_default_prior():
    """Each row twice: F(Z, W, B) = mean over rows + w/(2N) |(W, B)|^2 is unchanged when
    w = c N, so the fitted natural parameters are the same; with w held fixed the prior
    weighs half as much and the fit moves."""
    y = _counts(40, 6, seed=2)
    twice = torch.cat([y, y])
    once = _eta(fit(y, "poisson", 2, progress=False))
    rule = _eta(fit(twice, "poisson", 2, progress=False))
    fixed = _eta(fit(twice, "poisson", 2, progress=False, weight_decay=0.125 * 40))
    scale = once.abs().max()
    assert (rule[:40] - once).abs().max() <= 1e-3 * scale
    assert (rule[40:] - once).abs().max() <= 1e-3 * scale
    assert (fixed[:40] - once).abs().max() >= 1e-2 * scale
