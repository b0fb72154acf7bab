"""The admissibility package: stage interface, atom registry, typed results, shared vocabulary.

``fixtures/admissibility_builtins.json`` holds, for every built-in, ``check(name).to_dict()``
(without ``elapsed_s``) and ``format_text()`` (without the timing line), captured from the
single-module ``derive/admissibility.py`` before it became a package. Recapture only when a
built-in spec or the check's mathematics changes on purpose::

    python -c "import json; from deqfam.derive.admissibility import check; \
from deqfam.derive.family import builtin_names; \
print(json.dumps({n: {'json': {k: v for k, v in (r := check(n)).to_dict().items() \
if k != 'elapsed_s'}, 'text': r.format_text().splitlines()[:-1]} for n in builtin_names()}, \
indent=1, sort_keys=True))" > tests/fixtures/admissibility_builtins.json
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from scipy import integrate, stats

from deqfam.derive.admissibility import (
    ATOMS,
    Atom,
    Evidence,
    Stage,
    StageResult,
    build_context,
    check,
    default_stages,
    recognise,
    register_atom,
    run_stages,
    unregister_atom,
)
from deqfam.derive.admissibility.atoms import affine, split_sign
from deqfam.derive.admissibility.stages import FourierStage
from deqfam.derive.concavity import SignVerdict, family_concavity
from deqfam.derive.family import derive_family, load_family
from deqfam.derive.spec import ETA, parse_spec
from deqfam.vocab import Finding, Outcome, Strength, Verdict

FIXTURE = json.loads(
    (Path(__file__).parent / "fixtures" / "admissibility_builtins.json").read_text("utf-8")
)


def user_family(log_partition: str, domain: str, support: str):
    """A user spec parsed and derived exactly as the CLI would."""
    text = (
        f"name: user\nsupport: {support}\nlog_partition: {log_partition}\n"
        f"parameters: {{}}\ndomain: {domain}\n"
    )
    return derive_family(parse_spec(text, source="<test>"))


# Below this size a float in a report is rounding noise of a float64 DFT or quadrature
# (the fixture's own error floors are 7e-16): its digits, and the lattice point where a
# noise-level minimum sits, change with the SIMD path numpy's FFT takes on a given CPU.
ROUNDING_NOISE = 1e-12
_TINY_NUMBER = re.compile(r"-?\d+(?:\.\d+)?e-(?:1[3-9]|[2-9]\d)")
_NOISE_MINIMUM = re.compile(r"(most negative \w+ ~0) at y=-?[\d.]+")


def without_rounding_noise(value):
    """The report with noise-level floats set to 0 and other floats to 9 significant digits.

    Strings are masked as ``text_without_rounding_noise`` masks lines; ``at_y`` (where the
    most negative DFT mass or density lies) is dropped when that value is noise.
    """
    if isinstance(value, float):
        return 0.0 if abs(value) < ROUNDING_NOISE else float(f"{value:.9g}")
    if isinstance(value, str):
        return text_without_rounding_noise([value])[0]
    if isinstance(value, list):
        return [without_rounding_noise(v) for v in value]
    if isinstance(value, dict):
        noise_min = any(
            k.startswith("most_negative") and isinstance(v, float) and abs(v) < ROUNDING_NOISE
            for k, v in value.items()
        )
        return {
            k: without_rounding_noise(v)
            for k, v in value.items()
            if not (k == "at_y" and noise_min)
        }
    return value


def text_without_rounding_noise(lines):
    """Report text with printed noise-level numbers (|x| < 1e-12) replaced by ``~0``."""
    masked = (_TINY_NUMBER.sub("~0", line) for line in lines)
    return [_NOISE_MINIMUM.sub(r"\1 at y=?", line) for line in masked]


@pytest.mark.parametrize("name", sorted(FIXTURE))
def test_builtin_reports_match_the_pre_package_module(name):
    """Typed results serialise to the JSON (and text) the single module produced.

    Equal up to rounding noise: numbers above 1e-12 to 9 significant digits, every string,
    count, outcome and verdict exactly.
    """
    rep = check(name)
    got = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    got.pop("elapsed_s")
    assert without_rounding_noise(got) == without_rounding_noise(FIXTURE[name]["json"])
    assert text_without_rounding_noise(
        rep.format_text().splitlines()[:-1]
    ) == text_without_rounding_noise(FIXTURE[name]["text"])
    assert isinstance(rep.verdict, Verdict)
    assert all(isinstance(e.outcome, Outcome) for e in rep.evidence)


def test_default_stages_follow_the_stage_interface():
    stages = default_stages((-1.5, 0.25, 1.75))
    assert all(isinstance(s, Stage) for s in stages)
    assert [s.name for s in stages] == [
        "domain",
        "convexity",
        "structure",
        "series",
        "fourier@-1.5",
        "fourier@0.25",
        "fourier@1.75",
        "exp_convexity",
        "hankel@0.25",
    ]
    names = [s.name for s in default_stages((0.0,), structural=False, hankel=False)]
    assert "structure" not in names and not any(n.startswith("hankel") for n in names)


def test_one_fourier_stage_recovers_the_poisson_law():
    """A stage run on its own: the DFT masses at theta0 are Poisson(e^theta0) (scipy)."""
    theta = 0.25
    ctx = build_context(load_family("poisson"), (theta,))
    result = FourierStage(theta).run(ctx)
    assert isinstance(result, StageResult)
    assert [e.stage for e in result.evidence] == ["bound", "base_measure"]
    assert all(e.outcome == Outcome.PASS for e in result.evidence)
    (curve,) = result.curves
    ks = np.arange(30)
    got = np.array([curve.values[curve.y == k][0] for k in ks])
    np.testing.assert_allclose(got, stats.poisson(math.exp(theta)).pmf(ks), atol=1e-14, rtol=0)


class _Breaks(Stage):
    """A stage whose evaluation breaks down numerically."""

    name = "broken@1"
    stage = "broken"

    def run(self, ctx):
        raise ZeroDivisionError("on purpose")


def test_a_breakdown_is_inconclusive_and_a_bad_domain_stops_numerical_stages():
    fam = user_family("-log(1 - exp(eta))", "[-oo, 1]", "nonnegative_integers")
    ctx = build_context(fam, (-1.0,))
    evidence, curves = run_stages([*default_stages((-1.0,)), _Breaks()], ctx)
    # the declared domain fails (A is complex for eta > 0): only symbolic stages follow
    assert [e.stage for e in evidence] == ["domain", "convexity", "structure"]
    assert curves == []
    evidence, _ = run_stages([_Breaks()], build_context(load_family("poisson"), (0.0,)))
    (item,) = evidence
    assert item.stage == "broken" and item.outcome == Outcome.UNDECIDED
    assert "ZeroDivisionError: on purpose" in item.summary


def _match_hyperbolic_secant(term: sp.Expr):
    """-log(cos(v)), v affine in eta."""
    neg, body = split_sign(term)
    if neg and isinstance(body, sp.log) and isinstance(body.args[0], sp.cos):
        return affine(body.args[0].args[0])
    return None


HYPERBOLIC_SECANT = Atom(
    "hyperbolic_secant",
    "-log cos u",
    "hyperbolic secant: 1/cos u = int e^{u y} / (2 cosh(pi y/2)) dy (|u| < pi/2)",
    True,
    (-sp.pi / 2, sp.pi / 2),
    _match_hyperbolic_secant,
)


def _secant_density_tilted(y: float, u: float) -> float:
    """e^{u y} / (2 cosh(pi y / 2)), with log cosh x = |x| + log1p(e^{-2|x|}) - log 2."""
    x = abs(math.pi * y / 2)
    return math.exp(u * y - x - math.log1p(math.exp(-2 * x)))


def test_registering_an_atom_turns_numerical_evidence_into_a_proof():
    # the atom's claim, checked by quadrature: 1/cos(u) = int e^{uy} / (2 cosh(pi y/2)) dy
    for u in (-1.2, 0.3, 1.0):
        val, _ = integrate.quad(lambda y, u=u: _secant_density_tilted(y, u), -np.inf, np.inf)
        assert val == pytest.approx(1 / math.cos(u), rel=1e-9)
    fam = user_family("-log(cos(eta))", "[-1.5, 1.5]", "real")
    before = check(fam, tilts=(0.0,), hankel=False)
    assert (before.verdict, before.strength) == ("admissible", "numerical")
    assert recognise(fam.A, fam.domain) is None
    try:
        register_atom(HYPERBOLIC_SECANT)
        after = check(fam, tilts=(0.0,), hankel=False)
        # a declared domain beyond the atom's natural one is not proven
        assert recognise(fam.A, (sp.Integer(-2), sp.Integer(1))) is None
    finally:
        unregister_atom("hyperbolic_secant")
    assert (after.verdict, after.strength) == ("admissible", "proven")
    assert "hyperbolic secant" in after.stage("structure")[0].details["steps"][0]
    assert all(a.key != "hyperbolic_secant" for a in ATOMS)


def test_removing_an_atom_changes_the_verdict():
    """Ising at theta0 = 0: phi(r) = cos r vanishes on the path, so only the registry's
    Rademacher atom (cosh u = E e^{uY}, Y = +-1) decides."""
    with_atom = check("ising", tilts=(0.0,), hankel=False)
    assert (with_atom.verdict, with_atom.strength) == ("admissible", "proven")
    saved = list(ATOMS)
    try:
        assert unregister_atom("rademacher") is not None
        without = check("ising", tilts=(0.0,), hankel=False)
    finally:
        ATOMS[:] = saved
    assert without.verdict == "inconclusive" and without.exit_code == 3
    assert check("ising", tilts=(0.0,), hankel=False).verdict == "admissible"


def test_findings_share_one_vocabulary():
    rep = check("poisson")
    conv = rep.stage("convexity")[0].finding
    assert conv == Finding(
        Outcome.PASS, Strength.PROVEN, rep.convexity["min_A2"], rep.stage("convexity")[0].summary
    )
    # A'' = e^eta on the grid: its minimum is e^(min grid point), a closed form
    assert conv.value == pytest.approx(math.exp(rep.convexity["argmin"]), rel=1e-12)
    assert conv.proof and conv.to_dict()["outcome"] == "pass"
    base = rep.stage("base_measure")[0]
    assert base.finding.value == base.details["most_negative_mass"]
    assert not base.finding.proof and base.finding.strength == Strength.NUMERICAL
    skipped = Evidence("structure", Outcome.SKIPPED, None, "no rule").finding
    assert not skipped.decided and skipped.value is None
    # concavity (derive/) speaks the same vocabulary: poisson's sigma = e^eta is convex
    assert family_concavity("poisson").findings["concave"].outcome == Outcome.FAIL
    assert SignVerdict("numerical", "grid", worst=-0.5).finding == Finding(
        Outcome.PASS, Strength.NUMERICAL, -0.5, "grid"
    )
    assert SignVerdict("unknown", "?").finding.outcome == Outcome.UNDECIDED


def test_pcdeq_conditions_speak_the_vocabulary():
    from deqfam.runtime.pcdeq import Condition

    proof = Condition("concave_activation", True, -0.25, "sigma'' <= 0", "symbolic").finding
    assert (proof.outcome, proof.strength, proof.value) == ("pass", "proven", -0.25)
    grid = Condition("positivity", False, -1.0, "z* < 0", "grid").finding
    assert (grid.outcome, grid.strength) == (Outcome.FAIL, Strength.NUMERICAL)
    assert grid.detail == "positivity: z* < 0"


def test_registry_recognises_every_builtin_atom_form():
    oo = sp.oo
    forms = {
        "poisson": sp.exp(2 * ETA),
        "rademacher": sp.log(sp.cosh(ETA)),
        "bernoulli": sp.log(1 + sp.exp(ETA)),
        "geometric": -sp.log(1 - sp.exp(ETA)),
        "exponential": -sp.log(-ETA),
        "uniform": sp.log((sp.exp(ETA) - 1) / ETA),
        "compound_poisson": sp.polylog(2, sp.exp(ETA)),
    }
    for key, A in forms.items():
        law = next(a.law for a in ATOMS if a.key == key)
        domain = (-oo, sp.Integer(-1)) if key in ("geometric", "compound_poisson") else (-oo, oo)
        if key == "exponential":
            domain = (-oo, sp.Integer(0))
        rec = recognise(A, domain)
        assert rec is not None and rec.steps == (law,), key
