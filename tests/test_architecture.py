"""The folders are the architecture: derive/ never imports torch, runtime/ never SymPy.

Checked in fresh interpreters (an import anywhere in the test process would mask it) and
statically on every module's import statements.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules(folder: str) -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(ROOT / folder)]))


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize(("folder", "forbidden"), [("derive", "torch"), ("runtime", "sympy")])
def test_no_forbidden_imports_in_source(folder, forbidden):
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / folder).rglob("*.py")
        if forbidden in _imported_roots(p)
    ]
    assert offenders == [], f"{folder}/ must not import {forbidden}: {offenders}"


@pytest.mark.parametrize(("folder", "forbidden"), [("derive", "torch"), ("runtime", "sympy")])
def test_no_forbidden_imports_at_runtime(folder, forbidden):
    mods = [f"deqfam.{folder}.{m}" for m in _modules(folder)]
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"print({forbidden!r} in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "False", f"importing deqfam.{folder} pulled in {forbidden}"


@pytest.mark.parametrize("module", ["vocab", "expansions"])
def test_shared_module_imports_neither_torch_nor_sympy(module):
    """deqfam/vocab.py and deqfam/expansions.py are shared by derive/ and runtime/: they may
    pull in neither side."""
    assert not {"torch", "sympy"} & _imported_roots(ROOT / "deqfam" / f"{module}.py")
    code = f"import sys, deqfam.{module}\nprint('torch' in sys.modules, 'sympy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "False False", out


def test_every_subpackage_is_listed_in_pyproject():
    """A non-editable install ships only the packages pyproject lists: every folder with an
    ``__init__.py`` under a mapped package must be listed, or it vanishes from wheels."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    expected = set()
    for package, folder in config["package-dir"].items():
        for init in (root / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(root / folder)
            if any(part.startswith((".", "__")) for part in rel.parts):
                continue
            expected.add(".".join([package, *rel.parts]))
    assert expected <= listed, f"missing from pyproject packages: {sorted(expected - listed)}"


#: Builtins that run text as code; the library prints code into generated modules instead.
_CODE_RUNNING_BUILTINS = {"exec", "eval", "compile"}


def _code_running_calls(path: Path) -> list[str]:
    """``file:line name`` of every call of the builtins ``exec``/``eval``/``compile`` (a Call
    whose function is the bare Name; methods such as ``module.eval()``, ``re.compile`` or
    ``torch.compile`` and names such as ``_eval`` are attributes or other names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path}:{node.lineno} {node.func.id}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _CODE_RUNNING_BUILTINS
    ]


def test_scan_finds_code_running_builtins(tmp_path):
    """The scan itself: it flags the builtins and passes methods and look-alike names."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "exec(c)\nx = eval('1')\ncompile(s, 'f', 'exec')\nm.eval()\n_eval(a)\nre.compile('x')\n",
        encoding="utf-8",
    )
    found = _code_running_calls(sample)
    assert [f.split(" ")[1] for f in found] == ["exec", "eval", "compile"]


@pytest.mark.parametrize("folder", ["deqfam", "derive", "runtime"])
def test_no_exec_or_eval_in_the_library(folder):
    """One emitter: code printed from SymPy reaches torch through a template and a generated
    module, never through ``exec``/``eval``/``compile`` of text (DESIGN.md)."""
    offenders = [
        hit for p in sorted((ROOT / folder).rglob("*.py")) for hit in _code_running_calls(p)
    ]
    assert offenders == [], f"exec/eval/compile of text in {folder}/: {offenders}"


@pytest.mark.parametrize("folder", ["deqfam", "derive", "runtime", "generated"])
def test_library_never_imports_test_oracles(folder):
    """Oracles (tests/oracles/) check the library from outside:
    the library importing them would make those checks circular."""
    test_roots = {"tests", "oracles", "runtime_families"}
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / folder).rglob("*.py")
        if test_roots & _imported_roots(p)
    ]
    assert offenders == [], f"{folder}/ imports test code: {offenders}"
