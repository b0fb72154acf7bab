"""The demo's Markdown report: ``templates/demo_report.md.j2`` filled with ready strings.

The template holds no logic; this module formats every number and escapes every piece of
user text (a spec's name and description) so that it renders as the literal text it is,
never as Markdown or HTML (no injected links, images, headings or ``<script>``).
"""

from __future__ import annotations

import importlib.resources
import re
import string
from typing import Any

import jinja2

TEMPLATE = "demo_report.md.j2"
#: characters with a meaning in HTML: written as entities (a backslash does not escape raw
#: HTML in every renderer)
_HTML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
#: every other ASCII punctuation character may be backslash-escaped in CommonMark, and an
#: escaped one is always the literal character
_BACKSLASHED = frozenset(string.punctuation) - set(_HTML_ENTITIES)
#: the stages whose wall-clock times the report lists, in order
_TIMED_STAGES = ("check", "generate", "sample", "fit", "total")


def markdown_escape(text: str) -> str:
    """``text`` as literal Markdown inline text: white space (newlines included) folded to
    single spaces, so it stays one paragraph (no headings, lists or code blocks); ``& < >``
    as HTML entities; every other ASCII punctuation character backslash-escaped (no emphasis,
    links, images, tables or code spans)."""
    folded = " ".join(str(text).split())
    return "".join(_HTML_ENTITIES.get(ch, "\\" + ch if ch in _BACKSLASHED else ch) for ch in folded)


def code_fence(text: str) -> str:
    """A backtick fence that ``text`` cannot close: three backticks, or one more than the
    longest run of backticks in ``text`` (CommonMark closes a fence only with a run at
    least as long as the opening one)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def training_text(summary: dict[str, Any], cfg: Any) -> str:
    """How the DEQ was trained, in words: the second-order fit (outer iterations) or Adam
    (learning rate, batch, epochs run of the maximum), with the stop message."""
    if summary["optimizer"] == "newton":
        how = (
            "second-order fit: the latent Newton solve alternated with Newton / Fisher "
            f"scoring per column, {summary['iterations']} iterations"
        )
    else:
        how = (
            f"Adam lr {cfg.lr}, batch {cfg.batch_size}, {summary['epochs']} epochs, at most "
            f"{cfg.epochs}"
        )
    return f"{how}; {summary['stop_message']}"


def demo_report_context(fam: Any, report: Any, summary: dict[str, Any], cfg: Any) -> dict:
    """Ready strings for the template from the demo's family, admissibility report,
    summary (Procrustes errors, timings, epochs, stop message) and :class:`DemoConfig`."""
    s, t = summary, summary["timings"]
    check_text = report.format_text()
    return {
        "name": markdown_escape(fam.name),
        "description": markdown_escape(fam.description),
        "log_partition": str(fam.A),
        "activation": str(fam.sigma_stable),
        "domain_lo": str(fam.domain[0]),
        "domain_hi": str(fam.domain[1]),
        "verdict": str(report.verdict),
        "strength": str(report.strength),
        "check_text": check_text,
        "fence": code_fence(check_text),
        "n_samples": str(s["n_samples"]),
        "data_dim": str(cfg.data_dim),
        "n_grid": str(cfg.n_grid),
        "w_var": str(s["w_var"]),
        "lam": str(cfg.lam),
        "weight_decay": str(s["weight_decay"]),
        "training": training_text(s, cfg),
        "deq_error": f"{s['deq_procrustes']:.5f}",
        "pca_error": f"{s['pca_procrustes']:.5f}",
        "better": "DEQ" if s["deq_procrustes"] < s["pca_procrustes"] else "PCA",
        "nonconverged": str(s["nonconverged_last_epoch"]),
        **{f"time_{stage}": f"{t[stage]:.2f}" for stage in _TIMED_STAGES},
    }


def render_demo_report(context: dict[str, str]) -> str:
    """The report's Markdown: the template rendered with ``context`` (every name it uses
    must be there: a missing one is an error, not an empty string)."""
    source = importlib.resources.files("deqfam.templates").joinpath(TEMPLATE).read_text("utf-8")
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    return env.from_string(source).render(**context)
