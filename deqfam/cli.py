"""The ``deqfam`` command line: the one place where derive/, templates and runtime meet.

Exit codes: 0 ok, 1 a negative verdict, 2 bad input, 3 inconclusive.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import sympy as sp

from deqfam.derive.family import Family, builtin_names, load_family
from deqfam.derive.spec import SpecError

EXIT_OK, EXIT_NEGATIVE, EXIT_BAD_INPUT, EXIT_INCONCLUSIVE = 0, 1, 2, 3


def _fmt(expr: sp.Expr | None, latex: bool, missing: str = "(no closed form found)") -> str:
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
    for name in builtin_names():
        fam = load_family(name)
        print(f"{name:22s} {fam.description}")
    return EXIT_OK


def cmd_derive(args: argparse.Namespace) -> int:
    fam = load_family(args.spec)
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

    report = check(load_family(args.spec))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report.format_text())
    if args.plot:
        plot_report(report, args.plot)
        if not args.json:
            print(f"plot written to {args.plot}")
    return int(report.exit_code)


def cmd_generate(args: argparse.Namespace) -> int:
    from deqfam.api import InadmissibleFamilyError, _admissibility_warning
    from deqfam.derive.codegen import TARGETS, write_generated

    targets = TARGETS if args.target == "all" else (args.target,)
    if args.builtins:
        for name in builtin_names():
            code = cmd_generate(
                argparse.Namespace(
                    **{**vars(args), "spec": name, "builtins": False, "allow_inadmissible": True}
                )
            )
            if code != EXIT_OK:
                return code
        return EXIT_OK
    if args.spec is None:
        print("deqfam: error: generate needs SPEC (or --builtins)", file=sys.stderr)
        return EXIT_BAD_INPUT
    fam = load_family(args.spec)
    try:
        warning = _admissibility_warning(fam, args.allow_inadmissible)
    except InadmissibleFamilyError as exc:
        print(f"deqfam: refused: {exc}", file=sys.stderr)
        return EXIT_NEGATIVE
    for target, path in write_generated(fam, args.output, targets, warning=warning).items():
        print(f"{target:6s} {path}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from deqfam.api import family_module
    from deqfam.runtime.export import ExportError, export_activation

    module = family_module(args.spec)
    try:
        diff = export_activation(module, args.format, args.output)
    except ExportError as exc:
        print(f"deqfam: export failed: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"exported {module.NAME} activation as {args.format} to {args.output}; reloaded "
        f"artifact matches eager output (max |diff| = {diff:.3g})"
    )
    return EXIT_OK


def cmd_fit(args: argparse.Namespace) -> int:
    from deqfam.pipeline import fit, load_data
    from deqfam.runtime.train import TrainingError
    from deqfam.runtime.validation import DataError

    try:
        data = load_data(args.data)
        res = fit(
            data,
            args.family,
            args.latent_dim,
            lam=args.lam,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            tol=args.tol,
            seed=args.seed,
            weight_decay=args.weight_decay,
            out_dir=args.out,
            resume=args.resume,
            progress=not args.quiet,
        )
    except DataError as exc:
        print(f"deqfam: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingError as exc:
        print(f"deqfam: training stopped: {exc}", file=sys.stderr)
        return EXIT_NEGATIVE
    print(
        f"fitted {res.model.family.name} ExpFamPCA: final loss {res.history.loss[-1]:.6g}; "
        f"outputs in {args.out}"
    )
    print(f"training {res.history.stop_reason}: {res.history.stop_message}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from deqfam.pipeline import DemoConfig, run_demo

    summary = run_demo(
        DemoConfig(
            spec=args.spec,
            out=args.out,
            n_grid=args.n_grid,
            epochs=args.epochs,
            seed=args.seed,
            progress=not args.quiet,
        )
    )
    print(f"family {summary['family']}: {summary['verdict']} ({summary['strength']})")
    if "deq_procrustes" in summary:
        print(
            f"Procrustes error: DEQ {summary['deq_procrustes']:.5f}, "
            f"PCA {summary['pca_procrustes']:.5f}"
        )
    print(f"report: {Path(args.out) / 'report.md'}")
    return EXIT_OK if summary["verdict"] != "not_admissible" else EXIT_NEGATIVE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deqfam",
        description="Deep equilibrium layers derived from exponential-family specs.",
        epilog="SPEC is a built-in family name (deqfam list) or a path to a YAML spec. "
        "Exit codes: 0 ok, 1 negative verdict, 2 bad input, 3 inconclusive.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the built-in families")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("derive", help="print the derived expressions of a family")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--latex", action="store_true", help="print LaTeX instead of plain text")
    p.set_defaults(func=cmd_derive)

    p = sub.add_parser("check", help="admissibility report of a family (Lemma 1)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE", help="write a PNG of phi and the base measure")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("generate", help="generate the torch layer module and C++/CUDA kernels")
    p.add_argument("spec", metavar="SPEC", nargs="?")
    p.add_argument(
        "--builtins",
        action="store_true",
        help="regenerate every built-in family (the golden files in generated/); "
        "inadmissible ones are generated with their warning",
    )
    p.add_argument(
        "-o",
        "--output",
        default="generated",
        metavar="DIR",
        help="output folder (default: ./generated)",
    )
    p.add_argument("--target", choices=("torch", "cpp", "cuda", "all"), default="torch")
    p.add_argument(
        "--allow-inadmissible",
        action="store_true",
        help="generate even if `deqfam check` rejects the family (loud warning)",
    )
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("export", help="export the activation (TorchScript / torch.export)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument(
        "--format", choices=("torchscript", "exported-program"), default="exported-program"
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("fit", help="fit exponential-family PCA (a DEQ) to a data file")
    p.add_argument("data", metavar="DATA", help=".npy or .csv matrix, rows are samples")
    p.add_argument("--family", required=True, metavar="SPEC")
    p.add_argument("--latent-dim", type=int, required=True)
    p.add_argument("--epochs", type=int, default=300, help="maximum number of epochs")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--lam", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1e-2, help="Adam's initial learning rate")
    p.add_argument(
        "--tol",
        type=float,
        default=1e-4,
        help="stop when the epoch loss falls by less than this (relative) over 5 epochs, "
        "after lowering lr 10x twice; 0: run all --epochs (default 1e-4)",
    )
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="fit_out", metavar="DIR")
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoints")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("demo", help="the main job end to end on an example family")
    p.add_argument("--spec", metavar="SPEC", help="default: examples/bernoulli_poisson.yaml")
    p.add_argument("--out", default="demo_out", metavar="DIR")
    p.add_argument("--n-grid", type=int, default=100)
    p.add_argument("--epochs", type=int, default=300, help="maximum number of epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


def _version() -> str:
    from deqfam import __version__

    return f"deqfam {__version__}"


#: Subcommand registrars added by the later pipeline stages (check, generate, fit, demo ...).
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SpecError as exc:
        print(f"deqfam: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # e.g. `deqfam derive X | head`
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
