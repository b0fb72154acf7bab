"""Characters a spec may contain: no invisible, control or direction-changing characters.

A spec is read by people (review, ``deqfam derive``) and its strings reach generated files.
Characters that display differently from what they are ("Trojan Source": U+202E RIGHT-TO-LEFT
OVERRIDE reorders the text after it; zero-width characters hide text; control characters
move the terminal cursor) are refused anywhere in a spec, with the field and the line:

* in the raw text (values, keys and comments alike), where the only control characters
  allowed are tab, line feed and carriage return (CRLF files), plus a byte-order mark as the
  very first character;
* in every parsed string, because YAML's double-quoted escapes (``"\\u202e"``, ``"\\x1b"``)
  create such characters from ASCII text; only ``\\n`` and ``\\t`` are allowed there.

Refused: Unicode categories Cc (controls), Cf (format: bidi embeddings/overrides/isolates
U+202A-U+202E and U+2066-U+2069, marks U+200E/U+200F, zero-width U+200B-U+200D, U+2060,
U+FEFF, soft hyphen ...), Zl/Zp (line/paragraph separators), Co (private use), Cs (lone
surrogates) and Cn (unassigned). Visible non-ASCII (letters, symbols) stays allowed in a
description; expressions, names and parameter names are ASCII-only already (``derive.spec``).

The functions return a :class:`TextFinding` (or ``None``) instead of raising, so that
``derive.spec`` turns it into its own ``SpecError`` without a circular import.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Unicode general categories refused in a spec (see the module docstring)
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})
#: control characters a spec's raw text may contain
RAW_ALLOWED = frozenset("\t\n\r")
#: control characters a parsed string may contain (YAML folds CRLF into \n)
VALUE_ALLOWED = frozenset("\t\n")
BOM = "\ufeff"


@dataclass(frozen=True)
class TextFinding:
    """A refused character: which one, where (1-based line/column, top-level field)."""

    char: str
    line: int | None
    column: int | None
    field: str | None

    def message(self) -> str:
        """The user-facing reason, naming the character by code point and Unicode name."""
        code = f"U+{ord(self.char):04X}"
        name = unicodedata.name(self.char, "") or f"category {unicodedata.category(self.char)}"
        where = f" at column {self.column}" if self.column is not None else ""
        subject = "" if self.field else "the spec text "
        return (
            f"{subject}contains the invisible or control character {code} ({name}){where}: "
            "bidirectional overrides, zero-width, control and other invisible characters are "
            "not allowed in a spec (they make text display differently from what it is)"
        )


def refused(ch: str, allowed: frozenset[str]) -> bool:
    """Is ``ch`` a character a spec may not contain (``allowed``: permitted controls)?"""
    return ch not in allowed and unicodedata.category(ch) in REFUSED_CATEGORIES


def _field_of_line(line: int, key_lines: dict[str, int]) -> str | None:
    """The top-level field whose block contains ``line`` (the last key starting at or
    before it), or ``None`` above the first key."""
    best, best_line = None, 0
    for key, start in key_lines.items():
        if best_line < start <= line:
            best, best_line = key, start
    return best


def scan_raw_text(text: str, key_lines: dict[str, int]) -> TextFinding | None:
    """The first refused character of a spec's raw text (a leading BOM is allowed)."""
    start = 1 if text.startswith(BOM) else 0
    for i in range(start, len(text)):
        if refused(text[i], RAW_ALLOWED):
            line = text.count("\n", 0, i) + 1
            column = i - (text.rfind("\n", 0, i) + 1) + 1
            return TextFinding(text[i], line, column, _field_of_line(line, key_lines))
    return None


def _strings(value: Any) -> Iterator[str]:
    """Every string in a parsed YAML value (mapping keys and values, list items)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def scan_values(data: dict[str, Any], key_lines: dict[str, int]) -> TextFinding | None:
    """The first refused character in the parsed strings of a spec, by top-level field
    (``data``: the parsed mapping, whose keys are strings)."""
    for key, value in data.items():
        for s in _strings({key: value}):
            for ch in s:
                if refused(ch, VALUE_ALLOWED):
                    # a field name holding such a character is shown escaped, not as is
                    fld = key.encode("ascii", "backslashreplace").decode() if key else None
                    return TextFinding(ch, key_lines.get(fld or ""), None, fld)
    return None
