"""Spec text that would display differently from what it is, or silently merge, is refused
(issue 17 item 10): YAML merge keys, and bidirectional-override, zero-width and control
characters anywhere in a spec, each with one SpecError naming the field and the line."""

from __future__ import annotations

import pytest

from deqfam.derive.spec import SpecError, parse_spec

BASE = (
    "name: gauss\n"
    "description: {desc}\n"
    "support: real\n"
    "log_partition: eta**2/2\n"
    "parameters: {{}}\n"
    "domain: [-oo, oo]\n"
)


def refusal(text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="s.yaml")
    return info.value


def test_inline_merge_key_next_to_an_explicit_field_is_refused():
    text = BASE.format(desc="x") + "<<: {log_partition: exp(eta)}\n"
    err = refusal(text)
    assert err.line == 7 and "merge keys ('<<') are not allowed" in str(err)
    assert str(err).startswith("s.yaml:7:")


def test_merge_key_inside_a_nested_mapping_is_refused():
    text = BASE.format(desc="x").replace("parameters: {}", "parameters: {<<: {a: 1}, b: 2}")
    err = refusal(text)
    assert err.line == 5 and "merge keys" in str(err)


def test_quoted_double_less_than_is_a_plain_key_not_a_merge():
    # '<<' in quotes is an ordinary (unknown) field name: refused by the schema, not merged
    err = refusal(BASE.format(desc="x") + "'<<': {log_partition: exp(eta)}\n")
    assert err.field == "<<" and "unknown field" in str(err)


HIDDEN = [
    ("\u202e", "RIGHT-TO-LEFT OVERRIDE"),
    ("\u202a", "LEFT-TO-RIGHT EMBEDDING"),
    ("\u202b", "RIGHT-TO-LEFT EMBEDDING"),
    ("\u202c", "POP DIRECTIONAL FORMATTING"),
    ("\u202d", "LEFT-TO-RIGHT OVERRIDE"),
    ("\u2066", "LEFT-TO-RIGHT ISOLATE"),
    ("\u2067", "RIGHT-TO-LEFT ISOLATE"),
    ("\u2068", "FIRST STRONG ISOLATE"),
    ("\u2069", "POP DIRECTIONAL ISOLATE"),
    ("\u200e", "LEFT-TO-RIGHT MARK"),
    ("\u200f", "RIGHT-TO-LEFT MARK"),
    ("\u200b", "ZERO WIDTH SPACE"),
    ("\u200d", "ZERO WIDTH JOINER"),
    ("\u2060", "WORD JOINER"),
    ("\ufeff", "ZERO WIDTH NO-BREAK SPACE"),
    ("\u00ad", "SOFT HYPHEN"),
    ("\u2028", "LINE SEPARATOR"),
    ("\ue000", "category Co"),
]


@pytest.mark.parametrize(("char", "uname"), HIDDEN, ids=[u for _, u in HIDDEN])
def test_hidden_character_in_the_description_is_refused(char, uname):
    err = refusal(BASE.format(desc=f"Gaussian{char} counts"))
    assert err.field == "description" and err.line == 2
    assert f"U+{ord(char):04X} ({uname})" in str(err)
    assert "at column 22" in str(err)  # 'description: Gaussian' is 21 characters


@pytest.mark.parametrize(
    ("escape", "code"),
    [("\\u202e", "U+202E"), ("\\x1b[31m", "U+001B"), ("\\r", "U+000D"), ("\\0", "U+0000")],
)
def test_hidden_character_from_a_yaml_escape_is_refused(escape, code):
    """Double-quoted YAML escapes make these from pure-ASCII text."""
    err = refusal(BASE.format(desc=f'"Gaussian {escape} counts"'))
    assert err.field == "description" and err.line == 2 and code in str(err)


@pytest.mark.parametrize(
    ("old", "new", "field", "line"),
    [
        ("name: gauss", "name: gau\u200bss", "name", 1),
        ("log_partition: eta**2/2", 'log_partition: "eta**2/2\\u200b"', "log_partition", 4),
        ("parameters: {}", 'parameters: {"a\\u202e": 1}', "parameters", 5),
        ("domain: [-oo, oo]", 'domain: ["-oo\\u2066", oo]', "domain", 6),
    ],
)
def test_hidden_characters_in_other_fields_are_refused(old, new, field, line):
    err = refusal(BASE.format(desc="x").replace(old, new))
    assert err.field == field and err.line == line and "invisible or control" in str(err)


def test_hidden_character_in_a_comment_is_refused_with_its_line():
    text = BASE.format(desc="x") + "# note \u202e hidden\n"
    err = refusal(text)
    assert err.line == 7 and "U+202E" in str(err)
    assert err.field == "domain"  # the comment sits in the last field's block


def test_visible_unicode_tabs_crlf_and_a_leading_bom_are_accepted():
    spec = parse_spec(
        "\ufeff" + BASE.format(desc='"Gauss \u03bb caf\u00e9\\tnote"').replace("\n", "\r\n")
    )
    assert spec.description == "Gauss \u03bb caf\u00e9\tnote"
