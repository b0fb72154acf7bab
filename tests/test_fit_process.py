"""The whole ``deqfam fit`` process: what it imports and which generated module it uses.

A built-in family is fitted from its committed module and a spec file generated before from
the per-user cache, found by the SHA-256 of the spec text without SymPy
(``deqfam.family_lookup``); the admissibility rule still applies to what is found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from deqfam.api import InadmissibleFamilyError, cache_dir, family_module, generate
from deqfam.derive.generator_version import GENERATOR_VERSION
from deqfam.family_lookup import known_module

ROOT = Path(__file__).resolve().parents[1]

#: runs ``deqfam fit`` in a fresh interpreter and prints which heavy modules it imported
_FIT_AND_REPORT = textwrap.dedent(
    """
    import json, sys
    from deqfam.cli import main
    code = main(sys.argv[1:])
    heavy = ("sympy", "torch._dynamo", "jinja2", "deqfam.derive.family", "deqfam.derive.codegen")
    print(json.dumps({"code": code, "imported": [m for m in heavy if m in sys.modules]}))
    """
)


def _run_fit(args: list[str], cache: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DEQFAM_CACHE": str(cache)}
    proc = subprocess.run(
        [sys.executable, "-c", _FIT_AND_REPORT, "fit", *args, "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def counts(tmp_path_factory) -> Path:
    """Seeded Poisson counts, 40 x 6, saved as .npy."""
    root = tmp_path_factory.mktemp("data")
    gen = torch.Generator().manual_seed(3)
    rate = torch.exp(torch.randn(40, 6, generator=gen, dtype=torch.float64) * 0.5)
    np.save(root / "y.npy", torch.poisson(rate, generator=gen).numpy())
    return root / "y.npy"


def test_importing_the_cli_imports_no_heavy_library():
    code = (
        "import sys, deqfam.cli; "
        "print([m for m in ('sympy', 'torch', 'matplotlib', 'scipy', 'jinja2') "
        "if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def test_builtin_fit_process_never_imports_sympy(counts, tmp_path):
    """A built-in family is fitted from its committed module: no SymPy, no derivation, no
    code generation, no torch._dynamo (which imports SymPy); the saved spec is the built-in
    spec file's text."""
    out = tmp_path / "fit"
    report = _run_fit(
        [str(counts), "--family", "poisson", "--latent-dim", "2", "--out", str(out)],
        tmp_path / "cache",
    )
    assert report == {"code": 0, "imported": []}
    spec_file = ROOT / "specs" / "poisson.yaml"
    assert (out / "spec.yaml").read_bytes() == spec_file.read_bytes()
    assert np.load(out / "latents.npy").shape == (40, 2)
    assert not (tmp_path / "cache").exists()  # nothing was generated


def _renamed_spec(builtin: str, name: str, folder: Path) -> Path:
    """A user spec file: the built-in's spec text under another family name."""
    text = (ROOT / "specs" / f"{builtin}.yaml").read_text(encoding="utf-8")
    path = folder / f"{name}.yaml"
    path.write_text(text.replace(f"name: {builtin}", f"name: {name}", 1), encoding="utf-8")
    return path


def test_user_spec_is_derived_once_then_fitted_from_the_cache(counts, tmp_path, monkeypatch):
    """The first fit of a spec file generates its module into the cache (here in this
    process); a later ``deqfam fit`` process finds it by the spec's digest and derives
    nothing, with the same result as fitting the generated module directly."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("DEQFAM_CACHE", str(cache))
    spec = _renamed_spec("poisson", "my_counts", tmp_path)
    module = family_module(spec)  # derived, checked and generated into the cache
    assert Path(module.__file__).parent.parent == cache_dir()
    out = tmp_path / "fit"
    report = _run_fit(
        [str(counts), "--family", str(spec), "--latent-dim", "2", "--out", str(out)], cache
    )
    assert report == {"code": 0, "imported": []}
    assert (out / "spec.yaml").read_bytes() == spec.read_bytes()
    from deqfam.fitting import fit

    direct = fit(torch.as_tensor(np.load(counts)), module, 2, progress=False)
    np.testing.assert_allclose(np.load(out / "latents.npy"), direct.latents, rtol=1e-10)


def test_edited_spec_is_not_served_a_stale_module(tmp_path, monkeypatch):
    monkeypatch.setenv("DEQFAM_CACHE", str(tmp_path / "cache"))
    spec = _renamed_spec("poisson", "my_counts", tmp_path)
    family_module(spec)
    assert known_module(spec, cache_dir(), GENERATOR_VERSION, False) is not None
    spec.write_text(spec.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    assert known_module(spec, cache_dir(), GENERATOR_VERSION, False) is None
    assert known_module(spec, cache_dir(), GENERATOR_VERSION + "x", False) is None


def test_cached_inadmissible_module_is_refused_without_the_flag(tmp_path, monkeypatch):
    """A module generated on request (--allow-inadmissible) is found only by a run that asks
    again; any other run is refused as before."""
    monkeypatch.setenv("DEQFAM_CACHE", str(tmp_path / "cache"))
    spec = _renamed_spec("fermi_dirac", "my_fd", tmp_path)
    with pytest.warns(UserWarning, match="NOT admissible"):
        generate(spec, allow_inadmissible=True)
    assert known_module(spec, cache_dir(), GENERATOR_VERSION, False) is None
    with pytest.warns(UserWarning, match="NOT admissible"):
        found = known_module(spec, cache_dir(), GENERATOR_VERSION, True)
        assert found is not None
        family_module(spec, allow_inadmissible=True)
    with pytest.raises(InadmissibleFamilyError):
        family_module(spec)


def test_builtin_with_a_stale_committed_module_is_not_used(monkeypatch):
    """The committed module is used only when its recorded digest is today's spec text's."""
    import deqfam.family_lookup as lookup

    assert lookup.builtin_committed_module("poisson") is not None
    monkeypatch.setattr(lookup, "builtin_spec_text", lambda name: "name: changed\n")
    assert lookup.builtin_committed_module("poisson") is None
