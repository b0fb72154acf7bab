"""The wall-clock budget of the commands (``--time-limit``): which commands have one, what
it bounds, and the message and exit code when it runs out."""

from __future__ import annotations

import argparse
import json
import sys

from deqfam.commands.common import EXIT_BAD_INPUT, EXIT_INCONCLUSIVE
from deqfam.derive.budget import (
    TIME_LIMIT_ENV,
    BudgetExceeded,
    configured_time_limit,
    resolve_time_limit,
    time_budget,
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
