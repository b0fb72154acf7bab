"""Wiring for the deep model: derive/deep.py (SymPy) -> elementwise torch callables ->
runtime/deep.py (PyTorch).

``DeepExpFamPCA(families=[...], widths=[d_0, ..., d_L], lam=...)`` derives every layer's log
density and its derivatives (``deqfam.derive.deep``), prints them into a generated module per
layer (``derive.emit.render_deep_roles``, ``templates/deep_roles.py.j2``), imports it with the
one importer (``deqfam.api.emitted_module``) and builds the runtime model. Families are
checked for admissibility (``deqfam.check``); one found ``not_admissible`` (such as the ReLU
family ``A = max(0, eta)^2/2`` used with the dropout mask) is refused unless
``allow_inadmissible=True``.
"""

from __future__ import annotations

import warnings
from typing import Any

from deqfam.api import InadmissibleFamilyError, check, emitted_module
from deqfam.derive.deep import LayerDerivation, derive_layer, derive_stack
from deqfam.derive.emit import render_deep_roles
from deqfam.derive.family import Family, load_family
from deqfam.runtime import deep as runtime_deep


def layer_functions(layer: LayerDerivation) -> runtime_deep.LayerFunctions:
    """The runtime's ``LayerFunctions`` of a ``LayerDerivation``: its roles printed into a
    generated module (``derive.emit.render_deep_roles``) loaded by the one importer, which
    exports them gathered as ``LAYER``."""
    module = emitted_module(render_deep_roles(layer), f"deep_{layer.family.name}")
    if not isinstance(module.LAYER, runtime_deep.LayerFunctions):
        raise TypeError(f"{module.__name__}: LAYER is not a LayerFunctions (regenerate it)")
    return module.LAYER


_VERDICTS: dict[str, tuple[str, str]] = {}


def _verdict(fam: Family) -> tuple[str, str]:
    """``deqfam.check`` verdict and reason, cached by spec digest and parameter values."""
    key = fam.spec_sha256 + repr(sorted(fam.parameters.items()))
    if key not in _VERDICTS:
        report = check(fam)
        _VERDICTS[key] = (report.verdict, report.reason or report.verdict)
    return _VERDICTS[key]


def _admissible(fam: Family, allow_inadmissible: bool, layer: int) -> None:
    verdict, reason = _verdict(fam)
    if verdict != "not_admissible":
        return
    if not allow_inadmissible:
        raise InadmissibleFamilyError(
            f"layer {layer}: family {fam.name!r} is not an admissible log-partition function "
            f"({reason}); pass allow_inadmissible=True to use it anyway (e.g. the ReLU family "
            "with dropout=True, a rectified-mean Gaussian; see deqfam.derive.deep)"
        )
    warnings.warn(
        f"layer {layer}: family {fam.name} is NOT admissible ({reason}); used on request",
        UserWarning,
        stacklevel=3,
    )


def DeepExpFamPCA(
    families: Any,
    widths: list[int],
    lam: float = 0.1,
    *,
    dropout: bool | list[bool] = False,
    allow_inadmissible: bool = False,
    **kwargs: Any,
) -> runtime_deep.DeepExpFamPCA:
    """Deep exponential-family PCA (``runtime.deep.DeepExpFamPCA``) from family specs.

    Args:
        families: ``L`` families (built-in names, spec paths, ``FamilySpec`` or ``Family``);
            ``families[0]`` generates the data ``Y``, ``families[l]`` the latent ``z_l`` (these
            need support ``real`` and a base measure, e.g. ``"gaussian"``).
        widths: ``[d_0, ..., d_L]``.
        lam: prior precision of the top layer.
        dropout: the dropout mask ``D = 1[eta > 0]`` on the input term, for every layer (bool)
            or per layer (list); meant for the ReLU family (``deqfam.derive.deep.relu_family``).
        allow_inadmissible: use families that ``deqfam.check`` rejects.
        kwargs: passed to ``runtime.deep.DeepExpFamPCA`` (``solver_options``,
            ``on_nonconvergence``, ``init_scale``, ``weight_decay``, ``generator``, ``dtype``).
    """
    fams = [
        load_family(f) for f in (families if isinstance(families, list | tuple) else [families])
    ]
    for l, fam in enumerate(fams, start=1):
        _admissible(fam, allow_inadmissible, l)
    stack = derive_stack(fams, dropout)
    layers = [layer_functions(layer) for layer in stack.layers]
    return runtime_deep.DeepExpFamPCA(layers, list(widths), lam, **kwargs)


__all__ = ["DeepExpFamPCA", "derive_layer", "layer_functions"]
