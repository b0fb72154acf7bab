"""The family contract everywhere: consumers read ``FAMILY`` (a ``TorchFamily``), never a
generated module's loose constants; the contract carries the typed admissibility verdict,
the plain-torch activation exporters trace, and the C++ kernel's op namespace; the module
cache is keyed by the generator version.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

from deqfam.api import (
    AdmissibilityNote,
    InadmissibleFamilyError,
    _cache_folder,
    builtin_module,
    check_module_admissibility,
)
from deqfam.derive.codegen import GENERATOR_VERSION, spec_digest
from deqfam.derive.family import load_family
from deqfam.runtime.family import TorchFamily
from deqfam.vocab import Verdict

ROOT = Path(__file__).resolve().parents[1]
#: the constants a generated module keeps for people; code reads them through FAMILY
LOOSE_CONSTANTS = frozenset(
    {
        "NAME",
        "DOMAIN",
        "SUPPORT",
        "PARAMETERS",
        "SPEC_SHA256",
        "ADMISSIBILITY_WARNING",
        "HAS_BASE_MEASURE",
        "SUP_ACTIVATION_GRAD",
        "SUPPORT_MAX",
    }
)
_GETATTR_LIKE = ("getattr", "hasattr", "setattr")


def loose_reads(source: str, filename: str = "<string>") -> list[str]:
    """``file:line name`` of every read of a loose module constant in ``source``: an
    attribute ``x.NAME`` or a ``getattr``/``hasattr`` with the constant's name as a literal."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute) and node.attr in LOOSE_CONSTANTS:
            found.append(f"{filename}:{node.lineno} .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _GETATTR_LIKE
        ):
            for arg in node.args[1:2]:
                if isinstance(arg, ast.Constant) and arg.value in LOOSE_CONSTANTS:
                    found.append(f"{filename}:{node.lineno} {node.func.id}({arg.value!r})")
    return found


def test_scanner_finds_planted_reads():
    """The scan is not vacuous: it reports each planted form of a loose read."""
    planted = (
        "m.NAME\n"
        "lo, hi = module.DOMAIN\n"
        "getattr(m, 'SPEC_SHA256', None)\n"
        "hasattr(m, 'HAS_BASE_MEASURE')\n"
        "m.FAMILY.name\n"  # the contract: fine
        "getattr(m, 'FAMILY')\n"  # fine
    )
    assert loose_reads(planted) == [
        "<string>:1 .NAME",
        "<string>:2 .DOMAIN",
        "<string>:3 getattr('SPEC_SHA256')",
        "<string>:4 hasattr('HAS_BASE_MEASURE')",
    ]


def test_library_reads_no_loose_module_constants():
    """deqfam/ and runtime/ take the contract (``as_torch_family(m)`` / ``m.FAMILY``); only a
    generated module's own code (generated/, the cache) may name its constants."""
    offenders = []
    for folder in ("deqfam", "runtime"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            offenders += loose_reads(path.read_text(encoding="utf-8"), rel)
    assert offenders == []


@pytest.mark.parametrize(
    ("name", "verdict"),
    # fermi_dirac: an exact negative series coefficient (tests/test_admissibility.py)
    [("poisson", Verdict.ADMISSIBLE), ("fermi_dirac", Verdict.NOT_ADMISSIBLE)],
)
def test_builtin_contract_records_the_typed_verdict(name, verdict):
    fam = builtin_module(name).FAMILY
    assert fam.admissibility is verdict
    assert (fam.admissibility_warning is None) == (verdict is Verdict.ADMISSIBLE)
    assert fam.spec_sha256 == spec_digest(load_family(name))


def _hand_family(verdict, warning) -> TorchFamily:
    """exp-family Poisson by hand: A = sigma = sigma' = e^eta, T(y) = y."""
    return TorchFamily(
        name="hand",
        domain=(-math.inf, math.inf),
        log_partition=torch.exp,
        activation=torch.exp,
        activation_grad=torch.exp,
        sufficient_statistic=lambda y: y,
        admissibility=verdict,
        admissibility_warning=warning,
    )


def test_refusal_follows_the_verdict_not_the_text():
    """A not_admissible verdict is refused whatever its warning says; a warning that reads
    like a refusal, under an inconclusive verdict, only warns."""
    with pytest.raises(InadmissibleFamilyError, match="verdict not_admissible"):
        check_module_admissibility(_hand_family("not_admissible", "some words"), False)
    with pytest.warns(UserWarning, match="some words"):
        check_module_admissibility(_hand_family("not_admissible", "some words"), True)
    looks_refused = _hand_family(Verdict.INCONCLUSIVE, "family hand is NOT admissible")
    with pytest.warns(UserWarning, match="NOT admissible"):
        assert check_module_admissibility(looks_refused, False) is looks_refused
    unchecked = _hand_family(None, None)
    assert check_module_admissibility(unchecked, False) is unchecked


def test_contract_converts_and_checks_the_verdict():
    assert _hand_family("inconclusive", "w").admissibility is Verdict.INCONCLUSIVE
    with pytest.raises(ValueError, match="unknown admissibility verdict"):
        _hand_family("fine", None)


def test_cache_folder_is_keyed_by_generator_version(monkeypatch):
    """A module cached by an older generator (no exact sampler, no log h) is never reused:
    the folder names the generator version, and another version gives another folder."""
    fam = load_family("poisson")
    digest = spec_digest(fam)[:16]
    names = {
        note: _cache_folder(fam, note).name
        for note in (
            None,
            AdmissibilityNote(Verdict.ADMISSIBLE),
            AdmissibilityNote(Verdict.INCONCLUSIVE, "w"),
            AdmissibilityNote(Verdict.NOT_ADMISSIBLE, "w"),
        )
    }
    assert len(set(names.values())) == 4  # every verdict (and none) has its own folder
    assert all(n.startswith(f"g{GENERATOR_VERSION}-{digest}") for n in names.values())
    monkeypatch.setattr("deqfam.api.GENERATOR_VERSION", GENERATOR_VERSION + "x")
    assert _cache_folder(fam, None).name not in names.values()


def test_generated_header_names_the_generator_version():
    head = (ROOT / "generated" / "poisson.py").read_text(encoding="utf-8").splitlines()[0]
    assert f"(generator {GENERATOR_VERSION}," in head


def test_export_reads_the_contract():
    """Export's probe, metadata and traced forward come from FAMILY: a hand-built family
    (no module) works, and the traced forward is the plain-torch body, not the custom op."""
    from deqfam.runtime.export import _metadata, probe_inputs
    from deqfam.runtime.export_trace import StandaloneActivation

    module = builtin_module("poisson")
    fam = module.FAMILY
    assert fam.activation_plain is not None
    assert StandaloneActivation(module).fn is fam.activation_plain
    eta = torch.linspace(-3.0, 3.0, 13, dtype=torch.float64)
    # sigma = e^eta for the Poisson family (closed form), through the traced forward
    torch.testing.assert_close(StandaloneActivation(fam)(eta), torch.exp(eta), rtol=1e-15, atol=0)
    graph = make_fx(StandaloneActivation(fam))(eta).graph  # the aten ops it records
    ops = " ".join(str(n.target) for n in graph.nodes if n.op == "call_function")
    assert "aten.exp" in ops and "deqfam" not in ops  # plain aten, not the generated op
    hand = _hand_family(None, None)
    assert StandaloneActivation(hand).fn is hand.activation  # no plain body: the activation
    lo, hi = (-20.0, 20.0)  # probe clips an infinite domain to [-20, 20]
    x = probe_inputs(hand, n=5)
    assert x[0] == pytest.approx(lo + 1e-3 * (hi - lo)) and x[-1] == pytest.approx(hi - 0.04)
    meta = json.loads(_metadata(module, "torchscript", []))
    assert meta["family"] == "poisson" and meta["admissibility"] == "admissible"
    assert meta["spec_sha256"] == spec_digest(load_family("poisson"))
    assert meta["admissibility_warning"] is None


def test_kernel_namespace_matches_the_cpp_source():
    """FAMILY.kernel_namespace is the namespace the generated C++ registers its op under."""
    from deqfam.runtime.extensions import _kernel_family

    for name in ("poisson", "binomial"):
        fam = builtin_module(name).FAMILY
        cpp = (ROOT / "generated" / f"{name}_kernels.cpp").read_text(encoding="utf-8")
        assert f"TORCH_LIBRARY({fam.kernel_namespace}, m)" in cpp
    with pytest.raises(ValueError, match="names no generated C\\+\\+ kernel"):
        _kernel_family(_hand_family(None, None))


def test_deep_layer_module_exports_its_layer_functions():
    """The generated deep-role module gathers its roles as LAYER; for the unmasked Poisson
    data layer they agree with the family contract and the closed forms
    (score_eta = y - e^eta, d2_eta = -e^eta, sigma = e^eta)."""
    from deqfam.api_deep import layer_functions
    from deqfam.derive.deep import derive_layer
    from deqfam.runtime.deep import LayerFunctions

    layer = layer_functions(derive_layer("poisson"))
    fam = builtin_module("poisson").FAMILY
    assert isinstance(layer, LayerFunctions) and layer.domain == fam.domain
    eta = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64)
    y = torch.arange(9, dtype=torch.float64)
    torch.testing.assert_close(layer.score_eta(y, eta), y - torch.exp(eta), rtol=1e-14, atol=0)
    torch.testing.assert_close(layer.d2_eta(y, eta), -fam.activation_grad(eta))
    torch.testing.assert_close(layer.activation(eta), fam.activation(eta))
