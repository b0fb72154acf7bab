"""``deqfam generate`` and ``deqfam export``: a family's generated code and its exported
artifacts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from deqfam import options as opt
from deqfam.commands.common import (
    EXIT_BAD_INPUT,
    EXIT_NEGATIVE,
    EXIT_OK,
    removed_if_failed,
    spec_family,
    spec_or_family,
)
from deqfam.derive.builtin_specs import builtin_names

if TYPE_CHECKING:
    from deqfam.derive.family import Family

# torch (deqfam.accuracy) and SymPy are imported by the commands that use them, so that
# importing the CLI for another command (fit of a built-in family) stays cheap


def cmd_generate(args: argparse.Namespace) -> int:
    from deqfam.accuracy import captured_numeric_warnings
    from deqfam.api import InadmissibleFamilyError, admissibility_note
    from deqfam.derive.codegen import TARGETS, write_generated

    targets = TARGETS if args.target == "all" else (args.target,)
    if args.builtins and args.param:
        raise opt.UsageError("deqfam generate: error: --param cannot be used with --builtins")
    if args.builtins:
        for name in builtin_names():
            code = cmd_generate(
                argparse.Namespace(
                    **{**vars(args), "spec": name, "builtins": False, "allow_inadmissible": True}
                )
            )
            if code != EXIT_OK:
                return code
        code = _generate_vector_builtins(args)
        if code != EXIT_OK:
            return code
        if "torch" in targets:  # modules shared by the built-ins (not per family)
            from deqfam.derive.emit import write_pcdeq_activations

            print(f"torch  {write_pcdeq_activations(args.output)}")
        return EXIT_OK
    if args.spec is None:
        print("deqfam: error: generate needs SPEC (or --builtins)", file=sys.stderr)
        return EXIT_BAD_INPUT
    fam = spec_family(args.spec, args)
    from deqfam.derive.family import Family  # spec_family derived it: SymPy is loaded

    if not isinstance(fam, Family):  # a vector family (k natural parameters)
        from deqfam.commands.vector_commands import cmd_generate_vector

        return cmd_generate_vector(fam, args)
    numeric: list[str] = []
    with captured_numeric_warnings(numeric):
        try:
            note = admissibility_note(fam, args.allow_inadmissible)
        except InadmissibleFamilyError as exc:
            print(f"deqfam: refused: {exc}", file=sys.stderr)
            return EXIT_NEGATIVE
        if not _accuracy_gate(fam, args.require_accurate, numeric):
            return EXIT_BAD_INPUT
        with removed_if_failed(Path(args.output)):
            written = write_generated(
                fam, args.output, targets, warning=note.warning, verdict=note.verdict
            )
    for target, path in written.items():
        print(f"{target:6s} {path}")
    return EXIT_OK


def _generate_vector_builtins(args: argparse.Namespace) -> int:
    """``generate --builtins`` for the vector built-ins (``specs/vector/``)."""
    from deqfam.derive.vector_builtins import vector_builtin_names

    for name in vector_builtin_names():
        ns = {**vars(args), "spec": name, "builtins": False, "allow_inadmissible": True}
        code = cmd_generate(argparse.Namespace(**ns))
        if code != EXIT_OK:
            return code
    return EXIT_OK


def _accuracy_gate(fam: Family, require_accurate: bool, numeric: list[str]) -> bool:
    """Measure the generated torch code against mpmath (deqfam/accuracy.py) and report.

    Prints the one-line summary; an inaccurate family gets a loud WARNING block on stderr
    naming the eta ranges, and is refused (False) under ``--require-accurate``.
    """
    from deqfam.accuracy import measure_rendered

    report = measure_rendered(fam)
    report.warnings = numeric
    if report.ok:
        print(f"accuracy {report.summary()}")
        return True
    head = "refused" if require_accurate else "WARNING"
    print(f"deqfam: {head}: generated code is INACCURATE.\n{report.format_text()}", file=sys.stderr)
    if require_accurate:
        print(
            "deqfam: nothing written (drop --require-accurate to write it anyway)", file=sys.stderr
        )
    return not require_accurate


def cmd_export(args: argparse.Namespace) -> int:
    from deqfam.api import family_module
    from deqfam.runtime.export import ExportError, export_artifact

    fmt = opt.export_format(args.format, args.output)
    module = family_module(
        spec_or_family(args.spec, args), allow_inadmissible=args.allow_inadmissible
    )
    try:
        with removed_if_failed(args.output):
            res = export_artifact(module, fmt, args.output)
    except ExportError as exc:
        print(f"deqfam: export failed: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"exported {module.FAMILY.name} activation as {fmt} to {args.output}; reloaded in "
        f"this process and in a fresh one, it matches the eager output (max |diff| = "
        f"{res.max_abs_diff:.3g}); {res.describe()}"
    )
    return EXIT_OK
