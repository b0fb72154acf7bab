"""Validation of the command line's options and paths, before any work is done.

Each function here is an argparse ``type=`` validator: it returns the converted value or
raises ``argparse.ArgumentTypeError`` with one line naming what is wrong, which argparse
prefixes with the option's name. :class:`Parser` turns every usage error into a
:class:`UsageError` (one line, exit code 2) instead of argparse's usage dump and
``SystemExit``, so ``deqfam.cli.main`` returns 2 for every bad option.

Paths are checked without creating anything: an output folder must be a writable folder or
not exist under a writable one; an output file must not be a folder or a special file, and
its folder must exist and be writable.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import stat
from pathlib import Path

#: seeds are passed to ``torch.Generator.manual_seed`` (at most 64 bits)
MAX_SEED = 2**63 - 1
#: the demo samples ``n_grid**2`` points of dimension 50; 1000 is already 10**6 samples
MAX_N_GRID = 1000
PLOT_SUFFIXES = (".png", ".pdf", ".svg")
#: export formats by file suffix (``--format`` may be left out when the suffix says it)
EXPORT_SUFFIXES = {".pt2": "exported-program", ".pt": "torchscript", ".ts": "torchscript"}
_PARAM_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.+)$")


class UsageError(Exception):
    """A bad command line: one line of text, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one-line :class:`UsageError` exceptions."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" only where there is a default worth showing (not for flags,
    required options, or options that are simply absent by default)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default in (None, False) or action.help is None:
            return action.help
        return super()._get_help_string(action)


def _bad(message: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(message)


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _bad(f"expected an integer, got {text!r}") from None


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise _bad(f"must be a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = _integer(text)
    if value < 1:
        raise _bad(f"must be a positive integer, got {text!r}")
    return value


def seed_int(text: str) -> int:
    """A random seed: an integer in [0, 2**63 - 1]."""
    value = _integer(text)
    if not 0 <= value <= MAX_SEED:
        raise _bad(f"must be an integer between 0 and 2**63 - 1, got {text!r}")
    return value


def n_grid_int(text: str) -> int:
    """The demo's grid size: an integer in [1, MAX_N_GRID] (n_grid**2 samples)."""
    value = positive_int(text)
    if value > MAX_N_GRID:
        raise _bad(f"must be at most {MAX_N_GRID} (the demo draws n_grid**2 samples), got {value}")
    return value


def positive_finite_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(text)
    if value <= 0:
        raise _bad(f"must be a finite number > 0, got {text!r}")
    return value


def nonnegative_finite_float(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text)
    if value < 0:
        raise _bad(f"must be a finite number >= 0, got {text!r}")
    return value


def weight_decay_or_auto(text: str) -> float | str:
    """``auto`` (the prior chosen by a held-out criterion, ``deqfam.prior_choice``) or a
    finite number >= 0."""
    return "auto" if text.strip().lower() == "auto" else nonnegative_finite_float(text)


def param_assignment(text: str) -> tuple[str, float]:
    """``NAME=VALUE`` with a finite number VALUE (a spec parameter override)."""
    match = _PARAM_RE.match(text.strip())
    if match is None:
        raise _bad(f"expected NAME=VALUE (e.g. n=16), got {text!r}")
    try:
        value = _number(match.group(2))
    except argparse.ArgumentTypeError:
        raise _bad(f"parameter {match.group(1)}: expected a finite number, got {text!r}") from None
    return match.group(1), value


def param_overrides(pairs: list[tuple[str, float]] | None) -> dict[str, float]:
    """The ``--param`` pairs as a dict; a parameter given twice is a :class:`UsageError`."""
    out: dict[str, float] = {}
    for name, value in pairs or []:
        if name in out:
            raise UsageError(f"deqfam: error: argument --param: {name} is given twice")
        out[name] = value
    return out


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISREG, "a regular file"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _existing_kind(path: Path) -> str | None:
    """What ``path`` is ("a directory", "a FIFO (named pipe)", ...), "a dangling symbolic
    link to ..." when a link points nowhere, or None when nothing is there."""
    if not os.path.lexists(path):
        return None
    if path.is_symlink() and not path.exists():
        return f"a dangling symbolic link (to {os.readlink(path)!r})"
    return _kind(path.stat().st_mode)


def spec_source(text: str) -> str:
    """SPEC: a built-in family name, or a path that is a regular file (a directory, FIFO,
    device or dangling link is named as such, not reported as an unknown family)."""
    # no SymPy: SPEC is only named here
    from deqfam.derive.builtin_specs import builtin_names, vector_builtin_names

    if text in builtin_names() or text in vector_builtin_names():
        return text
    kind = _existing_kind(Path(text))
    if kind is not None and kind != "a regular file":
        raise _bad(f"{text!r} is {kind}, not a spec file")
    return text


def input_file(text: str) -> Path:
    """An existing regular file to read."""
    path = Path(text)
    kind = _existing_kind(path)
    if kind is None:
        raise _bad(f"{text!r} does not exist")
    if kind != "a regular file":
        raise _bad(f"{text!r} is {kind}, not a data file")
    return path


def _writable_dir(path: Path, text: str) -> None:
    if not os.access(path, os.W_OK | os.X_OK):
        raise _bad(f"directory {str(path)!r} (for {text!r}) is not writable")


def output_dir(text: str) -> Path:
    """An output folder: an existing writable folder, or a path whose nearest existing
    ancestor is a writable folder (nothing is created here)."""
    path = Path(text)
    kind = _existing_kind(path)
    if kind is not None:
        if kind != "a directory":
            raise _bad(f"{text!r} is {kind}, not a directory")
        _writable_dir(path, text)
        return path
    parent = path.absolute().parent
    while not os.path.lexists(parent):
        parent = parent.parent
    if not parent.is_dir():
        raise _bad(f"cannot create {text!r}: {str(parent)!r} is not a directory")
    _writable_dir(parent, text)
    return path


def output_file(text: str) -> Path:
    """An output file: not a folder or special file; its folder exists and is writable."""
    path = Path(text)
    kind = _existing_kind(path)
    if kind is not None and kind != "a regular file":
        raise _bad(f"{text!r} is {kind}; give a file name")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise _bad(f"the directory {str(path.parent)!r} of {text!r} does not exist")
    _writable_dir(parent, text)
    return path


def plot_file(text: str) -> Path:
    """A plot file: ``.png`` (added when there is no suffix), ``.pdf`` or ``.svg``."""
    path = Path(text)
    if _existing_kind(path) == "a directory":
        raise _bad(f"{text!r} is a directory; give a file name such as {text}/check.png")
    if path.suffix == "":
        path = path.with_name(path.name + ".png")
    elif path.suffix.lower() not in PLOT_SUFFIXES:
        raise _bad(
            f"unsupported plot format {path.suffix!r} in {text!r}; use {', '.join(PLOT_SUFFIXES)}"
        )
    return output_file(str(path))


def export_format(fmt: str | None, path: Path) -> str:
    """The export format: ``fmt`` if given (and consistent with a known suffix of ``path``),
    else the one the suffix names (``.pt2``: exported-program; ``.pt``/``.ts``: torchscript).
    """
    implied = EXPORT_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        if implied is None:
            raise UsageError(
                f"deqfam export: error: argument -o/--output: cannot tell the format from "
                f"{str(path)!r}; name it .pt2 (exported-program) or .pt/.ts (torchscript), "
                "or pass --format"
            )
        return implied
    if implied is not None and implied != fmt:
        raise UsageError(
            f"deqfam export: error: argument --format: {fmt} does not match the suffix "
            f"{path.suffix!r} of {str(path)!r}, which means {implied}"
        )
    return fmt


def latent_dim_within(latent_dim: int, data_dim: int) -> None:
    """Refuse a latent dimension above the data dimension (W is data_dim x latent_dim, and a
    latent space wider than the data explains nothing more)."""
    if latent_dim > data_dim:
        raise UsageError(
            f"deqfam fit: error: argument --latent-dim: {latent_dim} exceeds the data "
            f"dimension {data_dim} (the number of columns); choose 1..{data_dim}"
        )


__all__ = [
    "HelpFormatter",
    "Parser",
    "UsageError",
    "export_format",
    "input_file",
    "latent_dim_within",
    "n_grid_int",
    "nonnegative_finite_float",
    "output_dir",
    "output_file",
    "param_assignment",
    "param_overrides",
    "plot_file",
    "positive_finite_float",
    "positive_int",
    "seed_int",
    "spec_source",
]


#: the most intra-op threads ``--threads`` accepts
MAX_THREADS = 1024


def threads_option(text: str) -> int | str:
    """``--threads``: ``auto`` (the library's thread policy) or an integer in [1, MAX_THREADS]."""
    if text.strip().lower() == "auto":
        return "auto"
    value = positive_int(text)
    if value > MAX_THREADS:
        raise _bad(f"must be 'auto' or at most {MAX_THREADS}, got {value}")
    return value


#: ``--backend`` of ``fit`` and ``demo`` (runtime.fused.BACKENDS; no torch import here)
BACKENDS = ("torch", "fused", "auto")
