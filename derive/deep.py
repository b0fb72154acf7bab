"""Deep (hierarchical) exponential-family PCA: the stacked log joint and its derivatives.

Model (widths ``d_0 > d_1 > ... > d_L``; ``z_0 = Y`` is observed, ``z_1 .. z_L`` are latent)::

    z_L ~ N(0, lam^{-1} I),
    z_{l-1} | z_l ~ prod_i h_l(z_{l-1,i}) exp(eta_{l,i} T_l(z_{l-1,i}) - A_l(eta_{l,i})),
    eta_l = W_l z_l + b_l,                                        l = L, ..., 1,

each layer with its own exponential family ``(T_l, h_l, A_l)``. Per unit, layer ``l`` contributes
the elementwise log density (``x`` is the unit's "observation", ``eta`` its natural parameter)

    ell_l(x, eta) = lin_l(x, eta) + log h_l(x) - A_l(eta),     lin_l = eta T_l(x),

so the stacked log joint is

    log p(Y, z_1..z_L) = sum_l sum_i ell_l(z_{l-1,i}, eta_{l,i}) - lam/2 |z_L|^2 + const.   (LJ)

For ``l >= 2`` the observation ``z_{l-1}`` is itself latent and continuous, so it enters ``ell_l``
through ``T_l`` *and* ``log h_l``. Only families with real support make sense there, and their base
measure must be declared (without ``log h`` the term is not a density in ``z_{l-1}``): we require
``support: real`` and a ``base_measure`` for every layer above the data (the default choice is the
unit-variance Gaussian, ``ell = -(x - eta)^2/2 + const``, which makes the hierarchy jointly convex;
other real families such as the hyperbolic secant may make it non-convex). The first layer
observes the data and may use any family.

Differentiating (LJ) through ``eta_l = W_l z_l + b_l`` (chain rule; the test oracle
``tests/oracles/deep_assembly.py`` checks it against SymPy's own differentiation of the
explicit joint) gives, with the elementwise
derivatives ``ell_e = d ell/d eta``, ``ell_x = d ell/dx``, ``ell_ee``, ``ell_xx``, ``ell_xe``:

    score of z_l:   d log p / d z_l = W_l^T ell_e,l(z_{l-1}, eta_l)         (from the layer below)
                                     + ell_x,l+1(z_l, eta_{l+1})    [l < L]  (from the layer above)
                                     - lam z_L                        [l = L]  (the prior)
    Hessian of J = -log p, block tridiagonal:
        H_ll     = W_l^T diag(-ell_ee,l) W_l + diag(-ell_xx,l+1) [l < L] + lam I [l = L]
        H_l,l+1  = -diag(ell_xe,l+1) W_{l+1}             (H_l+1,l = H_l,l+1^T)

The stationarity condition of layer ``l`` is the DEQ
``z_l = W_l^T ell_e,l + ell_x,l+1`` (``l < L``) and ``z_L = (1/lam) W_L^T ell_e,L``; for ``L = 1``
this is Theorem 1 (10) of the seed paper, ``z = (1/lam) W^T (T(Y) - sigma(W z + B))``.

Dropout as an assumption (``masked=True``): the linear term becomes
``lin(x, eta) = D(eta) eta T(x) = max(0, eta) T(x)`` with the mask ``D = 1[eta > 0]``, so the score
is ``ell_e = T(x) D - sigma(eta)``: the input ``T(x)`` is dropped exactly where the unit is off.
With the ReLU family (``A = max(0, eta)^2/2``, ``sigma = relu``, Gaussian ``h``) the masked term is
an exact probability model: ``ell = -(x - relu(eta))^2/2 + const``, i.e.

    x | eta ~ N(relu(eta), 1)     (a Gaussian whose mean is rectified),

which is normalised for every ``eta`` but is *not* an exponential family in ``eta`` (the statistic
``D T(x)`` depends on ``eta``). The statistical assumption it encodes is that a coordinate carries
no information about the latents while its unit is inactive (``eta <= 0``: the observation is pure
``N(0, 1)`` noise). Without the mask, ``A = max(0, eta)^2/2`` is not a log-partition function at
all (``deqfam check`` rejects it), and with it the inner problem is non-smooth and non-convex (its
MAP is a local one): ``J`` has a kink at ``eta = 0`` in every unit, concave where ``T(x) > 0`` (a
minimiser never sits there) and convex where ``T(x) < 0``, where a minimiser may sit exactly on the
kink with no vanishing gradient (a Clarke-stationary point); the solver then reports
non-convergence rather than claiming a stationary point. Derivatives at the kink use the
conventions ``Heaviside(0) = 1/2``, ``DiracDelta = 0``. The deep-model facade refuses such a family
unless explicitly allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from .codegen import float_literal, torch_code
from .family import Family, derive_family, load_family
from .spec import ETA, Y, parse_spec
from .stable import stabilize

#: The elementwise observation symbol of a layer (``y`` for the data layer, ``z_{l-1}`` above).
X = sp.Symbol("x", real=True)

#: The ReLU family: Gaussian observation with rectified mean when used with the dropout mask.
RELU_SPEC = """\
name: relu
description: rectified-mean Gaussian, x ~ N(max(0, eta), 1), with the dropout mask D = 1[eta > 0]
support: real
sufficient_statistic: y
log_partition: Max(0, eta)**2/2
base_measure: exp(-y**2/2)/sqrt(2*pi)
domain: [-oo, oo]
"""

#: Roles of the elementwise functions a layer provides, in the order runtime/deep.py expects.
DATA_ROLES = ("core", "score_eta", "d2_eta", "d2_xeta", "scale_eta", "activation", "statistic")
LATENT_ROLES = ("log_base", "score_x", "d2_x", "scale_x")


class DeepSpecError(ValueError):
    """A stack of families that does not define a deep exponential-family model."""


def relu_family() -> Family:
    """The ReLU family of :data:`RELU_SPEC` (not admissible on its own; see module docstring)."""
    return derive_family(parse_spec(RELU_SPEC, source="deqfam.derive.deep:RELU_SPEC"))


@dataclass(frozen=True)
class LayerDerivation:
    """The elementwise derivatives of one layer's log density ``ell(x, eta)`` (module docstring).

    All expressions are in the symbols :data:`X` and ``ETA`` and use the family's stable forms.
    ``latent_observed`` layers (``l >= 2``) also carry the ``x``-derivatives.

    Attributes:
        family: the derived family.
        masked: whether the dropout mask ``D = 1[eta > 0]`` multiplies the linear term.
        latent_observed: whether the observation ``x`` is a latent (then real support).
        log_density: ``ell = lin + log h - A``.
        linear: ``lin = eta T(x)`` (``max(0, eta) T(x)`` when masked).
        log_base: ``log h(x)`` (0 when the family declares no base measure).
        expressions: role -> expression, the roles of :data:`DATA_ROLES` (and
            :data:`LATENT_ROLES` when ``latent_observed``): ``core = lin - A``,
            ``score_eta = ell_e``, ``d2_eta = ell_ee``, ``d2_xeta = ell_xe``,
            ``scale_eta = |lin_e| + |A'|``, ``activation = A'``, ``statistic = T(x)``,
            ``log_base = log h``, ``score_x = ell_x``, ``d2_x = ell_xx``,
            ``scale_x = |lin_x| + |(log h)'|``. The scales are the magnitudes of the terms that
            cancel in the scores (for rounding-aware convergence tests).
    """

    family: Family
    masked: bool
    latent_observed: bool
    log_density: sp.Expr
    linear: sp.Expr
    log_base: sp.Expr
    expressions: dict[str, sp.Expr] = field(repr=False)

    @property
    def name(self) -> str:
        return self.family.name + (" (masked)" if self.masked else "")

    @property
    def roles(self) -> tuple[str, ...]:
        return DATA_ROLES + (LATENT_ROLES if self.latent_observed else ())

    def torch_codes(self) -> dict[str, str]:
        """Elementwise torch code for every role, a function of tensors ``x`` and ``eta``."""
        return {role: layer_code(self.expressions[role]) for role in self.roles}


def layer_code(expr: sp.Expr) -> str:
    """Torch code of an elementwise expression in ``x`` and ``eta`` (``codegen.torch_code``).

    ``torch_code`` handles one tensor variable; here ``eta`` is that variable and ``x`` prints
    by name. A bare ``x`` is cloned (outputs never alias inputs) and a constant is shaped like
    ``eta`` (``x`` and ``eta`` always have the same shape in the runtime).
    """
    if expr == X:
        return "x.clone()"
    if not expr.free_symbols:
        return f"torch.full_like(eta, {float_literal(expr)})"
    return torch_code(expr, ETA, "eta")


def _clean(expr: sp.Expr) -> sp.Expr:
    """Stable form of a derivative (the rewriting of ``derive.stable``)."""
    return stabilize(expr) if expr.free_symbols else sp.sympify(expr)


def derive_layer(
    family: Any, *, masked: bool = False, latent_observed: bool = False
) -> LayerDerivation:
    """Derive the elementwise log density of one layer and its derivatives by differentiation.

    ``family``: anything ``load_family`` accepts. A ``latent_observed`` layer needs real support
    and a declared base measure (module docstring).
    """
    fam = load_family(family)
    if latent_observed:
        if fam.support != "real":
            raise DeepSpecError(
                f"family {fam.name!r} (support {fam.support!r}) cannot generate a continuous "
                "latent layer: layers above the data need support 'real' (e.g. 'gaussian')"
            )
        if fam.log_base_measure is None:
            raise DeepSpecError(
                f"family {fam.name!r} declares no base_measure: a layer above the data observes a "
                "latent, whose log density needs log h(x) (add base_measure to the spec)"
            )
    T = fam.T.xreplace({Y: X})
    log_h = sp.S.Zero
    if fam.log_base_measure is not None:
        log_h = _clean(fam.log_base_measure.xreplace({Y: X}))
    A = fam.A_stable
    linear = (sp.Max(0, ETA) if masked else ETA) * T
    ell = linear + log_h - A
    exprs: dict[str, sp.Expr] = {
        "core": _clean(linear - A),
        "score_eta": _clean(sp.diff(ell, ETA)),
        "d2_eta": _clean(sp.diff(ell, ETA, 2)),
        "d2_xeta": _clean(sp.diff(ell, X, ETA)),
        "scale_eta": sp.Abs(_clean(sp.diff(linear, ETA))) + sp.Abs(_clean(sp.diff(A, ETA))),
        "activation": _clean(sp.diff(A, ETA)),
        "statistic": T,
    }
    if latent_observed:
        exprs.update(
            {
                "log_base": log_h,
                "score_x": _clean(sp.diff(ell, X)),
                "d2_x": _clean(sp.diff(ell, X, 2)),
                "scale_x": sp.Abs(_clean(sp.diff(linear, X))) + sp.Abs(_clean(sp.diff(log_h, X))),
            }
        )
    return LayerDerivation(
        family=fam,
        masked=bool(masked),
        latent_observed=bool(latent_observed),
        log_density=ell,
        linear=linear,
        log_base=log_h,
        expressions=exprs,
    )


@dataclass(frozen=True)
class StackDerivation:
    """The stacked log joint (LJ) of the module docstring, layer by layer (``layers[0]`` observes
    the data, ``layers[l]`` observes the latent ``z_l``)."""

    layers: tuple[LayerDerivation, ...]

    @property
    def depth(self) -> int:
        return len(self.layers)

    def latent_symbols(self) -> list[tuple[sp.Symbol, sp.Symbol]]:
        """Per layer ``l = 1..L`` the elementwise symbols ``(x_{l-1}, eta_l)``."""
        return [
            (sp.Symbol(f"x_{l}", real=True), sp.Symbol(f"eta_{l + 1}", real=True))
            for l in range(self.depth)
        ]

    def log_joint(self) -> sp.Expr:
        """(LJ) per unit in elementwise per-layer symbols: ``sum_l ell_l(x_{l-1}, eta_l)``
        ``- lam/2 x_L^2`` (one representative unit per layer)."""
        lam = sp.Symbol("lam", positive=True)
        syms = self.latent_symbols()
        total = sum(
            (
                layer.log_density.xreplace({X: x, ETA: e})
                for layer, (x, e) in zip(self.layers, syms, strict=True)
            ),
            sp.S.Zero,
        )
        top = sp.Symbol(f"x_{self.depth}", real=True)
        return total - lam * top**2 / 2

    def gradient_terms(self) -> list[dict[str, sp.Expr]]:
        """Per latent layer ``l = 1..L``: the elementwise factors of its score,
        ``{"below": ell_e,l(x_{l-1}, eta_l)`` (multiplied by ``W_l^T``),
        ``"above": ell_x,l+1(x_l, eta_{l+1})`` (0 for the top) and ``"prior": -lam x_L``}``."""
        lam = sp.Symbol("lam", positive=True)
        syms = self.latent_symbols()
        out = []
        for l in range(self.depth):
            x, e = syms[l]
            below = self.layers[l].expressions["score_eta"].xreplace({X: x, ETA: e})
            if l + 1 < self.depth:
                xa, ea = syms[l + 1]
                above = self.layers[l + 1].expressions["score_x"].xreplace({X: xa, ETA: ea})
                prior = sp.S.Zero
            else:
                above = sp.S.Zero
                prior = -lam * sp.Symbol(f"x_{self.depth}", real=True)
            out.append({"below": below, "above": above, "prior": prior})
        return out

    def hessian_terms(self) -> list[dict[str, sp.Expr]]:
        """Per latent layer ``l``: the elementwise factors of the Hessian blocks of ``J``,
        ``{"diag_below": -ell_ee,l`` (in ``W_l^T diag(.) W_l``), ``"diag_above": -ell_xx,l+1``,
        ``"off": -ell_xe,l+1`` (in ``diag(.) W_{l+1}``)``}``."""
        syms = self.latent_symbols()
        out = []
        for l in range(self.depth):
            x, e = syms[l]
            terms = {"diag_below": -self.layers[l].expressions["d2_eta"].xreplace({X: x, ETA: e})}
            if l + 1 < self.depth:
                xa, ea = syms[l + 1]
                nxt = self.layers[l + 1].expressions
                terms["diag_above"] = -nxt["d2_x"].xreplace({X: xa, ETA: ea})
                terms["off"] = -nxt["d2_xeta"].xreplace({X: xa, ETA: ea})
            out.append(terms)
        return out

    def torch_codes(self) -> list[dict[str, str]]:
        return [layer.torch_codes() for layer in self.layers]


def derive_stack(families: Any, masked: Any = None) -> StackDerivation:
    """Derive a stack: ``families[0]`` generates the data, ``families[l]`` the latent ``z_l``.

    ``masked``: ``None``/``False`` (no dropout mask), ``True`` (every layer) or one bool per layer.
    """
    fams = list(families) if isinstance(families, list | tuple) else [families]
    if not fams:
        raise DeepSpecError("a deep model needs at least one layer (families=[...] is empty)")
    if masked is None or isinstance(masked, bool):
        masks = [bool(masked)] * len(fams)
    else:
        masks = [bool(m) for m in masked]
        if len(masks) != len(fams):
            raise DeepSpecError(f"masked has {len(masks)} entries for {len(fams)} layers")
    layers = []
    for l, (fam, mask) in enumerate(zip(fams, masks, strict=True)):
        try:
            layers.append(derive_layer(fam, masked=mask, latent_observed=l > 0))
        except DeepSpecError as err:
            raise DeepSpecError(f"layer {l + 1}: {err}") from None
    return StackDerivation(tuple(layers))


__all__ = [
    "DATA_ROLES",
    "LATENT_ROLES",
    "RELU_SPEC",
    "DeepSpecError",
    "LayerDerivation",
    "StackDerivation",
    "X",
    "derive_layer",
    "derive_stack",
    "layer_code",
    "relu_family",
]
