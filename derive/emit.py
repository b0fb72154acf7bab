"""Generated modules besides a family's layer: deep-stack layer roles, kGLM priors, and the
named pcDEQ activations.

Every function here prints SymPy expressions with ``derive.codegen``'s torch printer
(``torch_code`` / ``deep.layer_code``) into a context of ready strings and renders one
logic-free template of ``templates/`` (formatted like the layer modules, so the output is
deterministic). Text that comes from a spec or a user (names, descriptions, expression
texts) is escaped by ``derive.escape`` for the context it is written into. Loading the
result is the job of the one importer, ``deqfam.api.import_generated``.

* :func:`render_deep_roles`: the elementwise functions of one layer of a deep stack
  (``derive.deep.LayerDerivation``), for ``runtime.deep.LayerFunctions``;
* :func:`render_prior`: ``rho`` and ``rho'`` of a kGLM prior (``derive.prior.Prior``), for
  ``runtime.kglm.as_torch_prior``;
* :func:`render_pcdeq_activations`: ``sigma, sigma', sigma''`` of the named activations of
  ``derive.concavity`` (``derive.activations``), committed as
  ``generated/pcdeq_activations.py`` and imported by ``runtime.pcdeq``.
"""

from __future__ import annotations

from pathlib import Path

import sympy as sp

from deqfam.fsutil import atomic_write_text

from . import escape
from .activations import activation_forms
from .codegen import (
    GENERATOR_VERSION,
    _domain_literal,
    _environment,
    _source_name,
    float_literal,
    format_python,
    spec_digest,
    torch_code,
)
from .concavity import ETA, NAMED_ACTIVATIONS
from .deep import LayerDerivation
from .family import Family
from .prior import Prior

#: File name of the committed pcDEQ activation module (in ``generated/``).
PCDEQ_ACTIVATIONS_FILE = "pcdeq_activations.py"

#: Arguments of each deep-stack role function (all others take ``(x, eta)``).
_ROLE_ARGS = {"activation": ("eta",), "statistic": ("x",), "log_base": ("x",)}


def _render(template: str, context: dict) -> str:
    return format_python(_environment().get_template(template).render(**context))


def _header(source: str, digest: str) -> dict[str, str]:
    """Header fields every generated module carries (spec, generator, SymPy version)."""
    return {
        "generator_version": GENERATOR_VERSION,
        "sympy_version": escape.python_comment(sp.__version__),
        "source_comment": escape.python_comment(source),
        "sha256": digest,
    }


def _expr_doc(expr: sp.Expr) -> str:
    """An expression's text inside a docstring (spec text: escaped)."""
    return escape.python_docstring(sp.sstr(expr))


def deep_roles_context(layer: LayerDerivation) -> dict:
    """Strings for ``templates/deep_roles.py.j2``: one function per role of ``layer``,
    ``role(args) = code`` with the role's expression in its docstring."""
    fam = layer.family
    codes = layer.torch_codes()
    functions = [
        {
            "role": escape.identifier(role, "layer role"),
            "args": ", ".join(f"{a}: torch.Tensor" for a in _ROLE_ARGS.get(role, ("x", "eta"))),
            "doc": _expr_doc(layer.expressions[role]),
            "code": codes[role],
        }
        for role in layer.roles
    ]
    lo, hi = fam.domain
    return {
        **_header(_source_name(fam), spec_digest(fam)),
        "name_literal": escape.python_string_literal(layer.name),
        "description_doc": escape.python_docstring(fam.description),
        "masked": repr(layer.masked),
        "latent_observed": repr(layer.latent_observed),
        "domain_lo": _domain_literal(lo),
        "domain_hi": _domain_literal(hi),
        "roles": repr(tuple(f["role"] for f in functions)),
        "functions": functions,
    }


def render_deep_roles(layer: LayerDerivation) -> str:
    """The generated module of one deep-stack layer's role functions."""
    return _render("deep_roles.py.j2", deep_roles_context(layer))


def prior_context(prior: Prior) -> dict:
    """Strings for ``templates/prior.py.j2``: ``rho(z)``, ``rho_grad(z)`` (printed in the mean
    ``Family.mu``, as the tensor ``z``) and the constants ``NAME``, ``FAMILY_NAME``,
    ``SUP_RHO_GRAD``, gathered as ``PRIOR`` (a ``runtime.kglm_prior.TorchPrior``)."""
    sup = prior.sup_drho
    return {
        "generator_version": GENERATOR_VERSION,
        "sympy_version": escape.python_comment(sp.__version__),
        "name_comment": escape.python_comment(prior.name),
        "family_comment": escape.python_comment(prior.family_name),
        "name_literal": escape.python_string_literal(prior.name),
        "family_literal": escape.python_string_literal(prior.family_name),
        "family_doc": escape.python_docstring(prior.family_name),
        "neg_log_q_doc": _expr_doc(prior.neg_log_q),
        "sup_rho_grad": "None" if sup is None else float_literal(sup),
        "sup_method_doc": escape.python_docstring(prior.sup_drho_method),
        "rho_doc": _expr_doc(prior.rho),
        "rho_grad_doc": _expr_doc(prior.drho),
        "rho": torch_code(prior.rho, Family.mu, "z"),
        "rho_grad": torch_code(prior.drho, Family.mu, "z"),
    }


def render_prior(prior: Prior) -> str:
    """The generated module of a kGLM prior's activation ``rho`` and its slope."""
    return _render("prior.py.j2", prior_context(prior))


def pcdeq_activations_context() -> dict:
    """Strings for ``templates/pcdeq_activations.py.j2``: for every name of
    ``derive.concavity.NAMED_ACTIVATIONS``, ``sigma``, ``sigma'``, ``sigma''`` printed from
    ``derive.activations.activation_forms``."""
    entries = []
    for name in NAMED_ACTIVATIONS:
        forms = activation_forms(name)
        entries.append(
            {
                "name": escape.identifier(name, "activation name"),
                "docs": [_expr_doc(f) for f in forms],
                "codes": [torch_code(f, ETA, "eta") for f in forms],
            }
        )
    return {
        "generator_version": GENERATOR_VERSION,
        "sympy_version": escape.python_comment(sp.__version__),
        "activations": entries,
    }


def render_pcdeq_activations() -> str:
    """The generated module of the named pcDEQ activations (``generated/pcdeq_activations.py``)."""
    return _render("pcdeq_activations.py.j2", pcdeq_activations_context())


def write_pcdeq_activations(out_dir: str | Path) -> Path:
    """Write :func:`render_pcdeq_activations` into ``out_dir`` (atomically); its path."""
    path = Path(out_dir) / PCDEQ_ACTIVATIONS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_pcdeq_activations())
    return path


__all__ = [
    "PCDEQ_ACTIVATIONS_FILE",
    "deep_roles_context",
    "pcdeq_activations_context",
    "prior_context",
    "render_deep_roles",
    "render_pcdeq_activations",
    "render_prior",
    "write_pcdeq_activations",
]
