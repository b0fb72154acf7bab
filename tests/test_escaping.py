"""Text that reaches a generated file stays text (issue 17, items 1 and 11's ``\\x``).

Hostile text goes into every field that reaches a generated file (the spec's file name, its
description, the admissibility warning) and out through every target (.py, .cpp, .cu): the
Python module must parse and import without running the payload (a marker file that the
payload would create stays absent), the kernels' comment header must compile as C++ without
the injected declaration (``g++ -fsyntax-only``), and literals must round-trip to the exact
original text. Names that become identifiers are refused, not escaped.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

from deqfam.api import import_generated
from deqfam.derive import escape
from deqfam.derive.codegen import TARGETS, output_paths, render, write_generated  # every target
from deqfam.derive.family import load_family

#: The payload of issue 17: creates PWNED in the current folder if it ever runs as code.
RUN = 'import os; os.system("touch PWNED")'
#: Text that breaks out of each context if written unescaped.
HOSTILE = {
    "newline": f"evil\n{RUN}\n#",
    "carriage_return": f"evil\r{RUN}\r#",
    "line_separators": f"a\u2028{RUN}\u2029\x0c\x0b\x85b",
    "triple_quotes": f'"""\n{RUN}\n"""',
    "quote": '" + __import__("os").system("touch PWNED") + "',
    "backslash_escapes": "\\x \\N \\u \\N{BULLET} \\U0001 trailing \\",
    "c_comment_end": "*/ int injected = 1; /* ??/",
    "c_line_splice": "splice \\\nint injected = 1;",
    "bidi_and_invisible": "abc\u202eevil\u2066x\u200b\ufeff\x00\x1b[31m",
    "non_ascii": "Poisson \u2014 \u03bb, caf\u00e9, \U0001f600",
}
FIELDS = ("source", "description", "warning")
HAVE_GXX = shutil.which("g++") is not None


@pytest.fixture(scope="module")
def gaussian():
    return load_family("gaussian")


def _with(family, *, source=None, description=None, name=None, parameters=None):
    """``family`` with spec fields replaced, bypassing the spec reader's own refusals (so
    codegen's escaping is tested on its own)."""
    changes = {}
    if source is not None:
        changes["source"] = source
    if description is not None:
        changes["description"] = description
    spec = dataclasses.replace(family.spec, **changes)
    extra = {} if name is None else {"name": name}
    if parameters is not None:
        extra["parameters"] = parameters
    return dataclasses.replace(family, spec=spec, **extra)


def _render_field(family, field: str, text: str, target: str) -> str:
    if field == "source":  # the file name (no '/': the generator keeps only the name)
        return render(_with(family, source=text.replace("/", "|")), target)
    if field == "description":
        return render(_with(family, description=text), target)
    return render(family, target, warning=text)


def _comment_header(source: str) -> str:
    """The leading comment block of a kernel file: everything before its first preprocessor
    line (an #include, or the fused source's #if around the SIMD declarations)."""
    return re.split(r"^#", source, maxsplit=1, flags=re.MULTILINE)[0]


# --------------------------------------------------------------------------------------------
# The escaping functions, one per context
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(HOSTILE))
def test_python_literal_round_trips_as_one_ascii_line(case):
    text = HOSTILE[case]
    lit = escape.python_string_literal(text)
    assert lit.isascii() and "\n" not in lit and "\r" not in lit
    assert ast.literal_eval(lit) == text


@pytest.mark.parametrize("case", list(HOSTILE))
def test_python_docstring_round_trips_and_stays_one_statement(case):
    text = HOSTILE[case]
    tree = ast.parse(f'"""{escape.python_docstring(text)}"""\n')
    assert len(tree.body) == 1
    assert ast.literal_eval(tree.body[0].value) == text


@pytest.mark.parametrize("case", list(HOSTILE))
def test_python_comment_is_one_line_of_printable_ascii(case):
    out = escape.python_comment(HOSTILE[case])
    assert all(" " <= ch <= "~" for ch in out)
    # every backslash starts a \uXXXX / \UXXXXXXXX escape: the output is unambiguous
    assert "\\" not in re.sub(r"\\u[0-9a-f]{4}|\\U[0-9a-f]{8}", "", out)
    tree = ast.parse(f"x = 1  # {out}\n")
    assert len(tree.body) == 1  # nothing after the comment became code


@pytest.mark.skipif(not HAVE_GXX, reason="g++ not installed")
def test_c_comments_compile_without_the_injected_declaration(tmp_path):
    lines = []
    for text in HOSTILE.values():
        out = escape.c_comment(text)
        assert all(" " <= ch <= "~" for ch in out) and "*/" not in out and "/*" not in out
        lines += [f"// {out}", f"/* {out} */"]
    # an injected `int injected = 1;` would redefine this one: g++ would fail
    src = "\n".join(lines) + "\nint injected = 0;\nint main() { return injected; }\n"
    proc = subprocess.run(
        ["g++", "-fsyntax-only", "-trigraphs", "-Werror", "-Wall", "-x", "c++", "-"],
        input=src,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("bad", ["a b", "x\ny", "1abc", "na\u00efve", "", "a;b", "n\u0430me"])
def test_names_that_are_not_identifiers_are_refused(bad):
    with pytest.raises(ValueError, match="ASCII identifier"):
        escape.identifier(bad, "family name")


# --------------------------------------------------------------------------------------------
# Every field through every template and target
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("field", FIELDS)
def test_hostile_field_stays_text_in_every_target(gaussian, field, target, tmp_path):
    text = "\n".join(HOSTILE.values())
    out = _render_field(gaussian, field, text, target)
    assert out.isascii(), "generated files are pure ASCII (everything else is escaped)"
    if target == "torch":
        tree = ast.parse(out)
        imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        assert all(
            "deqfam" in (getattr(n, "module", None) or "") or n.names[0].name in ("math", "torch")
            for n in imports
        ), "the payload's `import os` must not reach the module's code"
    else:
        header = _comment_header(out)
        assert all(ln == "" or ln.startswith("//") for ln in header.splitlines())
        assert "injected = 1" not in out.split("#include", 1)[1]
        if HAVE_GXX:
            src = header + "\nint injected = 0;\nint main() { return injected; }\n"
            proc = subprocess.run(
                ["g++", "-fsyntax-only", "-trigraphs", "-x", "c++", "-"],
                input=src,
                capture_output=True,
                text=True,
                check=False,
            )
            assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("field", FIELDS)
def test_generated_module_imports_without_running_the_payload(
    gaussian, field, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    text = "\n".join(HOSTILE.values())
    out = tmp_path / field
    if field == "source":
        fam, warning = _with(gaussian, source=text.replace("/", "|")), None
    elif field == "description":
        fam, warning = _with(gaussian, description=text), None
    else:
        fam, warning = gaussian, text
    path = write_generated(fam, out, targets=("torch",), warning=warning)["torch"]
    module = import_generated(path)
    assert not (tmp_path / "PWNED").exists()
    if field == "warning":  # the literal holds exactly the warning text
        assert module.ADMISSIBILITY_WARNING == text
    if field == "description":  # the docstring holds it too (ruff strips trailing blanks)
        assert module.__doc__.startswith("gaussian: evil\nimport os;")
        assert "\u202e" in module.__doc__ and '"""' in module.__doc__
    assert module.SUPPORT == "real" and module.NAME == "gaussian"


def test_description_with_backslash_escapes_does_not_break_formatting(gaussian):
    """Issue 17 item 11: a description containing ``\\x`` crashed ruff (invalid escape)."""
    golden = render(gaussian, "torch")
    for desc in ("\\x", "\\N", "\\u", "a \\xZZ b", '"""', 'ends with "', "ends with \\"):
        out = render(_with(gaussian, description=desc), "torch")
        body = ast.parse(out).body
        assert ast.literal_eval(body[0].value).startswith(f"gaussian: {desc}")
        # the code after the docstring is exactly the code generated without it
        assert out.split("\nimport math\n", 1)[1] == golden.split("\nimport math\n", 1)[1]


def test_hostile_names_are_refused_by_the_generator(gaussian):
    with pytest.raises(ValueError, match="family name"):
        render(_with(gaussian, name='x"; import os; #'), "torch")
    with pytest.raises(ValueError, match="parameter name"):
        render(_with(gaussian, parameters={"n\nimport os": 1}), "cpp")


def test_parameter_values_are_exact_float_literals():
    fam = load_family("binomial")
    module_text = render(fam, "torch")
    tree = ast.parse(module_text)
    (params,) = [
        n.value
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PARAMETERS"
    ]
    assert ast.literal_eval(params) == {k: float(v) for k, v in fam.parameters.items()}


# --------------------------------------------------------------------------------------------
# The scenario end to end: a spec file whose NAME carries code
# --------------------------------------------------------------------------------------------

EVIL_NAME = f"evil\n{RUN}\n#.yaml"


def _evil_spec(tmp_path: Path) -> Path:
    spec = tmp_path / EVIL_NAME
    spec.write_text(
        "name: evilname\nsupport: real\nlog_partition: eta**2/2\ndomain: [-oo, oo]\n",
        encoding="utf-8",
    )
    return spec


def test_evil_file_name_through_deqfam_generate(tmp_path, monkeypatch):
    import deqfam

    monkeypatch.chdir(tmp_path)
    module = deqfam.generate(_evil_spec(tmp_path), out_dir=tmp_path / "gen")
    assert not (tmp_path / "PWNED").exists()
    first = Path(module.__file__).read_text(encoding="ascii").splitlines()[1]
    assert first.startswith("# evil\\u000aimport os;")
    assert module.NAME == "evilname"


def test_evil_file_name_through_deqfam_export_cli(tmp_path, monkeypatch, capsys):
    from deqfam.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEQFAM_CACHE", str(tmp_path / "cache"))
    spec = _evil_spec(tmp_path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.(script|load).*deprecated")
        rc = main(["export", str(spec), "--format", "torchscript", "-o", "x.pt"])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "x.pt").is_file()
    assert not (tmp_path / "PWNED").exists()
    cached = list((tmp_path / "cache" / "generated").rglob("evilname.py"))
    assert len(cached) == 1 and "\\u000aimport os" in cached[0].read_text(encoding="ascii")


def test_all_targets_written_for_an_evil_file_name(tmp_path):
    fam = load_family(_evil_spec(tmp_path))
    written = write_generated(fam, tmp_path / "out", targets=TARGETS)
    assert set(written.values()) == set(output_paths(fam, tmp_path / "out").values())
    for path in written.values():
        text = path.read_text(encoding="ascii")
        assert f"\n{RUN}\n" not in text
