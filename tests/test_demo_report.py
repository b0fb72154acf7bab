"""The demo's Markdown report renders from ``templates/demo_report.md.j2`` with user text
(a spec's name and description) escaped: rendered directly, without running the demo."""

from __future__ import annotations

import html
import re

import pytest

from deqfam.api import check
from deqfam.demo import DemoConfig
from deqfam.demo_report import (
    code_fence,
    demo_report_context,
    markdown_escape,
    render_demo_report,
)
from deqfam.derive.family import load_family

#: Markdown and HTML a spec's author could slip into the report: a script, a javascript:
#: link, an image, an autolink, a heading and a list after blank lines, an indented code
#: block, emphasis, a code span, a table row, an entity, strikethrough, backslashes
HOSTILE = (
    "Bernoulli <script>alert(1)</script> [click](javascript:alert(1)) "
    "![x](http://evil.example/x.png) <http://evil.example>\n\n"
    "# Injected heading\n\n- item\n\n    indented code\n"
    "**bold** _it_ `code` | a | b | &amp; e^eta ~~gone~~ \\\\"
)

#: CommonMark's backslash escape: a backslash before ASCII punctuation means that character
PUNCT = r"[!-/:-@\[-`{-~]"
ESCAPE = re.compile(r"\\(" + PUNCT + ")")


def _literal_text(markdown: str) -> str:
    """What a CommonMark renderer shows for inline text with no markup: backslash escapes
    and entities resolved (stdlib ``html.unescape``), nothing else."""
    return html.unescape(ESCAPE.sub(r"\1", markdown))


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    """The report of a real family (a Bernoulli spec with the hostile description) and its
    real admissibility report, with the numbers of a finished demo."""
    spec = tmp_path_factory.mktemp("spec") / "hostile.yaml"
    block = "".join(f"  {line}\n" for line in HOSTILE.split("\n"))
    spec.write_text(
        "name: hostile_bernoulli\n"
        f"description: |-\n{block}"
        "support: binary\n"
        "sufficient_statistic: y\n"
        "log_partition: log(1 + exp(eta))\n"
        "domain: [-oo, oo]\n"
    )
    fam = load_family(spec)
    assert fam.description == HOSTILE  # the spec carried the text unchanged
    summary = {
        "n_samples": 49,
        "w_var": 0.5,
        "epochs": 7,
        "optimizer": "newton",
        "iterations": 6,
        "weight_decay": 500.0,
        "stop_message": "converged after 6 iterations",
        "deq_procrustes": 0.0495812,
        "pca_procrustes": 0.264331,
        "nonconverged_last_epoch": 0,
        "timings": {"check": 0.5, "generate": 0.25, "sample": 1.0, "fit": 2.0, "total": 4.125},
    }
    cfg = DemoConfig(n_grid=12, epochs=9)
    context = demo_report_context(fam, check(fam), summary, cfg)
    return context, render_demo_report(context)


def test_hostile_description_renders_as_literal_text(hostile_report):
    context, text = hostile_report
    line = context["description"]
    assert line in text.split("\n")  # one line of its own: a paragraph, nothing more
    assert _literal_text(line) == " ".join(HOSTILE.split())  # shown as the author wrote it
    assert "<" not in line and ">" not in line  # no raw HTML survives
    # with escape pairs and entities taken out, no punctuation is left to mean markup
    bare = re.sub(r"&(amp|lt|gt);", "", ESCAPE.sub("", line))
    assert re.search(PUNCT, bare) is None


def test_report_structure_is_the_templates_alone(hostile_report):
    _, text = hostile_report
    headings = [line for line in text.split("\n") if line.startswith("#")]
    assert headings == [
        "# deqfam demo: hostile\\_bernoulli",
        "## Admissibility (`deqfam check`)",
        "## Dimensionality reduction (paper section 3, Appendix C)",
        "## Timings (s)",
    ]
    # the only links are the template's four images, the only HTML is none
    assert re.findall(r"(?<!\\)\]\(", text) == ["]("] * 4
    assert "<script" not in text and "javascript:" not in text.replace("javascript\\:", "")
    # the numbers reach the text formatted as the report states them
    assert "| DEQ (ExpFamPCA) | 0.04958 |" in text and "| PCA | 0.26433 |" in text
    assert "DEQ recovers the ground truth better." in text
    assert "fit 2.00 · total 4.12" in text  # 4.125 rounds half to even in float formatting
    assert "weight decay 500.0; second-order fit" in text and "6 iterations; converged" in text


def test_adam_training_is_described_with_its_settings():
    from deqfam.demo_report import training_text

    summary = {"optimizer": "adam", "epochs": 7, "stop_message": "converged"}
    text = training_text(summary, DemoConfig(epochs=9, lr=0.02, batch_size=250))
    assert text == "Adam lr 0.02, batch 250, 7 epochs, at most 9; converged"


def test_check_text_is_fenced_and_every_template_name_is_filled(hostile_report):
    context, text = hostile_report
    fence = context["fence"]
    assert f"\n{fence}\n{context['check_text']}\n{fence}\n" in text
    assert "{{" not in text and "}}" not in text


@pytest.mark.parametrize(
    ("inner", "fence"),
    [("plain text", "```"), ("a `code` span", "```"), ("a ```` run", "`````")],
)
def test_code_fence_is_longer_than_any_backtick_run(inner, fence):
    # CommonMark: a closing fence needs at least as many backticks as the opening one
    assert code_fence(inner) == fence


def test_markdown_escape_folds_white_space_and_keeps_letters():
    assert markdown_escape("two\n\nlines\tand  spaces") == "two lines and spaces"
    assert markdown_escape("a<b & c>d") == "a&lt;b &amp; c&gt;d"
    assert markdown_escape("[x](y)") == r"\[x\]\(y\)"
