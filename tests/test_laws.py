"""Symbolic law identification (derive/laws.py): what a family *is*, never its name."""

from __future__ import annotations

import pytest

from deqfam.derive.family import builtin_names, load_family
from deqfam.derive.laws import find_law, identify_law
from deqfam.derive.spec import parse_spec

# Expected law and parameters, read off each built-in spec file by hand (specs/*.yaml).
EXPECTED = {
    "bernoulli": ("bernoulli", {}),
    "binomial": ("binomial", {"n": 16.0}),
    "bose_einstein": ("bose_einstein", {"j": 1.5, "beta": 1.0}),
    "continuous_bernoulli": ("continuous_bernoulli", {}),
    "fermi_dirac": None,  # not a known law (and not admissible)
    "gamma": ("gamma", {"k": 2.0}),
    "gaussian": ("gaussian", {"variance": 1.0}),
    "ising": ("ising", {}),
    "negative_binomial": ("negative_binomial", {"r": 3.0}),
    "poisson": ("poisson", {"scale": 1.0}),
}


def test_expected_table_covers_every_builtin():
    assert sorted(EXPECTED) == builtin_names()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_laws(name):
    found = identify_law(load_family(name))
    got = None if found is None else (found.law, found.parameters)
    assert got == EXPECTED[name]


@pytest.mark.parametrize("path", ["examples/bernoulli_poisson.yaml", "examples/logarithmic.yaml"])
def test_examples_are_no_known_law(path):
    assert identify_law(load_family(path)) is None


def _family(log_partition: str, support: str = "nonnegative_integers", **extra: str):
    lines = [
        "name: poisson",  # the name never matters
        f"support: {support}",
        f"sufficient_statistic: {extra.get('statistic', 'y')}",
        f"log_partition: {log_partition}",
        f"domain: {extra.get('domain', '[-oo, oo]')}",
    ]
    return load_family(parse_spec("\n".join(lines) + "\n", source="<test>"))


@pytest.mark.parametrize(
    ("A", "support", "expected"),
    [
        ("2*exp(eta)", "nonnegative_integers", ("poisson", {"scale": 2.0})),
        ("exp(eta) + 3", "nonnegative_integers", ("poisson", {"scale": 1.0})),  # constant
        ("log(2*cosh(eta))", "plus_minus_one", ("ising", {})),  # h = 1 instead of 1/2
        ("5*log(1 + exp(eta))", "nonnegative_integers", ("binomial", {"n": 5.0})),
        ("3*eta**2", "real", ("gaussian", {"variance": 6.0})),
        ("exp(eta)", "positive_integers", None),  # support differs from Poisson's
        ("5/2*log(1 + exp(eta))", "nonnegative_integers", None),  # n must be an integer
        ("exp(eta) + exp(2*eta)/2", "nonnegative_integers", None),  # a different law
    ],
)
def test_identification_by_expressions(A, support, expected):
    found = find_law(_family(A, support))
    got = None if found is None else (found.law, found.parameters)
    assert got == expected


def test_statistic_other_than_y_is_not_identified():
    assert find_law(_family("exp(eta)", statistic="2*y")) is None
