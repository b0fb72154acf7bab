"""Escaping of text that reaches a generated file, one function per syntactic context.

Generated modules are Python and C++/CUDA source: any text from a spec or its file name
(path, description, warning, names) that is written into them must stay *text* in the place
it is put, whatever it contains. A newline in a file name must not end a ``#`` comment (the
next line would run on import), ``*/`` must not end a C comment, a backslash or quote must
not end or change a string literal or docstring (``\\x`` in a plain docstring is a syntax
error; ``\\N{...}`` and ``\\u`` are escapes).

The rule is the same in every context: printable ASCII (U+0020..U+007E) stays as it is,
except the characters the context gives a meaning to; everything else, including every
non-ASCII, control, bidirectional-override and zero-width character, is written as an
escape ``\\uXXXX`` (``\\UXXXXXXXX`` above U+FFFF). Generated files are therefore pure ASCII,
one logical line per comment line, and literals round-trip: the value of an escaped
Python literal is exactly the original text.

The code generator applies these functions when it builds a template's context, so the
templates themselves stay free of logic (DESIGN.md). Names that become identifiers are not
escaped but checked (:func:`identifier`): an identifier cannot be made safe by quoting.
"""

from __future__ import annotations

import re

__all__ = [
    "c_comment",
    "identifier",
    "python_comment",
    "python_docstring",
    "python_string_literal",
]

IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _u_escape(ch: str) -> str:
    """``\\uXXXX`` (or ``\\UXXXXXXXX``) for one character: valid in Python literals, and
    plain text in comments."""
    code = ord(ch)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _printable_ascii(ch: str) -> bool:
    return " " <= ch <= "~"


def python_comment(text: str) -> str:
    """``text`` as the rest of one ``#`` comment line: a single line of printable ASCII.

    Line breaks of every kind (``\\n``, ``\\r``, U+2028, form feed ...) and every other
    non-printable or non-ASCII character become ``\\uXXXX``; the backslash itself becomes
    ``\\u005c`` so an escape in the output always means an escaped character.
    """
    return "".join(ch if _printable_ascii(ch) and ch != "\\" else _u_escape(ch) for ch in text)


def c_comment(text: str) -> str:
    """``text`` inside a C/C++ comment (``// ...`` line or ``/* ... */`` block).

    As :func:`python_comment` (one line, so a ``//`` comment cannot end early, and no
    backslash, so no line splice ``\\<newline>`` can pull the next line into the comment),
    and additionally ``*/`` and ``/*`` are broken (the second character escaped) so a block
    comment neither ends nor nests, and ``??`` is broken so no trigraph (``??/`` is a
    backslash under -trigraphs) can form.
    """
    out: list[str] = []
    for ch in text:
        prev = out[-1][-1] if out else ""
        if not _printable_ascii(ch) or ch == "\\" or (prev, ch) in (("*", "/"), ("/", "*")):
            out.append(_u_escape(ch))
        elif (prev, ch) == ("?", "?"):
            out.append(_u_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


_PY_SHORT = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _python_escaped(text: str, keep_newlines: bool) -> str:
    out = []
    for ch in text:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif ch in _PY_SHORT:
            out.append(_PY_SHORT[ch])
        elif _printable_ascii(ch):
            out.append(ch)
        else:
            out.append(_u_escape(ch))
    return "".join(out)


def python_string_literal(text: str) -> str:
    """A double-quoted Python string literal whose value is exactly ``text``.

    Backslash and ``"`` are escaped, ``\\n``/``\\t``/``\\r`` written as such, every other
    non-printable or non-ASCII character as ``\\uXXXX``; so ``ast.literal_eval`` of the
    result gives back ``text`` and the literal is one line of ASCII.
    """
    return '"' + _python_escaped(text, keep_newlines=False) + '"'


def python_docstring(text: str) -> str:
    """The body of a ``\"\"\"...\"\"\"`` docstring whose value is ``text``.

    As :func:`python_string_literal` (so ``\"\"\"``, a trailing ``\"`` or backslash, and
    ``\\x``/``\\N``/``\\u`` in the text are inert), except that newlines stay real line
    breaks, keeping a multi-line description readable.
    """
    return _python_escaped(text, keep_newlines=True)


def identifier(text: str, what: str) -> str:
    """``text`` unchanged if it is an ASCII identifier (``[A-Za-z_][A-Za-z0-9_]*``), which is
    safe in every context (code, comments, literals); else ``ValueError`` naming ``what``.

    Names become Python and C++ identifiers (namespaces, op names) in generated code, where
    no quoting can make other text safe, so they are refused rather than escaped.
    """
    if not isinstance(text, str) or not IDENTIFIER_RE.fullmatch(text):
        raise ValueError(
            f"{what} {text!r} cannot be written into generated code: it must be an ASCII "
            "identifier ([A-Za-z_][A-Za-z0-9_]*)"
        )
    return text
