"""Render BENCHMARKS.md's tables from the recorded results in ``benchmarks/results/``.

Each table stands between ``<!-- table:NAME -->`` and ``<!-- /table:NAME -->``; its text is
replaced by ``benchmarks.tables.TABLES[NAME]`` of the figures of the newest record in
``results/NAME.json`` that is not a ``--quick`` run. Everything outside the markers (the
hand-written prose) is left as it is.

    python -m benchmarks.render            # rewrite BENCHMARKS.md
    python -m benchmarks.render --check    # exit 1 if a table is out of date with the JSON

Exit codes: 0 up to date / rewritten, 1 a table is stale (``--check``), 2 bad input (an
unknown table, a table without a record, unbalanced markers).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, load_records
from benchmarks.tables import TABLES

DOC = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
BLOCK = re.compile(
    r"(?P<open><!-- table:(?P<name>[a-z0-9_]+) -->\n)(?P<body>.*?)"
    r"(?P<close><!-- /table:(?P=name) -->)",
    re.DOTALL,
)


class RenderError(ValueError):
    """BENCHMARKS.md and the results cannot be rendered (bad markers, missing records)."""


def latest_figures(name: str, results_dir: Path) -> Any:
    """Figures of the newest non-quick record of benchmark ``name``."""
    records = [r for r in load_records(results_dir / f"{name}.json") if not r.get("quick")]
    if not records:
        raise RenderError(f"table {name!r}: no (non-quick) record in {results_dir}/{name}.json")
    return records[-1]["figures"]


def render_text(text: str, results_dir: Path = RESULTS_DIR) -> str:
    """``text`` with every marked table re-rendered from the records in ``results_dir``."""
    opened = re.findall(r"<!-- table:([a-z0-9_]+) -->", text)
    found = [m.group("name") for m in BLOCK.finditer(text)]
    if opened != found or text.count("<!-- /table:") != len(found):
        raise RenderError(f"unbalanced table markers: opened {opened}, closed blocks {found}")

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in TABLES:
            raise RenderError(f"unknown table {name!r} (known: {', '.join(TABLES)})")
        body = TABLES[name](latest_figures(name, results_dir))
        return f"{match.group('open')}{body}\n{match.group('close')}"

    return BLOCK.sub(replace, text)


def stale_tables(old: str, new: str) -> list[str]:
    """Names of the tables whose text differs between two renderings."""
    before = {m.group("name"): m.group("body") for m in BLOCK.finditer(old)}
    after = {m.group("name"): m.group("body") for m in BLOCK.finditer(new)}
    return [name for name in after if before.get(name) != after[name]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a table is stale")
    parser.add_argument("--doc", type=Path, default=DOC, help="the Markdown file")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="the JSON folder")
    args = parser.parse_args(argv)
    old = args.doc.read_text(encoding="utf-8")
    try:
        new = render_text(old, args.results)
    except RenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = stale_tables(old, new)
    if args.check:
        if stale:
            print(f"{args.doc}: stale tables: {', '.join(stale)}", file=sys.stderr)
            return 1
        print(f"{args.doc}: tables up to date")
        return 0
    if new != old:
        args.doc.write_text(new, encoding="utf-8")
    print(f"{args.doc}: rendered {', '.join(stale) if stale else 'nothing (up to date)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
