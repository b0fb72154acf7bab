"""The ``deqfam`` command line: the one place where derive/, templates and runtime meet.

This module builds the parser and maps errors to exit codes; the commands themselves live
in :mod:`deqfam.commands`, their time budget in :mod:`deqfam.cli_budget`.

Exit codes: 0 ok, 1 a negative verdict, 2 bad input, 3 inconclusive.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from deqfam import options as opt
from deqfam.api import InadmissibleFamilyError
from deqfam.cli_budget import add_time_limit_options, report_budget_exceeded, run_budgeted
from deqfam.commands.common import EXIT_BAD_INPUT, EXIT_INCONCLUSIVE, EXIT_NEGATIVE, EXIT_OK
from deqfam.commands.derive_check import cmd_check, cmd_derive, cmd_list
from deqfam.commands.fit_demo import cmd_demo, cmd_fit, cmd_transform
from deqfam.commands.generate_export import cmd_export, cmd_generate
from deqfam.derive.budget import BudgetExceeded
from deqfam.derive.spec_error import SpecError

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INCONCLUSIVE",
    "EXIT_NEGATIVE",
    "EXIT_OK",
    "build_parser",
    "main",
]


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


def _add_output_dir(p: argparse.ArgumentParser, *flags: str, default: str, help: str) -> None:
    """An output folder option (checked writable, created only when the command writes)."""
    p.add_argument(*flags, default=default, type=opt.output_dir, metavar="DIR", help=help)


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
    _add_output_dir(
        p, "-o", "--output", default="generated", help="output folder (created if missing)"
    )
    p.add_argument(
        "--target",
        choices=("torch", "cpp", "cuda", "fused_cpp", "fused_cuda", "all"),
        default="torch",
        help="what to generate: the torch module, C++ or CUDA kernels, the fused DEQ layer "
        "(fused_cpp, fused_cuda), or all",
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
    _add_spec(
        p,
        "--family",
        required=True,
        metavar="SPEC",
        help=f"{spec_help}; or, for a CSV file with a header row, one family per column: "
        "'NAME:SPEC,NAME:SPEC,*:SPEC' (* names the family of the columns not listed)",
    )
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
        "--epochs", type=opt.positive_int, default=300, help="maximum number of epochs (adam)"
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
        type=opt.weight_decay_or_auto,
        default=None,
        help="precision >= 0 of the Gaussian prior on the loadings W and offsets B (default: "
        "0.125 x the number of rows, a weight decay of 0.125 on the per-sample objective; "
        "smaller fits the training data more closely, e.g. 1 to match glmpca's training "
        "deviance, and predicts held-out data worse (BENCHMARKS.md, 'The default prior'); "
        "with 0 the joint objective has no minimiser; 'auto': chosen from 0.001-10 x the "
        "number of rows by predicting held-out entries, one extra fit per candidate)",
    )
    p.add_argument("--seed", type=opt.seed_int, default=0, help="random seed (init, shuffling)")
    _add_output_dir(
        p,
        "--out",
        default="fit_out",
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
    _add_backend(p)
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
    _add_output_dir(p, "--out", default="demo_out", help="output folder")
    p.add_argument(
        "--n-grid",
        type=opt.n_grid_int,
        default=100,
        help=f"ground-truth grid size (n_grid**2 samples), 1..{opt.MAX_N_GRID}",
    )
    p.add_argument("--epochs", type=opt.positive_int, default=300, help="maximum number of epochs")
    p.add_argument("--seed", type=opt.seed_int, default=0, help="random seed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_threads(p)
    _add_backend(p)
    _add_allow_inadmissible(p, "run")
    p.set_defaults(func=cmd_demo)
    for command in sub.choices.values():  # every verb's --help shows the defaults
        command.formatter_class = opt.HelpFormatter
    add_time_limit_options(sub)
    return parser


def _add_backend(p: argparse.ArgumentParser) -> None:
    """``--backend torch|fused|auto``: the latent solve of ExpFamPCA (runtime/fused.py)."""
    p.add_argument(
        "--backend",
        choices=opt.BACKENDS,
        default="auto",
        help="the fit's solves: the torch path, the generated fused C++ solver (compiled on "
        "first use, about 20 s, cached), or auto (default: fused when it is built already or "
        "the data have at least 10^6 entries, else torch)",
    )


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
