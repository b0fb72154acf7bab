"""Positive concave deep equilibrium layers (pcDEQ; Gabor, Piotrowski, Cavalcante, ICML 2024).

The layer is ``z* = T_x(z*)`` with ``T_x(z) = sigma(W z + x)``, where

* ``W >= 0`` elementwise (kept so by a softplus / square parametrisation or by projection),
* ``x >= 0`` (the input injection ``x = softplus(U u + c) + floor``; ``x > 0`` where
  ``sigma(0) = 0``),
* ``sigma`` nondecreasing and concave on ``[0, oo)`` (tanh, softsign, ReLU6 with ``x > 0``;
  sigmoid with ``x >= 0``; the activations of some exponential families, see
  ``derive/concavity.py``).

Then ``T`` maps the nonnegative orthant into itself and is a *standard interference mapping*:
positive (``T(z) > 0``), monotone (``z <= z' => T(z) <= T(z')``) and scalable
(``a T(z) > T(a z)`` for ``a > 1``; from concavity and ``T(0) > 0``). Nonlinear Perron-Frobenius
theory gives: at most one fixed point; plain iteration ``z_{k+1} = T(z_k)`` converges to it from
any ``z_0 >= 0`` (geometrically, in Thompson's metric), monotonically increasing from ``z_0 = 0``;
a fixed point exists iff the asymptotic mapping ``T_inf(z) = lim_h T(h z)/h = s_inf W z``
(``s_inf = lim_t sigma(t)/t``) has spectral radius ``s_inf rho(W) < 1`` -- always true for a
bounded ``sigma`` (``s_inf = 0``).

Backward certificate. With ``u* = W z* + x`` and ``J = diag(sigma'(u*)) W >= 0`` (the Jacobian of
``T`` at ``z*``), concavity at ``u*`` evaluated at ``x`` gives
``sigma(x) <= sigma(u*) - sigma'(u*) (W z*)``, i.e. ``J z* <= z* - T(0) < z*``. Since
``z* >= T(0) > 0``, the Collatz-Wielandt bound for nonnegative matrices gives

    rho(J) <= max_i (J z*)_i / z*_i <= max_i (1 - T(0)_i / z*_i) < 1,

so one Jacobian-vector product certifies that the adjoint iteration ``u <- J^T u + g`` of the
implicit backward converges (``rho(J^T) = rho(J)``).

The same certificate applies to any layer of the form ``z = sigma(W z + b)`` with ``W >= 0`` and
``sigma`` monotone concave on ``[min(0, min b), oo)``: e.g. a kGLM-style layer
``z = sigma(W1 z + W2 T(Y))`` (no ``W3 rho(z)`` term) with ``W1 >= 0`` and an exponential-family
activation such as Bernoulli's sigmoid or Ising's tanh: ``certify_map(W1, T(Y) @ W2.T, family)``
(``deqfam.analysis.certify_map`` attaches the symbolic proof for ``sigma``). With Theorem 3's
sign ``W1 = -K/lam <= 0`` the certificate fails on ``nonnegative_weights``, as it must.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deqfam.vocab import Finding, Outcome, Strength

from .family import TorchFamily, as_torch_family, autograd_derivative
from .implicit import ImplicitResult, implicit_fixed_point
from .solvers import POLICIES, SolverConfig, as_config, check_convergence, fixed_point

ElementwiseFn = Callable[[Tensor], Tensor]


class CertificationError(ValueError):
    """Raised by ``PCDEQCertificate.raise_if_failed`` naming every violated condition."""


# --------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PositiveActivation:
    """An elementwise activation with its first two derivatives.

    Attributes:
        name: identifier (a key of ``NAMED_ACTIVATIONS``, a family name, or a user name).
        fn, grad, grad2: ``sigma``, ``sigma'`` and ``sigma''`` (``grad2`` may be ``None``; the
            certificate then uses second divided differences of ``sigma`` only).
        source: ``"builtin"``, ``"family"`` or ``"custom"``.
        family: the exponential family (spec) name when ``source == "family"``; used by
            ``deqfam.analysis.certify`` to attach the symbolic concavity proof.
        domain: open interval where ``sigma`` is defined (the family's natural domain).
    """

    name: str
    fn: ElementwiseFn
    grad: ElementwiseFn
    grad2: ElementwiseFn | None = None
    source: str = "custom"
    family: str | None = None
    domain: tuple[float, float] = (-math.inf, math.inf)


def _tanh_grad(t: Tensor) -> Tensor:
    th = torch.tanh(t)
    return 1 - th * th


def _tanh_grad2(t: Tensor) -> Tensor:
    th = torch.tanh(t)
    return -2 * th * (1 - th * th)


def _sigmoid_grad(t: Tensor) -> Tensor:
    return torch.sigmoid(t) * torch.sigmoid(-t)


def _sigmoid_grad2(t: Tensor) -> Tensor:
    s = torch.sigmoid(t)
    return s * (1 - s) * (1 - 2 * s)


def _softsign(t: Tensor) -> Tensor:
    return t / (1 + t.abs())


def _softsign_grad(t: Tensor) -> Tensor:
    return (1 + t.abs()).pow(-2)


def _softsign_grad2(t: Tensor) -> Tensor:
    return -2 * torch.sign(t) * (1 + t.abs()).pow(-3)


def _relu6(t: Tensor) -> Tensor:
    return t.clamp(0.0, 6.0)


def _relu6_grad(t: Tensor) -> Tensor:
    return ((t > 0) & (t < 6)).to(t.dtype)


def _zero(t: Tensor) -> Tensor:
    return torch.zeros_like(t)


def _relu_grad(t: Tensor) -> Tensor:
    return (t > 0).to(t.dtype)


NAMED_ACTIVATIONS: dict[str, PositiveActivation] = {
    a.name: a
    for a in (
        PositiveActivation("tanh", torch.tanh, _tanh_grad, _tanh_grad2, "builtin"),
        PositiveActivation("softsign", _softsign, _softsign_grad, _softsign_grad2, "builtin"),
        PositiveActivation("sigmoid", torch.sigmoid, _sigmoid_grad, _sigmoid_grad2, "builtin"),
        # ReLU6 = min(t, 6) on [0, oo): piecewise linear; sigma'' = -delta(t - 6) <= 0 is
        # invisible to grad2 (0 a.e.) but seen by the divided differences of the certificate.
        PositiveActivation("relu6", _relu6, _relu6_grad, _zero, "builtin"),
        # Linear on the orthant: concave, but unbounded (existence needs rho(W) < 1).
        PositiveActivation("relu", torch.relu, _relu_grad, _zero, "builtin"),
        PositiveActivation("identity", lambda t: t, torch.ones_like, _zero, "builtin"),
        # Convex: NOT admissible; here so the certificate can be seen to reject them.
        PositiveActivation("softplus", F.softplus, torch.sigmoid, _sigmoid_grad, "builtin"),
        PositiveActivation("exp", torch.exp, torch.exp, torch.exp, "builtin"),
    )
}

#: The named activations that are admissible (monotone, concave on [0, oo)), and whether they
#: need a strictly positive input (``sigma(0) = 0``).
ADMISSIBLE_ACTIVATIONS: dict[str, bool] = {
    "tanh": True,
    "softsign": True,
    "sigmoid": False,
    "relu6": True,
    "relu": True,
    "identity": True,
}


def activation_from_family(family: Any) -> PositiveActivation:
    """The activation ``sigma = A'`` of an exponential family (a ``TorchFamily`` or a generated
    module's ``FAMILY``), with ``sigma' = A''`` and ``sigma'' = A'''`` from the contract."""
    fam = as_torch_family(family)
    return PositiveActivation(
        fam.name,
        fam.activation,
        fam.activation_grad,
        fam.activation_grad2,
        "family",
        fam.name,
        fam.domain,
    )


def as_activation(activation: Any) -> PositiveActivation:
    """Accept a ``PositiveActivation``, a name in ``NAMED_ACTIVATIONS``, a built-in family name
    (its generated module ``deqfam.generated.<name>``), a family object (anything with
    ``activation`` and ``activation_grad``), or an elementwise callable (derivatives by
    autograd)."""
    if isinstance(activation, PositiveActivation):
        return activation
    if isinstance(activation, str):
        if activation in NAMED_ACTIVATIONS:
            return NAMED_ACTIVATIONS[activation]
        try:
            module = importlib.import_module(f"deqfam.generated.{activation}")
        except ModuleNotFoundError:
            raise ValueError(
                f"unknown activation {activation!r}: not one of {sorted(NAMED_ACTIVATIONS)} "
                "nor a built-in exponential family"
            ) from None
        return activation_from_family(module)
    if isinstance(activation, TorchFamily) or isinstance(
        getattr(activation, "FAMILY", None), TorchFamily
    ):
        return activation_from_family(activation)
    if callable(activation):
        grad = autograd_derivative(activation)
        name = getattr(activation, "__name__", "custom")
        return PositiveActivation(name, activation, grad, autograd_derivative(grad), "custom")
    raise TypeError(f"cannot use {type(activation).__name__} as an activation")


# --------------------------------------------------------------------------------------------
# The equilibrium
# --------------------------------------------------------------------------------------------

DEFAULT_CONFIG = SolverConfig(tol=1e-12, max_iter=2000)


def pcdeq_map(W: Tensor, x: Tensor, activation: Any) -> Callable[[Tensor], Tensor]:
    """``z -> sigma(W z + x)`` on rows: ``z`` of shape ``(N, n)``, ``x`` of shape ``(N, n)``."""
    act = as_activation(activation)

    def T(z: Tensor) -> Tensor:
        return act.fn(z @ W.T + x)

    return T


def pcdeq_equilibrium(
    W: Tensor,
    x: Tensor,
    activation: Any,
    config: SolverConfig | dict[str, Any] | None = None,
    backward_config: SolverConfig | dict[str, Any] | None = None,
    on_nonconvergence: str = "warn",
    z0: Tensor | None = None,
) -> ImplicitResult:
    """The fixed point ``z* = sigma(W z* + x)`` by plain iteration from ``z0 = 0`` (module
    docstring: guaranteed to converge for a certified layer), differentiable in ``W`` and ``x``
    by the implicit function theorem; the adjoint ``u = J^T u + g`` is solved by plain
    iteration too (converges since ``rho(J) < 1``). ``result.z`` is ``(N, n)``; ``result.stats``
    and ``result.backward_stats`` are the runtime's ``SolverStats``."""
    cfg = as_config(DEFAULT_CONFIG if config is None else config)
    if cfg.damping != 1.0:
        raise ValueError("pcDEQ uses plain (undamped) iteration: damping must be 1")
    if z0 is None:
        z0 = torch.zeros_like(x)
    result = implicit_fixed_point(
        pcdeq_map(W, x, activation),
        z0,
        solver="fixed_point",
        config=cfg,
        backward_solver="fixed_point",
        backward_config=cfg if backward_config is None else backward_config,
        on_backward_nonconvergence=on_nonconvergence,
    )
    check_convergence(result.stats, on_nonconvergence, what="pcDEQ forward")
    return result


WEIGHT_PARAMETRISATIONS = ("softplus", "square", "project")


class PositiveConcaveDEQ(nn.Module):
    """pcDEQ layer ``z* = sigma(W z* + x(u))`` (module docstring).

    Args:
        n: hidden width (size of ``z``).
        activation: anything ``as_activation`` accepts; default ``"tanh"``.
        in_features: if given, the input map is ``x = softplus(u U^T + c) + input_floor``
            (``U``: ``n x in_features``, unconstrained); if ``None`` the input is ``x`` itself
            (it must then be ``>= 0``, ``> 0`` where ``sigma(0) = 0``).
        weight_param: ``"softplus"`` (``W = softplus(V)``), ``"square"`` (``W = V * V``) or
            ``"project"`` (``W = V``; call ``project_()`` after every optimiser step).
        gain: initial ``W`` has i.i.d. entries uniform in ``gain/n * [0.5, 1.5]``, so
            ``rho(W) ~ gain``.
        input_floor: added to the softplus injection so ``x >= input_floor > 0``.
        solver_options, backward_options: ``SolverConfig`` options of the forward plain
            iteration and of the adjoint iteration (default ``tol=1e-12, max_iter=2000``).
        on_nonconvergence: ``"raise"``, ``"warn"`` or ``"ignore"``.
        generator, dtype: initialisation RNG and parameter dtype.

    After ``forward`` the solver statistics are in ``last_result`` (``.stats``, and after a
    backward pass ``.backward_stats``).
    """

    def __init__(
        self,
        n: int,
        activation: Any = "tanh",
        in_features: int | None = None,
        *,
        weight_param: str = "softplus",
        gain: float = 0.5,
        input_floor: float = 1e-2,
        solver_options: dict[str, Any] | None = None,
        backward_options: dict[str, Any] | None = None,
        on_nonconvergence: str = "warn",
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if weight_param not in WEIGHT_PARAMETRISATIONS:
            raise ValueError(
                f"weight_param must be one of {WEIGHT_PARAMETRISATIONS}, got {weight_param!r}"
            )
        if on_nonconvergence not in POLICIES:
            raise ValueError(f"on_nonconvergence must be one of {POLICIES}")
        if n < 1 or gain <= 0 or input_floor < 0:
            raise ValueError("need n >= 1, gain > 0 and input_floor >= 0")
        dtype = dtype or torch.get_default_dtype()
        self.n = int(n)
        self.in_features = in_features
        self.activation = as_activation(activation)
        self.weight_param = weight_param
        self.input_floor = float(input_floor)
        self.on_nonconvergence = on_nonconvergence
        base = dict(tol=DEFAULT_CONFIG.tol, max_iter=DEFAULT_CONFIG.max_iter)
        self.config = as_config({**base, **(solver_options or {})})
        self.backward_config = as_config({**base, **(backward_options or solver_options or {})})
        w0 = gain / n * (0.5 + torch.rand(n, n, generator=generator, dtype=dtype))
        if weight_param == "softplus":
            raw = torch.log(torch.expm1(w0))
        elif weight_param == "square":
            raw = w0.sqrt()
        else:
            raw = w0
        self.weight_raw = nn.Parameter(raw)
        if in_features is not None:
            u = torch.randn(n, in_features, generator=generator, dtype=dtype)
            self.input_weight = nn.Parameter(u / math.sqrt(in_features))
            self.input_bias = nn.Parameter(torch.zeros(n, dtype=dtype))
        else:
            self.register_parameter("input_weight", None)
            self.register_parameter("input_bias", None)
        self.last_result: ImplicitResult | None = None

    def extra_repr(self) -> str:
        return (
            f"n={self.n}, activation={self.activation.name}, in_features={self.in_features}, "
            f"weight_param={self.weight_param}"
        )

    @property
    def weight(self) -> Tensor:
        """``W >= 0`` from the raw parameter (``softplus(V)``, ``V * V`` or ``V``)."""
        if self.weight_param == "softplus":
            return F.softplus(self.weight_raw)
        if self.weight_param == "square":
            return self.weight_raw * self.weight_raw
        return self.weight_raw

    @torch.no_grad()
    def project_(self) -> None:
        """Projection onto ``W >= 0`` (for ``weight_param="project"``; a no-op otherwise)."""
        if self.weight_param == "project":
            self.weight_raw.clamp_(min=0.0)

    def injection(self, u: Tensor) -> Tensor:
        """``x = softplus(u U^T + c) + input_floor`` (or ``x = u`` without an input map)."""
        if self.input_weight is None:
            return u
        return F.softplus(u @ self.input_weight.T + self.input_bias) + self.input_floor

    def deq_map(self, x: Tensor) -> Callable[[Tensor], Tensor]:
        """``z -> sigma(W z + x)``."""
        return pcdeq_map(self.weight, x, self.activation)

    def forward(self, u: Tensor) -> Tensor:
        """Equilibrium ``z*`` (shape ``(N, n)``) for inputs ``u`` (``(N, in_features)``, or
        ``(N, n)`` injections ``x`` when ``in_features`` is ``None``)."""
        if u.dim() == 1:
            u = u[None]
        x = self.injection(u)
        result = pcdeq_equilibrium(
            self.weight,
            x,
            self.activation,
            self.config,
            self.backward_config,
            self.on_nonconvergence,
        )
        self.last_result = result
        return result.z


# --------------------------------------------------------------------------------------------
# The certificate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """One checked condition: ``holds``, a representative ``value`` and how it was decided
    (``symbolic``, ``grid``, ``computed``)."""

    name: str
    holds: bool
    value: float | None
    detail: str
    method: str

    def message(self) -> str:
        return f"{self.name}: {self.detail}"

    @property
    def finding(self) -> Finding:
        """This condition in the shared vocabulary (:mod:`deqfam.vocab`): pass/fail from
        ``holds``; a proof when decided ``symbolic``, numerical evidence otherwise."""
        strength = Strength.PROVEN if self.method == "symbolic" else Strength.NUMERICAL
        return Finding(
            Outcome.PASS if self.holds else Outcome.FAIL, strength, self.value, self.message()
        )


@dataclass
class PCDEQCertificate:
    """Outcome of ``certify`` / ``certify_map`` (module docstring for the mathematics).

    Attributes:
        conditions: ``name -> Condition`` for ``nonnegative_weights``, ``domain``,
            ``monotone_activation``, ``concave_activation``, ``positivity``, ``existence``,
            ``forward_convergence``, ``adjoint_contraction``.
        fixed_point: ``z*`` from plain iteration (``(N, n)``).
        iterations: plain iterations used.
        observed_ratio: largest (over samples) asymptotic ratio
            ``|z_{k+1} - z_k| / |z_k - z_{k-1}|`` (last iterations above rounding level).
        max_ratio: largest such ratio over all iterations and samples.
        monotone_iterates: the iterates from ``z_0 = 0`` increased monotonically.
        adjoint_bound: per-sample Collatz-Wielandt bound ``max_i (J z*)_i / z*_i``.
        concavity_bound: per-sample ``max_i (1 - T(0)_i / z*_i)`` (``>= adjoint_bound`` under
            concavity).
        spectral_radius_W: ``rho(W)``; asymptotic_slope: ``s_inf`` used for existence.
    """

    conditions: dict[str, Condition]
    fixed_point: Tensor
    iterations: int
    observed_ratio: float
    max_ratio: float
    monotone_iterates: bool
    adjoint_bound: Tensor
    concavity_bound: Tensor
    spectral_radius_W: float
    asymptotic_slope: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def certified(self) -> bool:
        return all(c.holds for c in self.conditions.values())

    @property
    def findings(self) -> dict[str, Finding]:
        """Every condition in the shared vocabulary (:mod:`deqfam.vocab`), by name."""
        return {k: c.finding for k, c in self.conditions.items()}

    @property
    def violations(self) -> list[str]:
        """One message per violated condition, each starting with the condition's name."""
        return [c.message() for c in self.conditions.values() if not c.holds]

    def raise_if_failed(self) -> None:
        if not self.certified:
            raise CertificationError("pcDEQ certificate failed: " + "; ".join(self.violations))

    def as_dict(self) -> dict[str, Any]:
        return {
            "certified": self.certified,
            "conditions": {
                k: {"holds": c.holds, "value": c.value, "detail": c.detail, "method": c.method}
                for k, c in self.conditions.items()
            },
            "iterations": self.iterations,
            "observed_ratio": self.observed_ratio,
            "max_ratio": self.max_ratio,
            "monotone_iterates": self.monotone_iterates,
            "adjoint_bound": float(self.adjoint_bound.max()),
            "concavity_bound": float(self.concavity_bound.max()),
            "spectral_radius_W": self.spectral_radius_W,
            "asymptotic_slope": self.asymptotic_slope,
        }

    def __str__(self) -> str:
        head = "certified" if self.certified else "NOT certified"
        lines = [f"pcDEQ certificate: {head}"]
        for c in self.conditions.values():
            mark = "ok  " if c.holds else "FAIL"
            lines.append(f"  [{mark}] {c.name} ({c.method}): {c.detail}")
        lines.append(
            f"  forward: {self.iterations} plain iterations, observed ratio "
            f"{self.observed_ratio:.4f} (max {self.max_ratio:.4f})"
        )
        return "\n".join(lines)


def _proof_status(proof: Any, key: str) -> str | None:
    """Status string of a symbolic verdict (``ConcavityVerdict`` or a mapping)."""
    if proof is None:
        return None
    value = proof.get(key) if isinstance(proof, Mapping) else getattr(proof, key, None)
    return None if value is None else str(value)


def _grid(lower: float, upper: float, dtype: torch.dtype) -> Tensor:
    """Points ``lower + t``: dense on ``[0, max(8, upper - lower)]``, then geometric to 1e6."""
    span = max(8.0, float(upper) - lower)
    dense = torch.linspace(0.0, span, 4001, dtype=dtype)
    tail = torch.logspace(math.log10(span), 6.0, 400, dtype=dtype)[1:]
    return lower + torch.cat([dense, tail])


def _first_or_worst(violated: Tensor, badness: Tensor) -> int:
    """Index of the first violation on the grid, or of the worst value when none."""
    if bool(violated.any()):
        return int(torch.nonzero(violated)[0, 0])
    return int(torch.argmax(badness))


def _activation_checks(
    act: PositiveActivation, lower: float, upper: float, proof: Any, dtype: torch.dtype
) -> tuple[Condition, Condition, Condition, float, bool]:
    """Domain, monotonicity and concavity of ``sigma`` on ``[lower, oo)``; also returns the
    asymptotic slope estimate and whether ``sigma`` looks bounded."""
    lo, hi = act.domain
    in_domain = lo <= lower and math.isinf(hi) and hi > 0
    domain = Condition(
        "domain",
        in_domain,
        None,
        f"sigma is defined on ({lo:g}, {hi:g})"
        + ("" if in_domain else f", which does not contain [{lower:g}, oo)"),
        "computed",
    )
    t = _grid(lower, upper, dtype)
    with torch.no_grad():
        s = act.fn(t)
        d1 = act.grad(t)
        d2 = act.grad2(t) if act.grad2 is not None else None
    finite = torch.isfinite(s) & torch.isfinite(d1)
    if d2 is not None:
        finite &= torch.isfinite(d2)
    overflow = ""
    if not bool(finite.all()):
        # Keep the leading finite part of the grid (e.g. exp overflows beyond t ~ 709).
        first_bad = int(torch.nonzero(~finite)[0, 0])
        overflow = f"; sigma is not finite beyond t = {float(t[first_bad]):.4g}"
        t, s, d1 = t[:first_bad], s[:first_bad], d1[:first_bad]
        d2 = d2[:first_bad] if d2 is not None else None
    if t.numel() < 3:
        text = "sigma is not finite on [lower, oo)"
        bad = Condition("monotone_activation", False, None, text, "grid")
        return domain, bad, dataclasses.replace(bad, name="concave_activation"), math.inf, False
    eps = torch.finfo(dtype).eps
    abs_s, abs_d1 = s.abs(), d1.abs()
    dt = t[1:] - t[:-1]
    secant = (s[1:] - s[:-1]) / dt
    # Rounding level of the divided differences: a few ulps of the local values of sigma over
    # the spacing, plus a few ulps of the local slope.
    loc_s = torch.maximum(abs_s[1:], abs_s[:-1])
    loc_d = torch.maximum(abs_d1[1:], abs_d1[:-1])
    tol1 = 64 * eps * (loc_s / dt + loc_d)
    mono_worst_idx = _first_or_worst(secant < -tol1, -(secant + tol1))
    mono_secant = float(secant[mono_worst_idx])
    mono_grad = float(d1.min())
    mono_ok_grid = bool((secant >= -tol1).all()) and bool((d1 >= -64 * eps * abs_s).all())
    # Concavity: slopes of consecutive secants must not increase (second divided differences),
    # and sigma'' <= 0 where it is given.
    mid = 0.5 * (t[2:] - t[:-2])
    second = (secant[1:] - secant[:-1]) / mid
    tol2 = (tol1[1:] + tol1[:-1]) / mid
    conc_idx = _first_or_worst(second > tol2, second - tol2)
    conc_ok_grid = bool((second <= tol2).all())
    worst_d2 = float(d2.max()) if d2 is not None else -math.inf
    if d2 is not None:
        conc_ok_grid = conc_ok_grid and bool((d2 <= 64 * eps * (abs_d1 + abs_s)).all())
    where_d2 = float(t[int(torch.argmax(d2))]) if d2 is not None else math.nan
    grid_text = f"grid of {t.numel()} points on [{lower:g}, {float(t[-1]):.4g}]{overflow}"

    def decide(key: str, ok_grid: bool, good: str, bad: str) -> tuple[bool, str, str]:
        status = _proof_status(proof, key)
        if status == "proven":
            agree = "agrees" if ok_grid else "DISAGREES"
            return True, f"{good} (symbolic proof; grid check {agree})", "symbolic"
        if status == "disproven":
            return False, f"{bad} (symbolic disproof)", "symbolic"
        return ok_grid, (good if ok_grid else bad) + f" ({grid_text})", "grid"

    ok, text, method = decide(
        "monotone",
        mono_ok_grid,
        f"sigma' >= 0 on [{lower:g}, oo): min sigma' = {mono_grad:.3g}",
        f"sigma is not nondecreasing on [{lower:g}, oo): min sigma' = {mono_grad:.3g}, "
        f"secant slope {mono_secant:.3g} at t = {float(t[mono_worst_idx]):.4g}",
    )
    monotone = Condition("monotone_activation", ok, mono_grad, text, method)
    worst_second = float(second[conc_idx])
    at = float(t[conc_idx + 1])
    bad = (
        f"sigma is not concave on [{lower:g}, oo): second divided difference "
        f"{worst_second:.3g} > 0 at t = {at:.4g}"
    )
    if d2 is not None and worst_d2 > 0:
        bad += f", sigma'' = {worst_d2:.3g} > 0 at t = {where_d2:.4g}"
    ok, text, method = decide(
        "concave",
        conc_ok_grid,
        f"sigma'' <= 0 on [{lower:g}, oo): max sigma'' = {max(worst_d2, worst_second):.3g}",
        bad,
    )
    concave = Condition("concave_activation", ok, max(worst_d2, worst_second), text, method)
    # Asymptotics: for concave nondecreasing sigma, sigma' decreases to s_inf, so sigma'(t_max)
    # is an upper bound of s_inf; a symbolic verdict gives it exactly.
    slope = _proof_status(proof, "asymptotic_slope")
    bounded_status = _proof_status(proof, "bounded")
    if slope is not None and slope != "None":
        s_inf = float(slope)
    else:
        big = torch.tensor([1e6, 1e12], dtype=dtype) + lower
        with torch.no_grad():
            s_inf = float(act.grad(big)[-1].clamp_min(0.0))
    bounded = bounded_status == "True" if bounded_status is not None else s_inf == 0.0
    return domain, monotone, concave, s_inf, bounded


class _StepMonitor:
    """Observer of plain iteration ``z_{k+1} = T(z_k)`` run by ``solvers.fixed_point``.

    Per sample it keeps the asymptotic (last) and maximal ratio ``|s_k| / |s_{k-1}|`` of
    successive steps ``s_k = T(z_k) - z_k`` (only ratios of steps well above rounding level),
    whether every step was componentwise ``>= 0`` up to rounding (monotone iterates), and the
    latest image ``T(z_k)``, which is non-finite where the iteration blew up.
    """

    def __init__(self) -> None:
        self.prev_step: Tensor | None = None
        self.last_ratio = self.max_ratio = self.image = self.monotone = torch.empty(0)

    def __call__(self, z: Tensor, image: Tensor, updated: Tensor) -> None:
        eps = torch.finfo(z.dtype).eps
        step = image - z
        norm = torch.linalg.vector_norm(step, dim=1)
        scale = torch.linalg.vector_norm(image, dim=1)
        up = (step >= -1e3 * eps * image.abs().clamp_min(1.0)).all(-1) | ~updated
        if self.prev_step is None:
            self.last_ratio = torch.zeros_like(norm)
            self.max_ratio = torch.zeros_like(norm)
            self.monotone, self.image, self.prev_step = up, image.clone(), norm
            return
        valid = updated & (self.prev_step > 1e4 * eps * scale.clamp_min(1.0))
        ratio = torch.where(valid, norm / self.prev_step.clamp_min(1e-300), torch.zeros_like(norm))
        self.last_ratio = torch.where(valid, ratio, self.last_ratio)
        self.max_ratio = torch.maximum(self.max_ratio, ratio)
        self.monotone = self.monotone & up
        self.prev_step = torch.where(updated, norm, self.prev_step)
        self.image = torch.where(updated[:, None], image, self.image)


def _plain_iteration(
    T: Callable[[Tensor], Tensor], z0: Tensor, max_iter: int, tol: float
) -> tuple[Tensor, int, Tensor, Tensor, bool, bool]:
    """``z_{k+1} = T(z_k)`` by ``solvers.fixed_point`` (undamped) until every sample has
    ``|T(z) - z| <= tol (1 + |T(z)|)``, at most ``max_iter`` evaluations of ``T``; a sample stops
    only when its iterate is non-finite. Returns the last image ``T(z)``, the number of
    evaluations, the asymptotic and maximal step ratios per sample, convergence and
    monotonicity of the iterates."""
    cfg = SolverConfig(tol=tol, rtol=tol, max_iter=max(1, max_iter - 1), divergence_factor=math.inf)
    monitor = _StepMonitor()
    stats = fixed_point(T, z0, cfg, monitor=monitor).stats
    evaluations = int(stats.iterations.max()) + 1 if stats.n_samples else 1
    return (
        monitor.image,
        evaluations,
        monitor.last_ratio,
        monitor.max_ratio,
        stats.all_converged,
        bool(monitor.monotone.all()),
    )


def certify_map(
    W: Tensor,
    x: Tensor,
    activation: Any,
    activation_proof: Any = None,
    max_iter: int = 5000,
    tol: float = 1e-13,
) -> PCDEQCertificate:
    """Certify the map ``T(z) = sigma(W z + x)`` (rows of ``x``: samples; module docstring).

    ``activation_proof`` is an optional symbolic verdict on ``sigma`` (a
    ``derive.concavity.ConcavityVerdict`` or a mapping with ``monotone``, ``concave``,
    ``asymptotic_slope``, ``bounded``); without it monotonicity and concavity are checked on a
    grid of ``[min(0, min x), 1e6]`` (sigma' and sigma'' where given, and first and second
    divided differences of sigma, with rounding-level tolerances).

    Conditions, in order: ``nonnegative_weights`` (``min W >= 0``), ``domain``,
    ``monotone_activation``, ``concave_activation``, ``positivity`` (``min T(0) > 0``),
    ``existence`` (``sigma`` bounded or ``s_inf rho(W) < 1``), ``forward_convergence`` (plain
    iteration from 0 reaches ``|z_{k+1} - z_k| <= tol (1 + |z|)``) and ``adjoint_contraction``
    (Collatz-Wielandt bound ``max_i (J z*)_i / z*_i < 1`` with ``z* > 0`` and ``J >= 0``).
    """
    act = as_activation(activation)
    W = W.detach()
    x = x.detach()
    if x.dim() == 1:
        x = x[None]
    dtype = W.dtype
    conditions: dict[str, Condition] = {}
    w_min = float(W.min())
    conditions["nonnegative_weights"] = Condition(
        "nonnegative_weights",
        w_min >= 0,
        w_min,
        f"min W = {w_min:.3g}" + (" >= 0" if w_min >= 0 else " < 0 (W must be elementwise >= 0)"),
        "computed",
    )
    lower = min(0.0, float(x.min()))
    rho_W = float(torch.linalg.eigvals(W).abs().max()) if W.numel() else 0.0
    # Largest pre-activation reachable in the iteration is below sup sigma * |W|_inf + max x.
    with torch.no_grad():
        T = pcdeq_map(W, x, act)
        z_star, iters, last_ratio, max_ratio, converged, mono_it = _plain_iteration(
            T, torch.zeros_like(x), max_iter, tol
        )
        upper = float((z_star @ W.T + x).max()) if bool(torch.isfinite(z_star).all()) else 8.0
    domain, monotone, concave, s_inf, bounded = _activation_checks(
        act, lower, upper if math.isfinite(upper) else 8.0, activation_proof, dtype
    )
    conditions["domain"] = domain
    conditions["monotone_activation"] = monotone
    conditions["concave_activation"] = concave
    with torch.no_grad():
        T0 = act.fn(x)
    t0_min = float(T0.min())
    conditions["positivity"] = Condition(
        "positivity",
        t0_min > 0,
        t0_min,
        f"min T(0) = min sigma(x) = {t0_min:.3g}"
        + (" > 0" if t0_min > 0 else " <= 0 (T(0) must be > 0: use x > 0 or sigma(0) > 0)"),
        "computed",
    )
    radius_inf = s_inf * rho_W
    exists = bounded or radius_inf < 1
    conditions["existence"] = Condition(
        "existence",
        exists,
        radius_inf,
        ("sigma is bounded (s_inf = 0)" if bounded else f"s_inf = {s_inf:.3g}, ")
        + (
            ""
            if bounded
            else f"rho(T_inf) = s_inf rho(W) = {radius_inf:.3g}"
            + (" < 1" if exists else " >= 1: no fixed point guaranteed")
        ),
        "symbolic" if _proof_status(activation_proof, "asymptotic_slope") else "computed",
    )
    conditions["forward_convergence"] = Condition(
        "forward_convergence",
        converged,
        float(iters),
        f"plain iteration from 0 {'converged' if converged else 'did NOT converge'} in {iters} "
        f"iterations (tol {tol:g}); observed ratio {float(last_ratio.max()):.4f}",
        "computed",
    )
    # Backward certificate: one Jacobian-vector product J z* = sigma'(W z* + x) * (W z*),
    # written out (generated family activations are custom ops without forward-mode AD).
    with torch.no_grad():
        wz = z_star @ W.T
        jz = act.grad(wz + x) * wz
        positive = bool((z_star > 0).all())
        safe = torch.where(z_star > 0, z_star, torch.ones_like(z_star))
        cw = (jz / safe).amax(dim=1)
        conc_bound = (1 - T0 / safe).amax(dim=1)
    cw_max = float(cw.max())
    j_nonneg = w_min >= 0 and monotone.holds
    adj_ok = positive and j_nonneg and cw_max < 1 and bool(torch.isfinite(cw).all())
    if not bool(torch.isfinite(z_star).all()):
        detail = "plain iteration found no finite fixed point"
    elif not positive:
        detail = "z* is not strictly positive: the Collatz-Wielandt bound does not apply"
    elif not j_nonneg:
        detail = "J = diag(sigma') W is not known to be >= 0: the bound does not apply"
    else:
        detail = f"rho(J) <= max_i (J z*)_i / z*_i = {cw_max:.4f}" + (
            " < 1: the adjoint iteration converges" if cw_max < 1 else " >= 1"
        )
    conditions["adjoint_contraction"] = Condition(
        "adjoint_contraction", adj_ok, cw_max, detail, "computed"
    )
    return PCDEQCertificate(
        conditions=conditions,
        fixed_point=z_star,
        iterations=iters,
        observed_ratio=float(last_ratio.max()),
        max_ratio=float(max_ratio.max()),
        monotone_iterates=mono_it,
        adjoint_bound=cw,
        concavity_bound=conc_bound,
        spectral_radius_W=rho_W,
        asymptotic_slope=s_inf,
    )


def certify(
    layer: PositiveConcaveDEQ, u: Tensor, activation_proof: Any = None, **kwargs: Any
) -> PCDEQCertificate:
    """``certify_map(layer.weight, layer.injection(u), layer.activation, ...)``."""
    with torch.no_grad():
        x = layer.injection(u if u.dim() > 1 else u[None])
        W = layer.weight
    return certify_map(W, x, layer.activation, activation_proof, **kwargs)


__all__ = [
    "ADMISSIBLE_ACTIVATIONS",
    "NAMED_ACTIVATIONS",
    "WEIGHT_PARAMETRISATIONS",
    "CertificationError",
    "Condition",
    "PCDEQCertificate",
    "PositiveActivation",
    "PositiveConcaveDEQ",
    "activation_from_family",
    "as_activation",
    "certify",
    "certify_map",
    "pcdeq_equilibrium",
    "pcdeq_map",
]
