"""What every command shares: the exit codes, the family a SPEC and ``--param`` name, and
the removal of a half-written output when a command fails."""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from deqfam import options as opt

if TYPE_CHECKING:  # SymPy: imported only when a family is derived (spec_family)
    from deqfam.derive.family import Family

EXIT_OK, EXIT_NEGATIVE, EXIT_BAD_INPUT, EXIT_INCONCLUSIVE = 0, 1, 2, 3


def spec_family(spec: str | Path, args: argparse.Namespace) -> Family:
    """The family of ``spec`` at the ``--param`` overrides (checked against the spec's
    declared parameters and ranges: a SpecError naming the parameter otherwise)."""
    from deqfam.derive.family import load_family

    return load_family(spec, **opt.param_overrides(getattr(args, "param", None)))


def spec_or_family(spec: str | Path, args: argparse.Namespace) -> str | Path | Family:
    """``spec`` itself without ``--param`` (built-ins then reuse their committed module)."""
    return spec_family(spec, args) if getattr(args, "param", None) else spec


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
