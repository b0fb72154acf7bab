"""Samplers: moments against A' and A'' (and mpmath for Bose-Einstein), datasets."""

from __future__ import annotations

import importlib
import math

import mpmath
import pytest
import torch

from deqfam.api import generate
from deqfam.derive.family import builtin_names
from deqfam.runtime.datasets import ground_truth_latents, make_dataset, shape_labels
from deqfam.runtime.sampling import sample

N = 40_000


def _moment_check(module, eta0: float, y: torch.Tensor) -> None:
    """Sample mean and variance within 4 standard errors of A'(eta0) and A''(eta0).

    SE(mean) = sqrt(A''/n); SE(variance) = sqrt((kappa4 + 2 A''^2)/n), with the fourth
    cumulant kappa4 = A'''' from autograd of the generated A'''.
    """
    eta = torch.tensor([eta0], dtype=torch.float64, requires_grad=True)
    mean = float(module.activation(eta).detach())
    var = float(module.activation_grad(eta).detach())
    third = module.activation_grad2(eta)
    k4 = torch.autograd.grad(third.sum(), eta)[0] if third.requires_grad else 0.0
    n = y.numel()
    se_mean = math.sqrt(var / n)
    se_var = math.sqrt((float(k4) + 2 * var**2) / n)
    assert abs(float(y.mean()) - mean) < 4 * se_mean, (float(y.mean()), mean, se_mean)
    assert abs(float(y.var()) - var) < 4 * se_var, (float(y.var()), var, se_var)


SAMPLED = [n for n in builtin_names() if n != "fermi_dirac"]


@pytest.mark.parametrize("name", SAMPLED)
@pytest.mark.parametrize("eta0", [-2.3, -0.4])
def test_builtin_sampler_moments(name, eta0):
    module = importlib.import_module(f"deqfam.generated.{name}")
    gen = torch.Generator().manual_seed(17)
    y = sample(module, torch.full((N,), eta0, dtype=torch.float64), gen)
    _moment_check(module, eta0, y)


def test_bose_einstein_moments_match_mpmath_polylog():
    module = importlib.import_module("deqfam.generated.bose_einstein")
    j = module.PARAMETERS["j"]
    eta0 = -0.3
    y = sample(
        module, torch.full((N,), eta0, dtype=torch.float64), torch.Generator().manual_seed(3)
    )
    mean = float(mpmath.polylog(j, mpmath.exp(eta0)))
    var = float(mpmath.polylog(j - 1, mpmath.exp(eta0)))
    assert abs(float(y.mean()) - mean) < 4 * math.sqrt(var / N)
    assert float(y.min()) >= 0 and torch.equal(y, y.round())


USER_LATTICE = "examples/logarithmic.yaml"
USER_CONTINUOUS = """\
name: shifted_gaussian_user
description: unit-variance Gaussian written as a user spec (no exact sampler)
support: real
log_partition: eta**2/2 + eta
base_measure: exp(-(y - 1)**2/2)/sqrt(2*pi)
domain: [-oo, oo]
"""


def test_user_lattice_spec_sampler(tmp_path):
    module = generate(USER_LATTICE, tmp_path, check_admissibility=False)
    y = sample(
        module, torch.full((N,), -0.5, dtype=torch.float64), torch.Generator().manual_seed(5)
    )
    assert float(y.min()) >= 1
    _moment_check(module, -0.5, y)


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
