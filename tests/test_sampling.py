"""Samplers: moments against A' and A'' (and mpmath for Bose-Einstein), datasets."""

from __future__ import annotations

import importlib
import math

import mpmath
import pytest
import torch
from oracles.families import ALL_NAMES, FAMILIES, ROOT, family_params

from deqfam.api import generate
from deqfam.runtime.datasets import ground_truth_latents, make_dataset, shape_labels
from deqfam.runtime.family import ExactSampler, as_torch_family
from deqfam.runtime.sampling import sample

N = 40_000


def _moment_check(family, eta0: float, y: torch.Tensor) -> None:
    """Sample mean and variance within 4 standard errors of A'(eta0) and A''(eta0).

    SE(mean) = sqrt(A''/n); SE(variance) = sqrt((kappa4 + 2 A''^2)/n), with the fourth
    cumulant kappa4 = A'''' from autograd of the contract's third derivative.
    """
    fam = as_torch_family(family)
    eta = torch.tensor([eta0], dtype=torch.float64, requires_grad=True)
    mean = float(fam.activation(eta).detach())
    var = float(fam.activation_grad(eta).detach())
    third = fam.activation_grad2(eta)
    k4 = torch.autograd.grad(third.sum(), eta)[0] if third.requires_grad else 0.0
    n = y.numel()
    se_mean = math.sqrt(var / n)
    se_var = math.sqrt((float(k4) + 2 * var**2) / n)
    assert abs(float(y.mean()) - mean) < 4 * se_mean, (float(y.mean()), mean, se_mean)
    assert abs(float(y.var()) - var) < 4 * se_var, (float(y.var()), var, se_var)


#: every family under test that can be sampled (fermi_dirac gives no base measure and is
#: not a known law)
SAMPLED = [n for n in ALL_NAMES if n != "fermi_dirac"]


@pytest.mark.parametrize("name", family_params(SAMPLED))
@pytest.mark.parametrize("eta0", [-2.3, -0.4])
def test_sampler_moments_every_family(name, eta0):
    family = FAMILIES[name]
    gen = torch.Generator().manual_seed(17)
    y = sample(family, torch.full((N,), eta0, dtype=torch.float64), gen)
    _moment_check(family, eta0, y)


def test_bose_einstein_moments_match_mpmath_polylog():
    family = FAMILIES["bose_einstein"]
    j = family.parameters["j"]
    eta0 = -0.3
    y = sample(
        family, torch.full((N,), eta0, dtype=torch.float64), torch.Generator().manual_seed(3)
    )
    mean = float(mpmath.polylog(j, mpmath.exp(eta0)))
    var = float(mpmath.polylog(j - 1, mpmath.exp(eta0)))
    assert abs(float(y.mean()) - mean) < 4 * math.sqrt(var / N)
    assert float(y.min()) >= 0 and torch.equal(y, y.round())


USER_CONTINUOUS = """\
name: shifted_gaussian_user
description: unit-variance Gaussian written as a user spec (no exact sampler)
support: real
log_partition: eta**2/2 + eta
base_measure: exp(-(y - 1)**2/2)/sqrt(2*pi)
domain: [-oo, oo]
"""


def test_user_continuous_spec_sampler(tmp_path):
    spec = tmp_path / "g.yaml"
    spec.write_text(USER_CONTINUOUS)
    module = generate(spec, tmp_path / "out", check_admissibility=False)
    y = sample(module, torch.full((N,), 0.7, dtype=torch.float64), torch.Generator().manual_seed(6))
    _moment_check(module, 0.7, y)


def test_sampler_rejects_eta_outside_domain():
    module = importlib.import_module("deqfam.generated.negative_binomial")
    with pytest.raises(ValueError, match="open domain"):
        sample(module, torch.tensor([0.5], dtype=torch.float64))


def test_sampler_refuses_family_without_base_measure():
    module = importlib.import_module("deqfam.generated.fermi_dirac")
    with pytest.raises(ValueError, match="base measure"):
        sample(module, torch.tensor([-0.5], dtype=torch.float64))


def test_ground_truth_shapes():
    z = ground_truth_latents(320)
    assert z.shape == (42560, 2)  # the paper reports 42453 for its (unstated) grid
    labels = shape_labels(z)
    # areas 9 pi, 4 pi and 1 (a square of side 1) set the proportions of the three shapes
    frac = torch.bincount(labels, minlength=3).double() / z.shape[0]
    area = torch.tensor([9 * math.pi, 4 * math.pi, 1.0], dtype=torch.float64)
    torch.testing.assert_close(frac, area / area.sum(), atol=2e-3, rtol=0)


def test_make_dataset_keeps_eta_in_domain():
    module = importlib.import_module("deqfam.generated.negative_binomial")
    ds = make_dataset(module, n_grid=30, seed=1)
    eta = ds.Z @ ds.W.T + ds.B
    assert float(eta.max()) < 0
    assert ds.Y.shape == (ds.Z.shape[0], 50)
    torch.testing.assert_close(
        ds.W.var(), torch.tensor(0.5, dtype=torch.float64), atol=0.15, rtol=0
    )


# The sampling bug: a user spec *named* poisson whose law is Poisson(2 e^eta) (A = 2 e^eta,
# h = 2^y / y!) was sampled as Poisson(e^eta) because the sampler was chosen by name.
NAMED_POISSON_SCALED = """\
name: poisson
description: counts with mean 2 e^eta
support: nonnegative_integers
sufficient_statistic: y
log_partition: 2*exp(eta)
base_measure: 2**y/factorial(y)
domain: [-oo, oo]
"""

DRAWS = 20_000


@pytest.mark.parametrize("eta0", [-1.0, 0.0, 0.8])
def test_spec_named_poisson_with_a_2exp_is_sampled_by_its_law(tmp_path, eta0):
    spec = tmp_path / "poisson.yaml"
    spec.write_text(NAMED_POISSON_SCALED)
    family = generate(spec, tmp_path / "out", check_admissibility=False).FAMILY
    y = sample(
        family, torch.full((DRAWS,), eta0, dtype=torch.float64), torch.Generator().manual_seed(8)
    )
    # Poisson(mu), mu = 2 e^eta (closed form): mean = variance = mu, fourth cumulant mu,
    # so SE(mean) = sqrt(mu/n) and SE(variance) = sqrt((mu + 2 mu^2)/n).
    mu = 2.0 * math.exp(eta0)
    se_mean, se_var = math.sqrt(mu / DRAWS), math.sqrt((mu + 2 * mu**2) / DRAWS)
    assert abs(float(y.mean()) - mu) < 4 * se_mean, (float(y.mean()), mu)
    assert abs(float(y.var()) - mu) < 4 * se_var, (float(y.var()), mu)


def test_renamed_builtin_poisson_is_identified_and_sampled_exactly(tmp_path):
    text = (ROOT / "specs" / "poisson.yaml").read_text().replace("name: poisson", "name: counts")
    spec = tmp_path / "counts.yaml"
    spec.write_text(text)
    family = generate(spec, tmp_path / "out", check_admissibility=False).FAMILY
    assert family.name == "counts"
    assert family.exact_sampler == ExactSampler("poisson", {"scale": 1.0})
    eta = torch.linspace(-2.0, 2.0, DRAWS, dtype=torch.float64)
    y = sample(family, eta, torch.Generator().manual_seed(9))
    # exact: the very draws of torch's Poisson sampler at rate e^eta from the same stream
    expected = torch.poisson(torch.exp(eta), generator=torch.Generator().manual_seed(9))
    assert torch.equal(y, expected)


def test_unidentified_family_uses_generic_sampler_and_refuses_loose_modules():
    family = FAMILIES["bernoulli_poisson"]
    assert family.exact_sampler is None and family.has_base_measure
    with pytest.raises(TypeError, match="FAMILY"):
        sample(object(), torch.tensor([0.0], dtype=torch.float64))
