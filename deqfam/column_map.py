"""``deqfam fit data.csv --family 'age:gaussian,visits:poisson,*:bernoulli'``: one family per
CSV column, mapped by the column names of the header row.

The syntax of a column map: comma-separated entries ``NAME:SPEC``, where ``NAME`` is a
column name of the CSV header and ``SPEC`` a built-in family name or a path to a YAML spec;
the entry ``*:SPEC`` gives the family of every column not named (without it, every column
must be named). Names are matched exactly (surrounding spaces ignored) and may contain
neither ``,`` nor ``:``; a ``SPEC`` path may contain ``:`` (the entry is split at its first
``:``). A ``--family`` value that is a built-in name or an existing file is a single SPEC
for all columns, as before.

Every mistake is a :class:`ColumnMapError` (a ``DataError``: ``deqfam fit`` exits 2) that
names the entry or column: an entry without ``:``, an empty name or spec, a column named
twice (in the map or in the header), a name the header does not have, a column left without
a family, a file without a header row, and a value outside its column's support (with its
row and the file's line).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deqfam.runtime.validation import DataError, _support_violation

DEFAULT_KEY = "*"


class ColumnMapError(DataError):
    """A column map that does not fit the data file (see the module docstring)."""


@dataclass(frozen=True)
class ColumnMap:
    """A parsed column map: the SPEC of each named column, and the default SPEC (or None)."""

    named: dict[str, str] = field(default_factory=dict)
    default: str | None = None

    def specs_for(self, header: list[str]) -> list[str]:
        """The SPEC of every column of ``header`` (in order); ColumnMapError for a name the
        header lacks or a column without a family."""
        unknown = [name for name in self.named if name not in header]
        if unknown:
            raise ColumnMapError(
                f"--family names column(s) {', '.join(map(repr, unknown))} that the CSV header "
                f"does not have; its columns are {', '.join(map(repr, header))}"
            )
        specs = [self.named.get(name, self.default) for name in header]
        missing = [name for name, spec in zip(header, specs, strict=True) if spec is None]
        if missing:
            raise ColumnMapError(
                f"column(s) {', '.join(map(repr, missing))} have no family: name them in "
                f"--family (NAME:SPEC) or give a default ({DEFAULT_KEY}:SPEC)"
            )
        return specs  # type: ignore[return-value]


def is_column_map(text: str) -> bool:
    """Whether a ``--family`` value is a column map rather than one SPEC: it has a ``:`` and
    is neither a built-in family name nor an existing file."""
    from deqfam.derive.builtin_specs import builtin_names  # no SymPy on the fit path

    return ":" in text and text not in builtin_names() and not Path(text).is_file()


def parse_column_map(text: str) -> ColumnMap:
    """Parse ``NAME:SPEC,...,*:SPEC`` (module docstring) into a :class:`ColumnMap`."""
    named: dict[str, str] = {}
    default: str | None = None
    for raw in text.split(","):
        entry = raw.strip()
        if ":" not in entry:
            raise ColumnMapError(
                f"--family entry {entry!r} is not NAME:SPEC (a column map is "
                f"'col:family,col:family,{DEFAULT_KEY}:family')"
            )
        name, spec = (part.strip() for part in entry.split(":", 1))
        if not name or not spec:
            raise ColumnMapError(f"--family entry {entry!r} has an empty column name or family")
        if name == DEFAULT_KEY:
            if default is not None:
                raise ColumnMapError(f"--family gives the default ({DEFAULT_KEY}:SPEC) twice")
            default = spec
        elif name in named:
            raise ColumnMapError(f"--family names column {name!r} twice")
        else:
            named[name] = spec
    return ColumnMap(named, default)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_header(path: str | Path) -> list[str]:
    """The column names of a CSV file's header row (ColumnMapError if it has none, or names
    a column twice or leaves one unnamed)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        first = next(csv.reader(fh), None)
    if not first or all(_is_number(cell) for cell in first):
        raise ColumnMapError(
            f"{path}: a column map (--family NAME:SPEC,...) needs a CSV file whose first row "
            "names the columns"
        )
    names = [cell.strip() for cell in first]
    if "" in names:
        raise ColumnMapError(f"{path}: header column {names.index('') + 1} has no name")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ColumnMapError(f"{path}: the header names column {name!r} twice")
        seen.add(name)
    return names


def mapped_families(
    text: str, path: str | Path, data: torch.Tensor, allow_inadmissible: bool = False
) -> Any:
    """The family argument of a fit for the column map ``text`` on the CSV file ``path``
    (already read into ``data``): the one SPEC when every column gets the same scalar one
    (the single-family fit, unchanged), else a ``deqfam.column_specs.ColumnSpecs`` with the
    SPEC and runtime family of every column (columns with the same SPEC share one object, so
    they are evaluated together; vector SPECs are allowed). Each column's values
    are checked against its family's support first."""
    from deqfam.column_specs import is_vector_spec, resolve_column_specs

    header = read_header(path)
    if len(header) != data.shape[1]:
        raise ColumnMapError(
            f"{path}: the header names {len(header)} columns but the rows have {data.shape[1]}"
        )
    specs = parse_column_map(text).specs_for(header)
    columns = resolve_column_specs(specs, header, allow_inadmissible)
    check_column_supports(data, header, columns.families)
    one_scalar = len(set(specs)) == 1 and not is_vector_spec(specs[0])
    return specs[0] if one_scalar else columns


def check_column_supports(data: torch.Tensor, header: list[str], families: list[Any]) -> None:
    """Every value of column ``j`` inside the support of ``families[j]`` (and at most its
    ``support_max``); ColumnMapError naming the column and the row of the first bad value
    (0-based, as other data errors, and 1-based below the header)."""
    for j, (name, fam) in enumerate(zip(header, families, strict=True)):
        col = data[:, j]
        bad = _support_violation(col, str(fam.support))
        support = str(fam.support)
        limit = getattr(fam, "support_max", None)
        if limit is not None:
            bad = bad | (col > limit)
            support += f", at most {limit:g}"
        if bool(bad.any()):
            r = int(torch.nonzero(bad)[0])
            raise ColumnMapError(
                f"column {name!r}: value {float(col[r])!r} at row {r} (data row {r + 1} below "
                f"the header) is outside the support of its family {fam.name} ({support}); "
                f"{int(bad.sum())} such value(s) in the column"
            )


__all__ = [
    "DEFAULT_KEY",
    "ColumnMap",
    "ColumnMapError",
    "check_column_supports",
    "is_column_map",
    "mapped_families",
    "parse_column_map",
    "read_header",
]
