"""The post-init checks shared by the scalar and vector family contracts
(``runtime.family.normalise_family_fields`` and ``parse_interval``)."""

from __future__ import annotations

import math

import pytest
import torch

from deqfam.runtime.family import TorchFamily
from deqfam.runtime.vector_family import VectorTorchFamily
from deqfam.vocab import Support, Verdict


def _vector(**over):
    """A two-parameter family for the validation checks only (its callables are never
    evaluated here), with field overrides."""
    fields = dict(
        name="normal2",
        natural_parameters=("a", "b"),
        domain=(("-oo", "oo"), (-math.inf, 0)),
        log_partition=lambda e: -(e[..., 0] ** 2) / (4 * e[..., 1]) - torch.log(-2 * e[..., 1]) / 2,
        mean=lambda e: e,
        covariance=lambda e: torch.diag_embed(e),
        sufficient_statistic=lambda y: torch.stack([y, y * y], -1),
    )
    return VectorTorchFamily(**{**fields, **over})


def _scalar(**over):
    fields = dict(
        name="normal",
        domain=("-oo", "oo"),
        log_partition=lambda e: e * e / 2,
        activation=lambda e: e,
        activation_grad=torch.ones_like,
        sufficient_statistic=lambda y: y,
    )
    return TorchFamily(**{**fields, **over})


def test_both_contracts_normalise_support_parameters_and_verdict():
    for fam in (
        _vector(admissibility="admissible", parameters={"s": 2}),
        _scalar(admissibility="admissible", parameters={"s": 2}),
    ):
        assert fam.support is Support.REAL and fam.admissibility is Verdict.ADMISSIBLE
        with pytest.raises(TypeError):
            fam.parameters["s"] = 3
    assert _vector().domain == ((-math.inf, math.inf), (-math.inf, 0.0))
    assert _scalar().domain == (-math.inf, math.inf)


@pytest.mark.parametrize("build", [_vector, _scalar])
def test_both_contracts_refuse_bad_fields(build):
    with pytest.raises(TypeError, match="sufficient_statistic must be callable"):
        build(sufficient_statistic=1.0)
    with pytest.raises(TypeError, match="log_base_measure must be callable or None"):
        build(log_base_measure="log h")
    with pytest.raises(ValueError, match="unknown support 'reals'"):
        build(support="reals")
    with pytest.raises(ValueError, match="unknown admissibility verdict 'ok'"):
        build(admissibility="ok")


def test_empty_intervals_name_the_coordinate():
    with pytest.raises(ValueError, match=r"domain of b must be an interval lo < hi"):
        _vector(domain=((-1, 1), (0, 0)))
    with pytest.raises(ValueError, match=r"domain must be an interval lo < hi"):
        _scalar(domain=(1, "-oo"))
    with pytest.raises(ValueError, match=r"domain must be an interval lo < hi"):
        _scalar(domain=(0, 1, 2))
