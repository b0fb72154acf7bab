"""Exported artifacts load on their own: a fresh interpreter with `import torch` alone runs them.

Each export already verifies itself in a fresh process; these tests check that claim from
outside: the artifacts are loaded again in one clean subprocess (deqfam imports blocked) and
compared with the in-process layer and with closed forms / mpmath. Subprocesses that import
torch take seconds each, hence ``slow``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import mpmath
import pytest
import torch

from deqfam.api import builtin_module
from deqfam.runtime.export import (
    FORMATS,
    ActivationModule,
    export_artifact,
    probe_inputs,
    read_metadata,
)
from deqfam.runtime.export_reload import FreshReloadError, evaluate_in_fresh_process
from deqfam.runtime.export_trace import custom_ops_in

pytestmark = pytest.mark.slow
FAMILIES = ("gaussian", "bernoulli", "poisson", "bose_einstein")
SUFFIX = {"torchscript": "ts", "exported-program": "pt2"}
TOL = 1e-12

# loads every artifact with deqfam unimportable and prints its outputs as JSON
_LOADER = r"""
import json, sys
sys.modules["deqfam"] = None
import torch
torch.set_num_threads(1)
out = {}
for fmt, path, lo, hi in json.loads(sys.argv[1]):
    x = torch.linspace(lo, hi, 97, dtype=torch.float64)
    fn = torch.jit.load(path) if fmt == "torchscript" else torch.export.load(path).module()
    with torch.no_grad():
        out[path] = fn(x).tolist()
print(json.dumps(out))
"""


def _closed_form(name: str, x: torch.Tensor) -> torch.Tensor:
    """sigma = A' written independently of the generated code."""
    if name == "gaussian":  # A = eta^2/2
        return x.clone()
    if name == "bernoulli":  # A = log(1 + e^eta)
        return torch.sigmoid(x)
    if name == "poisson":  # A = e^eta
        return torch.exp(x)
    # bose_einstein, j = 1.5, beta = 1: A = Li_{5/2}(e^eta), sigma = Li_{3/2}(e^eta)
    vals = [float(mpmath.polylog(1.5, mpmath.exp(mpmath.mpf(v)))) for v in x.tolist()]
    return torch.tensor(vals, dtype=torch.float64)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every (family, format) artifact, exported once; with the fresh process's outputs."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("artifacts")
    results, jobs = {}, []
    for name in FAMILIES:
        module = builtin_module(name)
        x = probe_inputs(module)
        lo, hi = float(x[0]), float(x[-1])
        for fmt in FORMATS:
            path = folder / f"{name}.{SUFFIX[fmt]}"
            results[name, fmt] = export_artifact(module, fmt, path)
            jobs.append((fmt, str(path), lo, hi))
    proc = subprocess.run(
        [sys.executable, "-c", _LOADER, json.dumps(jobs)],
        capture_output=True,
        text=True,
        check=False,
        env={"OMP_NUM_THREADS": "1", "PATH": ""},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = json.loads(proc.stdout.strip().splitlines()[-1])
    return results, jobs, outputs


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", FAMILIES)
def test_artifact_runs_in_a_fresh_process_and_matches(exported, name, fmt):
    results, jobs, outputs = exported
    res = results[name, fmt]
    assert res.requires == [] and res.custom_ops == []
    assert "self-contained" in res.describe()
    _, path, lo, hi = next(j for j in jobs if j[1] == str(res.path))
    x = torch.linspace(lo, hi, 97, dtype=torch.float64)
    got = torch.tensor(outputs[path], dtype=torch.float64)
    module = builtin_module(name)
    torch.testing.assert_close(got, module.activation(x), rtol=TOL, atol=TOL)
    torch.testing.assert_close(got, _closed_form(name, x), rtol=TOL, atol=TOL)
    meta = read_metadata(res.path)
    assert meta["family"] == name and meta["requires"] == [] and meta["format"] == fmt
    assert meta["spec_sha256"] == module.SPEC_SHA256


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_fresh_check_catches_an_artifact_that_needs_deqfam(tmp_path):
    """The original defect: an artifact that records the generated op loads only where the
    generated module was imported. The fresh-process check must see that."""
    module = builtin_module("bernoulli")
    x = probe_inputs(module, n=9)
    scripted = torch.jit.script(ActivationModule(module))
    assert custom_ops_in(str(scripted.inlined_graph))[0].startswith("deqfam_gen::bernoulli_")
    path = tmp_path / "dependent.ts"
    scripted.save(str(path))
    same_process = torch.jit.load(str(path))(x)  # works here: the op is registered
    torch.testing.assert_close(same_process, torch.sigmoid(x), rtol=TOL, atol=TOL)
    with pytest.raises(FreshReloadError, match="does not load in a fresh process"):
        evaluate_in_fresh_process("torchscript", path, x)
