"""``SpecError``, without SymPy: the CLI maps it to exit code 2 without importing the
spec parser (``derive.spec`` re-exports it)."""

from __future__ import annotations


class SpecError(ValueError):
    """A malformed family spec. ``str()`` names the file, the field and the line."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "<spec>",
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.source, self.field, self.line, self.message = source, field, line, message
        where = source if line is None else f"{source}:{line}"
        what = f" field '{field}'" if field else ""
        super().__init__(f"{where}:{what} {message}")
