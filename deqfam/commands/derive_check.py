"""``deqfam list``, ``deqfam derive`` and ``deqfam check``: what a family is and whether
it is admissible."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from deqfam.commands.common import (
    EXIT_OK,
    removed_if_failed,
    spec_family,
)
from deqfam.derive.builtin_specs import builtin_names

if TYPE_CHECKING:  # SymPy is imported by the commands that print expressions
    import sympy as sp

    from deqfam.derive.family import Family


def _fmt(expr: sp.Expr | None, latex: bool, missing: str = "(no closed form found)") -> str:
    import sympy as sp

    if expr is None:
        return missing
    return sp.latex(expr) if latex else sp.sstr(expr)


def derivation_rows(fam: Family) -> list[tuple[str, sp.Expr | None]]:
    """The derived objects of a family, labelled, in display order."""
    return [
        ("T(y)", fam.T),
        ("h(y)", fam.h),
        ("A(eta)", fam.A),
        ("sigma = A'", fam.sigma),
        ("sigma' = A''", fam.dsigma),
        ("sigma'' = A'''", fam.d2sigma),
        ("inverse link (A')^-1(mu)", fam.inverse_link),
        ("stable A", fam.A_stable),
        ("stable sigma", fam.sigma_stable),
        ("stable sigma'", fam.dsigma_stable),
        ("stable sigma''", fam.d2sigma_stable),
    ]


def cmd_list(args: argparse.Namespace) -> int:
    from deqfam.derive.builtin_specs import vector_builtin_names
    from deqfam.derive.family import load_family

    for name in builtin_names():
        fam = load_family(name)
        print(f"{name:22s} {fam.description}")
    for name in vector_builtin_names():  # vector families: description only (no derivation)
        print(f"{name:22s} [vector] {_vector_description(name)}")
    return EXIT_OK


def _vector_description(name: str) -> str:
    from deqfam.derive.builtin_specs import vector_builtin_spec_text
    from deqfam.derive.spec import parse_spec

    return parse_spec(vector_builtin_spec_text(name), source=f"builtin:{name}").description


def _vector(fam) -> bool:
    from deqfam.derive.family import Family  # the command derives already: SymPy is loaded

    return not isinstance(fam, Family)


def cmd_derive(args: argparse.Namespace) -> int:
    fam = spec_family(args.spec, args)
    if _vector(fam):
        from deqfam.commands.vector_commands import cmd_derive_vector

        return cmd_derive_vector(fam, args)
    params = ", ".join(f"{k}={v}" for k, v in fam.parameters.items()) or "none"
    lo, hi = fam.domain
    print(f"family {fam.name}: {fam.description}")
    print(f"support {fam.support}; parameters {params}; domain eta in ({lo}, {hi})")
    for label, expr in derivation_rows(fam):
        missing = "(not given in the spec)" if label == "h(y)" else "(no closed form found)"
        print(f"{label:26s} {_fmt(expr, args.latex, missing)}")
    print(f"{'strict convexity':26s} {fam.convexity.status} ({fam.convexity.method})")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from deqfam.derive.admissibility import check, plot_report

    fam = spec_family(args.spec, args)
    if _vector(fam):
        from deqfam.commands.vector_commands import cmd_check_vector

        return cmd_check_vector(fam, args)
    report = check(fam)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report.format_text())
    if args.plot:
        with removed_if_failed(args.plot):
            written = plot_report(report, args.plot)
        if not args.json:
            print(f"plot written to {written}")
    return int(report.exit_code)
