"""The pcDEQ certificate: the conditions (nonnegative weights and inputs, monotone concave
activation on the inputs' range, existence, positivity, contraction of the adjoint by the
Collatz-Wielandt bound) checked for ``z = sigma(W z + x)``, with the observed convergence of the
plain iteration (package docstring)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from deqfam.vocab import Finding, Outcome, Strength

from .activations import PositiveActivation, as_activation
from .iteration import plain_iteration
from .model import PositiveConcaveDEQ, pcdeq_map


class CertificationError(ValueError):
    """Raised by ``PCDEQCertificate.raise_if_failed`` naming every violated condition."""


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
        z_star, iters, last_ratio, max_ratio, converged, mono_it = plain_iteration(
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
