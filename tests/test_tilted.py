"""The vectorised generic samplers (runtime/tilted.py): bounded work, stated tail mass, moments."""

from __future__ import annotations

import math

import pytest
import torch
from oracles.families import FAMILIES
from scipy import stats

from deqfam.runtime import tilted
from deqfam.runtime.family import TorchFamily
from deqfam.runtime.sampling import sample


def _counting(monkeypatch, name: str) -> list[int]:
    """Replace ``tilted.<name>`` by a wrapper counting its calls; returns the counter."""
    calls = [0]
    inner = getattr(tilted, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return inner(*args, **kwargs)

    monkeypatch.setattr(tilted, name, counted)
    return calls


def test_many_distinct_etas_use_a_bounded_number_of_calls(monkeypatch):
    family = FAMILIES["bernoulli_poisson"]
    assert family.exact_sampler is None  # the generic lattice sampler runs
    counts = {}
    for n in (500, 20_000):
        pmf = _counting(monkeypatch, "lattice_logpmf")
        tails = _counting(monkeypatch, "log_tail_bound")
        eta = torch.linspace(-4.0, 3.0, n, dtype=torch.float64)
        sample(family, eta, torch.Generator().manual_seed(1))
        counts[n] = (pmf[0], tails[0])
        monkeypatch.undo()
    # one block (the table fits MAX_CELLS); the Chernoff widening does not grow with n
    assert counts[500][0] == counts[20_000][0] == 1
    assert counts[20_000][1] <= 12, counts


def test_blocks_stay_few_when_the_table_is_split(monkeypatch):
    family = FAMILIES["bernoulli_poisson"]
    eta = torch.linspace(-4.0, 3.0, 5000, dtype=torch.float64)
    lo, hi = tilted.lattice_ranges(family, eta)
    cells = int((hi - lo + 1).sum())
    monkeypatch.setattr(tilted, "MAX_CELLS", 20_000)
    pmf = _counting(monkeypatch, "lattice_logpmf")
    sample(family, eta, torch.Generator().manual_seed(2))
    # greedy blocks of rows sorted by width: each full block holds over half of MAX_CELLS
    assert pmf[0] <= 2 * cells / 20_000 + 2
    assert pmf[0] < eta.numel() / 50


@pytest.mark.parametrize("eta0", [-11.0, -2.0, 0.5, 6.0, 11.0])
def test_poisson_ranges_leave_less_than_1e12_outside(eta0):
    """The generic range rule applied to the built-in Poisson contract (its exact sampler
    is bypassed): scipy's Poisson tails beyond [lo, hi] are below TAIL_MASS."""
    fam = FAMILIES["poisson"]
    eta = torch.tensor([eta0], dtype=torch.float64)
    lo, hi = tilted.lattice_ranges(fam, eta)
    mu = math.exp(eta0)
    assert stats.poisson.sf(int(hi), mu) < tilted.TAIL_MASS
    assert stats.poisson.cdf(int(lo) - 1, mu) < tilted.TAIL_MASS
    # the Chernoff bound is a bound: never below the exact upper tail P(Y >= hi + 1)
    c = hi.to(torch.float64) + 1
    sd = torch.sqrt(fam.activation_grad(eta))
    bound = float(tilted.log_tail_bound(fam, eta, sd, c, upper=True))
    assert bound >= stats.poisson.logsf(int(hi), mu) - 1e-9


def test_generic_sampler_moments_on_mixed_etas():
    """Draws at three etas in one call: mean and variance within 4 standard errors of the
    closed forms A' = sigmoid(eta) + e^eta, A'' = sigmoid'(eta) + e^eta."""
    family = FAMILIES["bernoulli_poisson"]
    values, n = [-3.0, 0.0, 2.5], 20_000
    eta = torch.tensor(values, dtype=torch.float64).repeat_interleave(n)
    y = sample(family, eta, torch.Generator().manual_seed(5)).reshape(3, n)
    for i, e in enumerate(values):
        s = 1 / (1 + math.exp(-e))
        mean, var = s + math.exp(e), s * (1 - s) + math.exp(e)
        # fourth cumulant: Bernoulli's s(1-s)(1-6s(1-s)) plus Poisson's e^eta
        k4 = s * (1 - s) * (1 - 6 * s * (1 - s)) + math.exp(e)
        assert abs(float(y[i].mean()) - mean) < 4 * math.sqrt(var / n)
        assert abs(float(y[i].var()) - var) < 4 * math.sqrt((k4 + 2 * var**2) / n)


def test_inverse_cdf_table_and_gather_paths_match_a_count():
    """Both layouts of the samples give the index a plain count gives: #{cells: cdf < u}."""
    gen = torch.Generator().manual_seed(3)
    p = torch.rand((6, 9), generator=gen, dtype=torch.float64)
    cdf = torch.cumsum(p / p.sum(1, keepdim=True), 1)
    for row in (torch.tensor([0, 0, 0, 2, 5, 5, 1]), torch.zeros(400, dtype=torch.int64)):
        u = torch.rand(row.shape, generator=gen, dtype=torch.float64)
        expected = (cdf[row] < u[:, None]).sum(1).clamp(max=8)
        assert torch.equal(tilted._inverse_cdf(cdf, row, u), expected)
    row = torch.cat([torch.zeros(400, dtype=torch.int64), torch.arange(1, 6)])  # uneven
    u = torch.rand(row.shape, generator=gen, dtype=torch.float64)
    assert torch.equal(tilted._inverse_cdf(cdf, row, u), (cdf[row] < u[:, None]).sum(1))


def test_a_pmf_that_does_not_sum_to_one_is_refused():
    """A = e^eta with h(y) = 2/y! (twice the Poisson mass): h and A describe no law."""
    fam = FAMILIES["poisson"]
    wrong = TorchFamily(
        name="wrong",
        domain=fam.domain,
        log_partition=fam.log_partition,
        activation=fam.activation,
        activation_grad=fam.activation_grad,
        sufficient_statistic=fam.sufficient_statistic,
        support=fam.support,
        log_base_measure=lambda y: math.log(2.0) - torch.lgamma(y + 1),
    )
    with pytest.raises(ValueError, match="not 1"):
        sample(wrong, torch.tensor([0.3], dtype=torch.float64))
