"""``deqfam derive``, ``check`` and ``generate`` for a vector family (k natural parameters)."""

from __future__ import annotations

import argparse
import json

import sympy as sp

from deqfam.commands.common import EXIT_BAD_INPUT, EXIT_NEGATIVE, EXIT_OK, removed_if_failed
from deqfam.derive.vector_derivation import VectorFamily
from deqfam.vocab import Verdict


def _fmt(expr, latex: bool) -> str:
    if expr is None:
        return "(no closed form found)"
    if isinstance(expr, tuple):
        expr = sp.Matrix(expr)
    return sp.latex(expr) if latex else sp.sstr(expr)


def vector_derivation_rows(fam: VectorFamily) -> list[tuple[str, object]]:
    """The derived objects of a vector family, labelled, in display order."""
    return [
        ("T(y)", fam.T),
        ("h(y)", fam.h),
        ("A(eta)", fam.A),
        ("mean = grad A", fam.grad),
        ("covariance = Hess A", fam.hessian),
        ("inverse mean", fam.inverse_mean),
        ("stable A", fam.A_stable),
        ("stable mean", fam.grad_stable),
        ("stable covariance", fam.hessian_stable),
    ]


def cmd_derive_vector(fam: VectorFamily, args: argparse.Namespace) -> int:
    from deqfam.derive.admissibility.vector.verdict import vector_convexity_summary
    from deqfam.derive.vector_check import hessian_positive_definite

    params = ", ".join(f"{k}={v}" for k, v in fam.parameters.items()) or "none"
    box = " x ".join(
        f"{e} in ({lo}, {hi})" for e, (lo, hi) in zip(fam.etas, fam.domain, strict=True)
    )
    print(f"family {fam.name}: {fam.description}")
    print(f"support {fam.support}; parameters {params}; domain {box}")
    for label, expr in vector_derivation_rows(fam):
        text = "(not given in the spec)" if label == "h(y)" and expr is None else None
        print(f"{label:26s} {text or _fmt(expr, args.latex)}")
    pd = vector_convexity_summary([hessian_positive_definite(fam)])
    print(f"{'Hess A positive definite':26s} {pd['status']} ({pd['method']})")
    return EXIT_OK


def cmd_check_vector(fam: VectorFamily, args: argparse.Namespace) -> int:
    from deqfam.derive.vector_check import check_vector_family

    report = check_vector_family(fam)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report.format_text())
    if getattr(args, "plot", None):
        print("deqfam: no plot for a vector family (the report has no tilt curves)")
    return int(report.exit_code)


def cmd_generate_vector(fam: VectorFamily, args: argparse.Namespace) -> int:
    """Write ``<name>.py`` and, for ``--target cpp|cuda|all``, ``<name>_kernels.cpp`` /
    ``.cu``; a family the check rejects is refused (exit 1) unless ``--allow-inadmissible``."""
    import sys

    from deqfam.derive.vector_check import check_vector_family
    from deqfam.derive.vector_codegen import write_vector_generated
    from deqfam.derive.vector_kernels import write_vector_kernels

    report = check_vector_family(fam)
    verdict = Verdict(report.verdict)
    warning = None
    if verdict is Verdict.NOT_ADMISSIBLE:
        if not args.allow_inadmissible:
            print(
                f"deqfam: refused: {fam.name} is not admissible: {report.reason}", file=sys.stderr
            )
            return EXIT_NEGATIVE
        warning = f"deqfam check: not admissible ({report.reason})"
    elif verdict is Verdict.INCONCLUSIVE:
        warning = f"deqfam check: inconclusive ({report.reason})"
    from deqfam.vector_accuracy import vector_accuracy_gate

    if not vector_accuracy_gate(fam, bool(getattr(args, "require_accurate", False))):
        return EXIT_BAD_INPUT
    kernels = {"all": ("cpp", "cuda"), "cpp": ("cpp",), "cuda": ("cuda",)}.get(args.target, ())
    with removed_if_failed(args.output):
        written = write_vector_generated(fam, args.output, warning=warning, verdict=verdict.value)
        written.update(write_vector_kernels(fam, args.output, kernels, warning=warning))
    for target, path in written.items():
        print(f"{target:6s} {path}")
    return EXIT_OK
