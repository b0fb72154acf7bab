"""The ``deqfam`` command line: the one place where derive/, templates and runtime meet.

Exit codes: 0 ok, 1 a negative verdict, 2 bad input, 3 inconclusive.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import sympy as sp

from deqfam import options as opt
from deqfam.accuracy import captured_numeric_warnings
from deqfam.api import InadmissibleFamilyError
from deqfam.derive.budget import (
    TIME_LIMIT_ENV,
    BudgetExceeded,
    configured_time_limit,
    resolve_time_limit,
    time_budget,
)
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


def _family(spec: str | Path, args: argparse.Namespace) -> Family:
    """The family of ``spec`` at the ``--param`` overrides (checked against the spec's
    declared parameters and ranges: a SpecError naming the parameter otherwise)."""
    return load_family(spec, **opt.param_overrides(getattr(args, "param", None)))


def _family_or_spec(spec: str | Path, args: argparse.Namespace) -> str | Path | Family:
    """``spec`` itself without ``--param`` (built-ins then reuse their committed module)."""
    return _family(spec, args) if getattr(args, "param", None) else spec


@contextmanager
def removed_if_failed(path: Path, keep_on: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Remove ``path`` (a file or folder) if the block fails and it did not exist before,
    so a failed command leaves nothing half-written; exceptions in ``keep_on`` keep it."""
    existed = os.path.lexists(path)
    try:
        yield
    except BaseException as exc:
        if not existed and not isinstance(exc, keep_on) and os.path.lexists(path):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise


def cmd_list(args: argparse.Namespace) -> int:
    for name in builtin_names():
        fam = load_family(name)
        print(f"{name:22s} {fam.description}")
    return EXIT_OK


def cmd_derive(args: argparse.Namespace) -> int:
    fam = _family(args.spec, args)
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

    report = check(_family(args.spec, args))
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


def cmd_generate(args: argparse.Namespace) -> int:
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
        if "torch" in targets:  # modules shared by the built-ins (not per family)
            from deqfam.derive.emit import write_pcdeq_activations

            print(f"torch  {write_pcdeq_activations(args.output)}")
        return EXIT_OK
    if args.spec is None:
        print("deqfam: error: generate needs SPEC (or --builtins)", file=sys.stderr)
        return EXIT_BAD_INPUT
    fam = _family(args.spec, args)
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
        _family_or_spec(args.spec, args), allow_inadmissible=args.allow_inadmissible
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


def cmd_fit(args: argparse.Namespace) -> int:
    from deqfam.pipeline import fit, load_data
    from deqfam.runtime.train import (
        CHECKPOINT_NAME,
        CheckpointError,
        TrainingDiverged,
        TrainingError,
    )
    from deqfam.runtime.validation import DataError

    try:
        data = load_data(args.data)
        if data.ndim == 2:
            opt.latent_dim_within(args.latent_dim, data.shape[1])
        family = _family_or_spec(args.family, args)
        if args.resume and not (args.out / "checkpoints" / CHECKPOINT_NAME).exists():
            print(
                f"deqfam: --resume: no checkpoint in {args.out / 'checkpoints'}; starting afresh",
                file=sys.stderr,
            )
        with removed_if_failed(args.out, keep_on=(TrainingDiverged,)):
            res = fit(
                data,
                family,
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
                overwrite=args.overwrite,
                allow_inadmissible=args.allow_inadmissible,
                threads=args.threads,
                optimizer=args.optimizer,
            )
    except (DataError, CheckpointError) as exc:
        print(f"deqfam: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except TrainingError as exc:
        print(f"deqfam: training stopped: {exc}", file=sys.stderr)
        return EXIT_NEGATIVE
    print(
        f"fitted {res.model.family.name} ExpFamPCA: final loss {res.history.loss[-1]:.6g}; "
        f"outputs in {args.out}"
    )
    history = res.history
    if hasattr(history, "iterations"):  # the second-order fit (runtime/fitting)
        print(f"newton fit: {history.iterations} iterations, stopped: {history.stop_reason}")
    else:
        print(f"training {history.stop_reason}: {history.stop_message}")
    return EXIT_OK


def cmd_transform(args: argparse.Namespace) -> int:
    """MAP latents and Laplace covariances of new rows under a saved fit (deqfam/fitted.py)."""
    import io

    import numpy as np

    from deqfam.fitted import load_fit, transform
    from deqfam.fsutil import atomic_write_bytes
    from deqfam.pipeline import load_data

    fitted = load_fit(args.fit_dir)
    latents, covariances = transform(fitted, load_data(args.data))
    if args.out is None:
        for z, cov in zip(latents.tolist(), covariances.tolist(), strict=True):
            print(json.dumps({"latent": z, "covariance": cov}))
        return EXIT_OK
    buffer = io.BytesIO()
    np.savez(buffer, latents=latents, covariances=covariances)
    atomic_write_bytes(args.out, buffer.getvalue())
    print(f"transformed {latents.shape[0]} rows: latents and covariances in {args.out}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from deqfam.pipeline import DemoConfig, run_demo

    spec = args.spec
    if args.param:
        from deqfam.pipeline import default_demo_spec

        spec = _family(spec if spec is not None else default_demo_spec(), args)
    with removed_if_failed(args.out):
        summary = run_demo(
            DemoConfig(
                spec=spec,
                out=args.out,
                n_grid=args.n_grid,
                epochs=args.epochs,
                seed=args.seed,
                progress=not args.quiet,
                allow_inadmissible=args.allow_inadmissible,
                threads=args.threads,
            )
        )
    print(f"family {summary['family']}: {summary['verdict']} ({summary['strength']})")
    if "deq_procrustes" in summary:
        print(
            f"Procrustes error: DEQ {summary['deq_procrustes']:.5f}, "
            f"PCA {summary['pca_procrustes']:.5f}"
        )
    print(f"report: {Path(args.out) / 'report.md'}")
    return EXIT_OK  # a not_admissible family only gets here with --allow-inadmissible


def _add_spec(p: argparse.ArgumentParser, *names: str, **kwargs) -> None:
    """SPEC (a built-in name or a regular YAML file) and the repeatable ``--param``."""
    p.add_argument(*names, type=opt.spec_source, **kwargs)
    p.add_argument(
        "--param",
        action="append",
        type=opt.param_assignment,
        metavar="NAME=VALUE",
        help="set a spec parameter (repeatable), e.g. --param n=10; checked against the "
        "spec's declared parameters and ranges",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = opt.Parser(
        prog="deqfam",
        description="Deep equilibrium layers derived from exponential-family specs.",
        epilog="SPEC is a built-in family name (deqfam list) or a path to a YAML spec. "
        "Exit codes: 0 ok, 1 negative verdict, 2 bad input, 3 inconclusive.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)
    spec_help = "a built-in family name (deqfam list) or a path to a YAML spec"

    p = sub.add_parser("list", help="list the built-in families")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("derive", help="print the derived expressions of a family")
    _add_spec(p, "spec", metavar="SPEC", help=spec_help)
    p.add_argument("--latex", action="store_true", help="print LaTeX instead of plain text")
    p.set_defaults(func=cmd_derive)

    p = sub.add_parser("check", help="admissibility report of a family (Lemma 1)")
    _add_spec(p, "spec", metavar="SPEC", help=spec_help)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--plot",
        metavar="FILE",
        type=opt.plot_file,
        help="write a plot of phi and the tilted law (.png, .pdf or .svg; .png is added "
        "when FILE has no suffix); its folder must exist",
    )
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("generate", help="generate the torch layer module and C++/CUDA kernels")
    _add_spec(p, "spec", metavar="SPEC", nargs="?", help=spec_help)
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
        type=opt.output_dir,
        metavar="DIR",
        help="output folder (created if missing)",
    )
    p.add_argument(
        "--target",
        choices=("torch", "cpp", "cuda", "all"),
        default="torch",
        help="what to generate: the torch module, C++ or CUDA kernels, or all",
    )
    p.add_argument(
        "--allow-inadmissible",
        action="store_true",
        help="generate even if `deqfam check` rejects the family (loud warning)",
    )
    p.add_argument(
        "--require-accurate",
        action="store_true",
        help="refuse (exit 2, nothing written) when the generated code misses mpmath by more "
        "than 1e-8 relative somewhere on the domain; by default that is a loud warning",
    )
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("export", help="export the activation (TorchScript / torch.export)")
    _add_spec(p, "spec", metavar="SPEC", help=spec_help)
    p.add_argument(
        "--format",
        choices=("torchscript", "exported-program"),
        default=None,
        help="artifact format; default: from the suffix of FILE (.pt2: exported-program, "
        ".pt or .ts: torchscript)",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        type=opt.output_file,
        metavar="FILE",
        help="artifact file to write (its folder must exist)",
    )
    _add_allow_inadmissible(p, "export")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("fit", help="fit exponential-family PCA (a DEQ) to a data file")
    p.add_argument(
        "data", metavar="DATA", type=opt.input_file, help=".npy or .csv matrix, rows are samples"
    )
    _add_spec(p, "--family", required=True, metavar="SPEC", help=spec_help)
    p.add_argument(
        "--latent-dim",
        type=opt.positive_int,
        required=True,
        metavar="L",
        help="latent dimension, 1..(number of data columns)",
    )
    p.add_argument(
        "--optimizer",
        choices=("newton", "adam"),
        default="newton",
        help="newton (default): alternate the latent Newton solve with Newton / Fisher "
        "scoring per data column until converged; adam: first-order training through the "
        "implicit layer for --epochs epochs of --batch-size minibatches at --lr",
    )
    p.add_argument(
        "--epochs",
        type=opt.positive_int,
        default=300,
        help="maximum number of epochs (adam only)",
    )
    p.add_argument("--batch-size", type=opt.positive_int, default=500, help="minibatch size")
    p.add_argument(
        "--lam",
        type=opt.positive_finite_float,
        default=0.1,
        help="lam > 0 of the latent prior lam/2 |z|^2 (Theorem 1)",
    )
    p.add_argument(
        "--lr", type=opt.positive_finite_float, default=1e-2, help="Adam's initial learning rate"
    )
    p.add_argument(
        "--tol",
        type=opt.nonnegative_finite_float,
        default=1e-4,
        help="stop when the epoch loss falls by less than this (relative) over 5 epochs, "
        "after lowering lr 10x twice; 0: run all --epochs",
    )
    p.add_argument(
        "--weight-decay",
        type=opt.nonnegative_finite_float,
        default=500.0,
        help="precision >= 0 of the Gaussian prior on the loadings W and offsets B (with 0 "
        "the joint objective has no minimiser)",
    )
    p.add_argument("--seed", type=opt.seed_int, default=0, help="random seed (init, shuffling)")
    p.add_argument(
        "--out",
        default="fit_out",
        type=opt.output_dir,
        metavar="DIR",
        help="output folder: latents, covariances, params, history, plots, checkpoints",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from DIR/checkpoints (refused if its settings differ)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run's checkpoint in DIR instead of refusing",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_threads(p)
    _add_allow_inadmissible(p, "fit")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser(
        "transform", help="MAP latents and Laplace covariances of new rows under a saved fit"
    )
    p.add_argument("fit_dir", metavar="DIR", type=Path, help="a `deqfam fit` output folder")
    p.add_argument(
        "data", metavar="DATA", type=opt.input_file, help=".npy or .csv matrix, rows are samples"
    )
    p.add_argument(
        "--out",
        type=opt.output_file,
        default=None,
        metavar="FILE",
        help="write latents (N x l) and covariances (N x l x l) to FILE as .npz; default: "
        "print one JSON object per row",
    )
    p.set_defaults(func=cmd_transform)

    p = sub.add_parser("demo", help="the main job end to end on an example family")
    _add_spec(p, "--spec", metavar="SPEC", help=spec_help + "; default: the embedded example")
    p.add_argument(
        "--out", default="demo_out", type=opt.output_dir, metavar="DIR", help="output folder"
    )
    p.add_argument(
        "--n-grid",
        type=opt.n_grid_int,
        default=100,
        help=f"ground-truth grid size (n_grid**2 samples), 1..{opt.MAX_N_GRID}",
    )
    p.add_argument(
        "--optimizer",
        choices=("newton", "adam"),
        default="newton",
        help="newton (default): alternate the latent Newton solve with Newton / Fisher "
        "scoring per data column until converged; adam: first-order training through the "
        "implicit layer for --epochs epochs of --batch-size minibatches at --lr",
    )
    p.add_argument(
        "--epochs",
        type=opt.positive_int,
        default=300,
        help="maximum number of epochs (adam only)",
    )
    p.add_argument("--seed", type=opt.seed_int, default=0, help="random seed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_threads(p)
    _add_allow_inadmissible(p, "run")
    p.set_defaults(func=cmd_demo)
    for command in sub.choices.values():  # every verb's --help shows the defaults
        command.formatter_class = opt.HelpFormatter
    add_time_limit_options(sub)
    return parser


def _add_threads(p: argparse.ArgumentParser) -> None:
    """``--threads N|auto``: torch's intra-op threads for the fit (runtime/threads.py)."""
    p.add_argument(
        "--threads",
        type=opt.threads_option,
        default="auto",
        metavar="N|auto",
        help="torch threads for fitting; auto: 1 for small batched linear algebra, else the "
        "physical cores (OMP_NUM_THREADS or a count set in torch is left as it is); the "
        "choice is recorded in history.json",
    )


def _add_allow_inadmissible(p: argparse.ArgumentParser, verb: str) -> None:
    """The flag that overrides the admissibility rule (the same on every command)."""
    p.add_argument(
        "--allow-inadmissible",
        action="store_true",
        help=f"{verb} even if `deqfam check` rejects the family (verdict not_admissible; "
        "refused with exit 2 otherwise); an inconclusive verdict only warns",
    )


#: commands under the wall-clock budget of derive/budget.py; for fit and demo it bounds the
#: setup stages (loading, derivation, check, generation), not the (resumable) training
BUDGETED_COMMANDS = ("check", "generate", "export", "fit", "demo")


def add_time_limit_options(sub: argparse._SubParsersAction) -> None:
    """Give every budgeted subcommand its ``--time-limit SECONDS`` option."""
    for name in BUDGETED_COMMANDS:
        sub.choices[name].add_argument(
            "--time-limit",
            metavar="SECONDS",
            default=None,
            help=f"wall-clock budget in seconds (default: ${TIME_LIMIT_ENV} or "
            "120; 'inf' for none); running out ends with exit "
            + ("3 (inconclusive)" if name == "check" else "2"),
        )


def run_budgeted(args: argparse.Namespace) -> int:
    """Run the subcommand under its time budget: the whole command for check/generate/export
    (``generate --builtins``: each family's own check), the setup stages for fit/demo."""
    if args.command not in BUDGETED_COMMANDS:
        return int(args.func(args))
    try:
        limit = resolve_time_limit(args.time_limit)
    except ValueError as exc:
        print(f"deqfam: error: --time-limit: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    whole = args.command in ("check", "export") or (
        args.command == "generate" and not args.builtins
    )
    with configured_time_limit(limit):
        if not whole:
            return int(args.func(args))
        with time_budget(limit, f"deqfam {args.command} {args.spec}"):
            return int(args.func(args))


def report_budget_exceeded(args: argparse.Namespace, exc: BudgetExceeded) -> int:
    """One message (and for ``check --json`` an inconclusive JSON object); exit 3 for check,
    whose verdict is then unknown, 2 for the other commands."""
    if args.command == "check" and getattr(args, "json", False):
        verdict = {"verdict": "inconclusive", "convexity": {"status": "unknown"}}
        print(json.dumps({"name": args.spec, **verdict, "evidence": [], "reason": str(exc)}))
    print(f"deqfam: time limit: {exc}", file=sys.stderr)
    return EXIT_INCONCLUSIVE if args.command == "check" else EXIT_BAD_INPUT


def _version() -> str:
    from deqfam import __version__

    return f"deqfam {__version__}"


#: errors that mean bad input (a spec, an option, a data file, an output path), not a bug:
#: one line and exit 2. Anything else keeps its traceback.
BAD_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    SpecError,
    ValueError,  # SpecError, DataError, OutputExistsError, ... are ValueErrors
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    FileExistsError,
)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return run_budgeted(args)
    except opt.UsageError as exc:
        print(_one_line(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except BudgetExceeded as exc:
        return report_budget_exceeded(args, exc)
    except InadmissibleFamilyError as exc:  # fit, export, demo (generate answers itself)
        print(f"deqfam: refused: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BAD_INPUT_ERRORS as exc:
        print(f"deqfam: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # e.g. `deqfam derive X | head`
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
