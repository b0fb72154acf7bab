"""Implicit conjugate kernel (CK) and NTK of random DEQs on Gaussian-mixture data.

After Ling, Li, Feng, Zhang, Zhou, Qiu, Liao (ICML 2024), "Deep equilibrium models are almost
equivalent to not-so-deep explicit models for high-dimensional Gaussian mixtures".

Setting. Data are the rows ``x_i`` of ``X`` (shape ``(n, p)``; the paper's ``X`` is our
``X^T``), ``x_i = (mu_a + omega_i)/sqrt(p)`` with ``omega_i ~ N(0, C_a)`` for ``i`` in class
``a``. The DEQ at random initialisation is

    z_i = m^{-1/2} phi(sigma_a A z_i + sigma_b B x_i),   A_{rk}, B_{rk} iid N(0, 1),

with ``sigma_a^2 + sigma_b^2 = 1`` and ``phi`` centred (below). Its CK is ``G* = Z* Z*^T``
(``n x n``), its pre-activation kernel ``K* = sigma_a^2 G* + sigma_b^2 X X^T``.

Infinite width (``m -> oo``, ``n, p`` fixed). Rows of the pre-activations are Gaussian with
covariance ``K``, so ``K = sigma_a^2 F(K) + sigma_b^2 X X^T`` with
``F(K)_ij = E[phi(h_i) phi(h_j)]``, ``h ~ N(0, K)`` (``infinite_width_kernels`` solves this
matrix fixed point; ReLU in closed form (arc-cosine kernels), other ``phi`` by 2-D
Gauss-Hermite quadrature). The hidden-layer NTK is (Feng and Kolter, ICLR 2023)
``Theta = K / (1 - sigma_a^2 Gdot)`` elementwise, ``Gdot_ij = E[phi'(h_i) phi'(h_j)]``.

Scalars (``xi ~ N(0, 1)``; ``tau0^2 = mean_i |x_i|^2``):

    tau^2 = sigma_a^2 Var[phi(tau xi)] + sigma_b^2 tau0^2         (scalar fixed point)
    phi <- phi - E[phi(tau xi)]                                     (centring)
    d1 = (E phi'(tau xi))^2 = (E[xi phi(tau xi)] / tau)^2                   (Stein)
    d2 = (E phi''(tau xi))^2 = (E[(xi^2 - 1) phi(tau xi)] / tau^2)^2        (Stein)
    d3 = E[phi'(tau xi)^2]    (well-posedness: sigma_a^2 d3 < 1)
    d4 = E[(phi^2)''(tau xi)] = E[(xi^2 - 1) phi(tau xi)^2] / tau^2         (Stein)
    alpha1 = sigma_b^2 / (1 - sigma_a^2 d1),  alpha4 = sigma_b^2 / (1 - sigma_a^2 d4 / 2)
    alpha2 = (sigma_a^2 / 4) d2 alpha4^2 / (1 - sigma_a^2 d1)
    alpha3 = (sigma_a^2 / 2) d2 alpha1^2 / (1 - sigma_a^2 d1)

Derivation of the deterministic equivalent (ours, following the Gaussian-mixture CK analyses of
Couillet and Benaych-Georges 2016, Liao and Couillet 2018, Ali, Liao and Couillet 2022). Write
``K_ii = tau^2 + delta_i`` with ``delta_i = O(p^{-1/2})`` and ``K_ij = O(p^{-1/2})`` for
``i != j``; Taylor expansion of ``F`` (``d/dv E[phi(sqrt(v) xi)] = E[phi''(sqrt(v) xi)] / 2``,
``E phi = 0``) gives, entrywise to the order that matters in spectral norm,

    F_ii = E[phi(tau xi)^2] + (d4 / 2) delta_i,
    F_ij = d1 K_ij + (d2 / 2) K_ij^2 + (d2 / 4) delta_i delta_j.

Substituting into ``K = sigma_a^2 F(K) + sigma_b^2 X X^T`` and solving order by order:
``delta_i = alpha4 psi_i`` with ``psi_i = |x_i|^2 - tau0^2``, and
``K_ij = alpha1 x_i^T x_j + alpha3 (x_i^T x_j)^2 + alpha2 psi_i psi_j``. Finally, in spectral
norm, ``[(x_i^T x_j)^2]_{i != j}`` is equivalent to the class-block matrix
``Q_ij = tr(C_a C_b) / p^2`` (its fluctuations have norm ``O(n^{1/2}/p)``), so

    K_bar = alpha1 X X^T + alpha2 psi psi^T + alpha3 Q + (tau^2 - tau0^2 alpha1) I,
    G_bar = (K_bar - sigma_b^2 X X^T) / sigma_a^2,

which depend on ``phi``, ``sigma_a``, ``sigma_b`` only through ``(alpha1, alpha2, alpha3,
tau^2 - tau0^2 alpha1)``. (The identity coefficient makes the diagonal ``tau^2``; the
neglected diagonal ``(alpha4 - alpha1) psi_i`` is ``O(p^{-1/2})``.) ``Q`` uses the population
covariances when given, else block averages of ``(x_i^T x_j)^2`` over ``i != j``. Note: ``Q``
keeps its constant part ``tr(C°^2)/p^2 11^T`` (``C°`` the mean covariance), which is ``O(n/p)``
in spectral norm; Ling et al. write the same term with centred covariances ``C_a - C°`` only.

The NTK equivalent follows from ``Gdot_ij = d1 + d2 K_ij + ...`` (``i != j``),
``Gdot_ii = d3``:

    Theta_bar = beta1 X X^T + beta2 psi psi^T + beta3 Q + (tau^2/(1 - sigma_a^2 d3)
                - tau0^2 beta1) I,
    beta1 = alpha1 / (1 - sigma_a^2 d1), beta2 = alpha2 / (1 - sigma_a^2 d1),
    beta3 = alpha3 / (1 - sigma_a^2 d1) + sigma_a^2 d2 alpha1^2 / (1 - sigma_a^2 d1)^2.

Explicit networks. A layer ``y = m^{-1/2} phi_l(W y_prev)`` (``W`` iid ``N(0, 1)``) maps the
equivalent-kernel coefficients ``(c1, c2, c3, e)`` of its input kernel (``c1 X X^T + c2 psi
psi^T + c3 Q``, diagonal ``s^2 + e psi_i``) to
``(d1 c1, d1 c2 + (d2/4) e^2, d1 c3 + (d2/2) c1^2, (d4/2) e)`` with the layer's ``d``'s at its
input scale ``s`` (the input is ``(1, 0, 0, 1)`` at scale ``tau0``); the DEQ coefficients are
the fixed point of ``c -> sigma_a^2 (layer map) + sigma_b^2 (input)``. ``match_explicit`` solves
the four equations for a two-layer network with Hermite-polynomial activations.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import optimize, special
from torch import Tensor

from .solvers import SolverConfig, fixed_point

NumpyFn = Callable[[np.ndarray], np.ndarray]


class WellPosednessError(ValueError):
    """The random DEQ is not well posed: ``sigma_a^2 E[phi'(tau xi)^2] >= 1`` (or a related
    denominator of the scalar system vanishes)."""


# --------------------------------------------------------------------------------------------
# Activations and Gaussian quadrature
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phi:
    """An activation for the kernel analysis: numpy ``fn``, its derivative ``grad`` (numpy),
    points where it is not smooth (``breakpoints``, in pre-activation units), and a torch
    version for Monte Carlo (``torch_fn``)."""

    name: str
    fn: NumpyFn
    grad: NumpyFn
    breakpoints: tuple[float, ...] = ()
    torch_fn: Callable[[Tensor], Tensor] | None = None
    #: ``(a, b)`` when ``phi(t) = max(a t, b t)``-type piecewise linear, ``a t`` for ``t > 0`` and
    #: ``b t`` for ``t < 0``: Gaussian pair expectations then have closed forms.
    slopes: tuple[float, float] | None = None

    def torch(self, t: Tensor) -> Tensor:
        if self.torch_fn is not None:
            return self.torch_fn(t)
        return torch.from_numpy(np.asarray(self.fn(t.detach().cpu().numpy()))).to(t)


def piecewise_linear(a: float, b: float, name: str | None = None) -> Phi:
    """``phi(t) = a t`` for ``t > 0``, ``b t`` for ``t <= 0`` (ReLU: ``(1, 0)``)."""

    def tfn(t: Tensor) -> Tensor:
        return torch.where(t > 0, a * t, b * t)

    return Phi(
        name or f"piecewise_linear({a:g}, {b:g})",
        lambda t: np.where(t > 0, a * t, b * t),
        lambda t: np.where(t > 0, a, b) * np.ones_like(t),
        (0.0,),
        tfn,
        (float(a), float(b)),
    )


def _leaky(slope: float) -> Phi:
    return piecewise_linear(1.0, slope, f"leaky_relu({slope:g})")


NAMED_PHI: dict[str, Phi] = {
    "relu": piecewise_linear(1.0, 0.0, "relu"),
    "tanh": Phi("tanh", np.tanh, lambda t: 1.0 / np.cosh(t) ** 2, (), torch.tanh),
    "leaky_relu": _leaky(0.1),
    "erf": Phi(
        "erf",
        special.erf,
        lambda t: 2 / math.sqrt(math.pi) * np.exp(-(t**2)),
        (),
        torch.erf,
    ),
}


def _central_difference(fn: NumpyFn, breakpoints: Sequence[float] = ()) -> NumpyFn:
    """``(fn(t + h) - fn(t - h)) / 2h`` with ``h = 1e-6 max(1, |t|)``, shrunk to half the
    distance to the nearest breakpoint so the stencil never straddles a kink."""
    kinks = np.asarray(breakpoints, dtype=float)

    def grad(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        h = 1e-6 * np.maximum(1.0, np.abs(t))
        if kinks.size:
            dist = np.abs(t[..., None] - kinks).min(-1)
            h = np.clip(np.minimum(h, 0.5 * dist), 1e-13 * np.maximum(1.0, np.abs(t)), None)
        return (fn(t + h) - fn(t - h)) / (2 * h)

    return grad


def as_phi(phi: Any, dphi: NumpyFn | None = None, breakpoints: Sequence[float] = (0.0,)) -> Phi:
    """A ``Phi`` from a name in ``NAMED_PHI`` or a numpy callable (``dphi`` defaults to
    central differences kept off the ``breakpoints``, the kinks of ``phi``, which also cut the
    piecewise quadrature; default ``(0,)``)."""
    if isinstance(phi, Phi):
        return phi
    if isinstance(phi, str):
        if phi.startswith("leaky_relu:"):
            return _leaky(float(phi.split(":", 1)[1]))
        if phi not in NAMED_PHI:
            raise ValueError(f"unknown activation {phi!r}; known: {sorted(NAMED_PHI)}")
        return NAMED_PHI[phi]
    if not callable(phi):
        raise TypeError(f"phi must be a name or a callable, got {type(phi).__name__}")
    grad = dphi if dphi is not None else _central_difference(phi, breakpoints)
    name = getattr(phi, "__name__", "phi")
    return Phi(name, phi, grad, tuple(float(b) for b in breakpoints))


def gaussian_rule(
    breakpoints_xi: Sequence[float] = (0.0,), nodes: int = 64, half_width: float = 12.0
) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``xi_k`` and weights ``w_k`` with ``E f(xi) ~ sum_k w_k f(xi_k)``, ``xi ~ N(0,1)``:
    Gauss-Legendre with ``nodes`` points on each piece of ``[-L, L]`` cut at the breakpoints,
    times the normal density (the mass beyond ``L = 12`` is ``< 1e-32``). Exponentially
    accurate for integrands that are analytic on each piece (ReLU's kink at a breakpoint)."""
    cuts = sorted({-half_width, half_width, *(b for b in breakpoints_xi if abs(b) < half_width)})
    x_ref, w_ref = np.polynomial.legendre.leggauss(nodes)
    xs, ws = [], []
    for a, b in itertools.pairwise(cuts):
        x = 0.5 * (b - a) * x_ref + 0.5 * (a + b)
        xs.append(x)
        ws.append(0.5 * (b - a) * w_ref * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi))
    return np.concatenate(xs), np.concatenate(ws)


def hermite_rule(nodes: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss-Hermite rule for ``E f(xi)``, ``xi ~ N(0, 1)``."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    return x, w / math.sqrt(2 * math.pi)


@dataclass(frozen=True)
class GaussianMoments:
    """Moments of ``phi(tau xi)``: ``mean``, ``var``, ``e1 = E phi'``, ``e2 = E phi''``,
    ``d3 = E phi'^2``, ``d4 = E[(phi_c^2)'']`` (``phi_c = phi - mean``)."""

    tau: float
    mean: float
    var: float
    e1: float
    e2: float
    d3: float
    d4: float


def gaussian_moments(phi: Phi, tau: float, nodes: int = 64) -> GaussianMoments:
    """``GaussianMoments`` by Stein's identities (``E phi'(tau xi) = E[xi phi(tau xi)]/tau``,
    ``E phi'' = E[(xi^2-1) phi]/tau^2``, ``E (phi_c^2)'' = E[(xi^2-1) phi_c^2]/tau^2``) so kinked
    activations need no second derivative; ``d3`` uses ``phi.grad``."""
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
    xi, w = gaussian_rule([b / tau for b in phi.breakpoints], nodes)
    f = phi.fn(tau * xi)
    mean = float(w @ f)
    fc = f - mean
    he2 = xi * xi - 1
    g = phi.grad(tau * xi)
    return GaussianMoments(
        tau=tau,
        mean=mean,
        var=float(w @ (fc * fc)),
        e1=float(w @ (xi * f)) / tau,
        e2=float(w @ (he2 * f)) / tau**2,
        d3=float(w @ (g * g)),
        d4=float(w @ (he2 * fc * fc)) / tau**2,
    )


# --------------------------------------------------------------------------------------------
# The four scalars
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImplicitScalars:
    """The scalar system of the implicit CK (module docstring).

    ``shift`` is the centring constant ``E[phi(tau xi)]`` (the DEQ uses ``phi - shift``);
    ``well_posedness = sigma_a^2 d3`` must be ``< 1``.
    """

    sigma_a: float
    sigma_b: float
    tau0_sq: float
    tau_sq: float
    shift: float
    d1: float
    d2: float
    d3: float
    d4: float
    alpha1: float
    alpha2: float
    alpha3: float
    alpha4: float
    well_posedness: float

    @property
    def identity_coefficient(self) -> float:
        """``tau^2 - tau0^2 alpha1``."""
        return self.tau_sq - self.tau0_sq * self.alpha1

    @property
    def four(self) -> tuple[float, float, float, float]:
        """``(alpha1, alpha2, alpha3, tau^2 - tau0^2 alpha1)``: all ``K_bar`` depends on."""
        return (self.alpha1, self.alpha2, self.alpha3, self.identity_coefficient)

    def ck_coefficients(self) -> tuple[float, float, float, float]:
        """Coefficients of ``(X X^T, psi psi^T, Q, I)`` in ``G_bar = (K_bar - sb^2 XX^T)/sa^2``."""
        sa2, sb2 = self.sigma_a**2, self.sigma_b**2
        return (
            (self.alpha1 - sb2) / sa2,
            self.alpha2 / sa2,
            self.alpha3 / sa2,
            self.identity_coefficient / sa2,
        )

    def ntk_coefficients(self) -> tuple[float, float, float, float]:
        """Coefficients of ``(X X^T, psi psi^T, Q, I)`` in ``Theta_bar``."""
        sa2 = self.sigma_a**2
        den = 1 - sa2 * self.d1
        b1 = self.alpha1 / den
        b3 = self.alpha3 / den + sa2 * self.d2 * self.alpha1**2 / den**2
        b0 = self.tau_sq / (1 - sa2 * self.d3) - self.tau0_sq * b1
        return (b1, self.alpha2 / den, b3, b0)


def _check_sigmas(sigma_a: float, sigma_b: float) -> None:
    if sigma_a <= 0 or sigma_b < 0:
        raise ValueError(f"need sigma_a > 0 and sigma_b >= 0, got {sigma_a}, {sigma_b}")
    if abs(sigma_a**2 + sigma_b**2 - 1) > 1e-9:
        raise ValueError(
            f"the analysis assumes sigma_a^2 + sigma_b^2 = 1, got {sigma_a**2 + sigma_b**2:.6g}"
        )


def solve_tau(phi: Phi, sigma_a: float, sigma_b: float, tau0_sq: float, nodes: int = 64) -> float:
    """Root ``tau^2 > 0`` of ``tau^2 = sigma_a^2 Var[phi(tau xi)] + sigma_b^2 tau0^2`` (bracketed
    by ``sigma_b^2 tau0^2`` from below, where the right side exceeds ``tau^2``; Brent)."""

    def g(t2: float) -> float:
        return (
            sigma_a**2 * gaussian_moments(phi, math.sqrt(t2), nodes).var
            + sigma_b**2 * (tau0_sq)
            - t2
        )

    lo = max(sigma_b**2 * tau0_sq, 1e-12)
    if g(lo) < 0:  # only when Var ~ 0 and sigma_b = 0
        raise WellPosednessError("no positive solution tau^2 of the scalar fixed point")
    hi = 2 * lo + 1.0
    for _ in range(200):
        if g(hi) < 0:
            break
        lo, hi = hi, 2 * hi
    else:
        raise WellPosednessError(
            f"tau^2 = sigma_a^2 Var[phi(tau xi)] + sigma_b^2 tau0^2 has no root below {hi:.3g}: "
            f"sigma_a = {sigma_a} is too large for this activation"
        )
    return float(optimize.brentq(g, lo, hi, xtol=1e-15 * hi, rtol=4 * np.finfo(float).eps))


def implicit_scalars(
    phi: Any,
    sigma_a: float,
    sigma_b: float,
    tau0_sq: float,
    dphi: NumpyFn | None = None,
    breakpoints: Sequence[float] = (0.0,),
    nodes: int = 64,
) -> ImplicitScalars:
    """Solve the scalar system (module docstring) for the activation ``phi``.

    Raises ``WellPosednessError`` when ``sigma_a^2 E[phi'(tau xi)^2] >= 1`` (the DEQ's
    infinite-width Jacobian is not a contraction) or ``sigma_a^2 d4 / 2 >= 1``.
    """
    _check_sigmas(sigma_a, sigma_b)
    f = as_phi(phi, dphi, breakpoints)
    tau_sq = solve_tau(f, sigma_a, sigma_b, tau0_sq, nodes)
    mo = gaussian_moments(f, math.sqrt(tau_sq), nodes)
    sa2, sb2 = sigma_a**2, sigma_b**2
    d1, d2 = mo.e1**2, mo.e2**2
    wp = sa2 * mo.d3
    if wp >= 1:
        raise WellPosednessError(
            f"DEQ not well posed: sigma_a^2 E[phi'(tau xi)^2] = {wp:.4g} >= 1 "
            f"(sigma_a = {sigma_a:g}, tau^2 = {tau_sq:.4g}); decrease sigma_a"
        )
    if sa2 * mo.d4 / 2 >= 1:
        raise WellPosednessError(f"sigma_a^2 d4 / 2 = {sa2 * mo.d4 / 2:.4g} >= 1")
    alpha1 = sb2 / (1 - sa2 * d1)
    alpha4 = sb2 / (1 - sa2 * mo.d4 / 2)
    return ImplicitScalars(
        sigma_a=sigma_a,
        sigma_b=sigma_b,
        tau0_sq=float(tau0_sq),
        tau_sq=tau_sq,
        shift=mo.mean,
        d1=d1,
        d2=d2,
        d3=mo.d3,
        d4=mo.d4,
        alpha1=alpha1,
        alpha2=sa2 / 4 * d2 * alpha4**2 / (1 - sa2 * d1),
        alpha3=sa2 / 2 * d2 * alpha1**2 / (1 - sa2 * d1),
        alpha4=alpha4,
        well_posedness=wp,
    )


# --------------------------------------------------------------------------------------------
# Deterministic equivalents
# --------------------------------------------------------------------------------------------


def _as_numpy(X: Any) -> np.ndarray:
    if isinstance(X, Tensor):
        X = X.detach().cpu().numpy()
    return np.asarray(X, dtype=np.float64)


def squared_gram_blocks(
    X: np.ndarray, labels: np.ndarray, covariances: Sequence[np.ndarray] | None = None
) -> np.ndarray:
    """The class-block matrix ``Q`` equivalent to ``[(x_i^T x_j)^2]_{i != j}``:
    ``Q_ij = tr(C_a C_b)/p^2`` from population covariances, else the block average of
    ``(x_i^T x_j)^2`` over pairs ``i != j`` in classes ``(a, b)``."""
    p = X.shape[1]
    classes = np.unique(labels)
    index = np.searchsorted(classes, labels)
    k = len(classes)
    if covariances is not None:
        if len(covariances) != k:
            raise ValueError(f"got {len(covariances)} covariances for {k} classes")
        cov = [np.asarray(c, dtype=float) for c in covariances]
        block = np.array([[np.sum(ca * cb.T) / p**2 for cb in cov] for ca in cov])
    else:
        sq = (X @ X.T) ** 2
        np.fill_diagonal(sq, 0.0)
        onehot = np.eye(k)[index]
        counts = onehot.sum(0)
        pairs = np.outer(counts, counts) - np.diag(counts)
        block = onehot.T @ sq @ onehot / np.maximum(pairs, 1)
    return block[index][:, index]


@dataclass
class ImplicitKernels:
    """Output of ``implicit_kernels``.

    Attributes:
        scalars: the ``ImplicitScalars``.
        pre_activation: ``K_bar`` (``n x n``).
        ck: ``G_bar``, the deterministic equivalent of ``G* = Z* Z*^T``.
        ntk: ``Theta_bar``, the deterministic equivalent of ``K / (1 - sigma_a^2 Gdot)``.
        gram, psi, Q: ``X X^T``, ``psi_i = |x_i|^2 - tau0^2`` and the class-block ``Q``.
    """

    scalars: ImplicitScalars
    pre_activation: np.ndarray
    ck: np.ndarray
    ntk: np.ndarray
    gram: np.ndarray
    psi: np.ndarray
    Q: np.ndarray
    phi: Phi = field(repr=False)

    def assemble(self, coefficients: Sequence[float]) -> np.ndarray:
        """``c1 X X^T + c2 psi psi^T + c3 Q + c0 I`` for ``coefficients = (c1, c2, c3, c0)``."""
        c1, c2, c3, c0 = coefficients
        n = self.gram.shape[0]
        return c1 * self.gram + c2 * np.outer(self.psi, self.psi) + c3 * self.Q + c0 * np.eye(n)


def implicit_kernels(
    phi: Any,
    sigma_a: float,
    sigma_b: float,
    X: Any,
    labels: Any = None,
    covariances: Sequence[np.ndarray] | None = None,
    dphi: NumpyFn | None = None,
    breakpoints: Sequence[float] = (0.0,),
    nodes: int = 64,
) -> ImplicitKernels:
    """The four scalars, ``G_bar`` and the NTK equivalent ``Theta_bar`` (module docstring).

    ``X`` has one sample per row (``n x p``), ``labels`` the class of each row (``None``: one
    class), ``covariances`` optional population class covariances (for ``Q``). ``phi`` is a
    name in ``NAMED_PHI`` or any numpy callable; it is centred numerically at ``tau``.
    """
    X = _as_numpy(X)
    n, _ = X.shape
    labels = np.zeros(n, dtype=int) if labels is None else np.asarray(_as_numpy(labels), int)
    gram = X @ X.T
    sq_norms = np.diag(gram).copy()
    tau0_sq = float(sq_norms.mean())
    f = as_phi(phi, dphi, breakpoints)
    sc = implicit_scalars(f, sigma_a, sigma_b, tau0_sq, nodes=nodes)
    psi = sq_norms - tau0_sq
    Q = squared_gram_blocks(X, labels, covariances)
    out = ImplicitKernels(sc, np.empty(0), np.empty(0), np.empty(0), gram, psi, Q, f)
    out.pre_activation = out.assemble(sc.four)
    out.ck = out.assemble(sc.ck_coefficients())
    out.ntk = out.assemble(sc.ntk_coefficients())
    return out


# --------------------------------------------------------------------------------------------
# Infinite-width references and Monte Carlo
# --------------------------------------------------------------------------------------------


def _piecewise_nodes(cuts: np.ndarray, nodes: int, half_width: float = 12.0):
    """Gauss-Legendre nodes/weights (times the normal density) on ``[-L, L]`` cut at ``cuts``
    (last axis; clipped to ``[-L, L]``, any leading shape): returns arrays with a trailing
    axis of ``(ncuts + 1) * nodes`` points."""
    lo = np.full((*cuts.shape[:-1], 1), -half_width)
    edges = np.concatenate([lo, np.sort(np.clip(cuts, -half_width, half_width), -1), -lo], -1)
    a, b = edges[..., :-1, None], edges[..., 1:, None]
    x_ref, w_ref = np.polynomial.legendre.leggauss(nodes)
    x = 0.5 * (b - a) * x_ref + 0.5 * (a + b)
    w = 0.5 * (b - a) * w_ref * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    shape = (*cuts.shape[:-1], -1)
    return x.reshape(shape), w.reshape(shape)


def _nested_pairs(
    phi: Phi, shift: float, si: np.ndarray, sj: np.ndarray, rho: np.ndarray, nodes: int
) -> tuple[np.ndarray, np.ndarray]:
    """``E[phi_c(u) phi_c(v)]`` and ``E[phi'(u) phi'(v)]`` for pairs ``u = s_i xi``,
    ``v = s_j (rho xi + sqrt(1 - rho^2) eta)`` by nested piecewise Gauss-Legendre: the outer
    rule in ``xi`` is cut where ``u`` crosses 0 or a breakpoint of ``phi``, the inner rule in
    ``eta`` (for every outer node) where ``v`` does, so kinks never fall inside a piece."""
    kinks = np.array(sorted({0.0, *phi.breakpoints}))
    fixed = np.array([-4.0, 0.0, 4.0])  # fixed cuts: the normal density is resolved
    comp = np.sqrt(np.clip(1 - rho**2, 1e-300, None))
    vals = np.empty(len(si))
    dvals = np.empty(len(si))
    per = (len(kinks) + len(fixed) + 1) * nodes
    chunk = max(1, 4_000_000 // per**2)
    for start in range(0, len(si), chunk):
        sl = slice(start, start + chunk)
        a, b, r, c = si[sl, None], sj[sl, None], rho[sl, None], comp[sl, None]
        p_ = a.shape[0]
        cut1 = np.concatenate([kinks[None, :] / a, np.broadcast_to(fixed, (p_, 3))], -1)
        x1, w1 = _piecewise_nodes(cut1, nodes)  # (P, Q)
        cut2 = (kinks[None, None, :] / b[..., None] - (r * x1)[..., None]) / c[..., None]
        cut2 = np.concatenate([cut2, np.broadcast_to(fixed, (*cut2.shape[:-1], 3))], -1)
        x2, w2 = _piecewise_nodes(cut2, nodes)  # (P, Q, Q)
        u = a * x1
        v = b[..., None] * (r[..., None] * x1[..., None] + c[..., None] * x2)
        fu, fv = phi.fn(u) - shift, phi.fn(v) - shift
        vals[sl] = np.einsum("pq,pq,pqr,pqr->p", w1, fu, w2, fv)
        dvals[sl] = np.einsum("pq,pq,pqr,pqr->p", w1, phi.grad(u), w2, phi.grad(v))
    return vals, dvals


def _pair_expectations(
    phi: Phi, shift: float, K: np.ndarray, nodes: int, derivative: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """``F(K)_ij = E[phi_c(h_i) phi_c(h_j)]`` and (optionally) ``E[phi'(h_i) phi'(h_j)]`` for
    ``h ~ N(0, K)``, ``phi_c = phi - shift``.

    * piecewise-linear ``phi`` (ReLU, leaky ReLU): closed forms (arc-cosine kernels);
    * smooth ``phi`` (no breakpoints): Mehler's expansion
      ``E[f(xi) g(eta)] = sum_k rho^k E[f He_k] E[g He_k] / k!`` (``k < 90``) for
      ``|rho| <= 0.7`` (truncation ``< 0.7^90``), with the 1-D coefficients by the piecewise
      rule; pairs with larger ``|rho|`` (and the diagonal) by nested piecewise Gauss-Legendre;
    * other ``phi``: nested piecewise Gauss-Legendre (``_nested_pairs``) for every pair.
    """
    s = np.sqrt(np.clip(np.diag(K), 1e-300, None))
    rho = np.clip(K / np.outer(s, s), -1.0, 1.0)
    if phi.slopes is not None:
        # phi(t) = b t + (a - b) relu(t): E[phi(u) phi(v)] = a b K_uv + (a - b)^2 k1(u, v) with
        # the arc-cosine kernel k1 = s_u s_v (sin th + (pi - th) cos th) / (2 pi), and
        # E[phi'(u) phi'(v)] = a b + (a - b)^2 (pi - th) / (2 pi) (Cho and Saul 2009).
        a, b = phi.slopes
        theta = np.arccos(rho)
        k1 = np.outer(s, s) / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * rho)
        mean = (a - b) * s / math.sqrt(2 * np.pi)
        F = a * b * K + (a - b) ** 2 * k1 - shift * (mean[:, None] + mean[None, :]) + shift**2
        Fd = a * b + (a - b) ** 2 * (np.pi - theta) / (2 * np.pi) if derivative else None
        return F, Fd
    n = K.shape[0]
    F = np.empty_like(K)
    Fd = np.empty_like(K)
    direct = np.ones((n, n), dtype=bool)
    if not phi.breakpoints:
        order = 90
        xi, w = gaussian_rule((0.0,), 64)
        he = np.empty((order, xi.size))  # normalised He_k / sqrt(k!)
        he[0], he[1] = 1.0, xi
        for k in range(1, order - 1):
            he[k + 1] = (xi * he[k] - math.sqrt(k) * he[k - 1]) / math.sqrt(k + 1)
        t = s[:, None] * xi[None, :]
        coef = (phi.fn(t) - shift) * w @ he.T  # (n, order)
        dcoef = phi.grad(t) * w @ he.T
        F = np.zeros_like(K)
        Fd = np.zeros_like(K)
        for k in range(order - 1, -1, -1):  # Horner in rho, elementwise
            F = F * rho + np.outer(coef[:, k], coef[:, k])
            if derivative:
                Fd = Fd * rho + np.outer(dcoef[:, k], dcoef[:, k])
        direct = np.abs(rho) > 0.7
    iu = np.triu_indices(n)
    pick = direct[iu]
    ii, jj = iu[0][pick], iu[1][pick]
    if ii.size:
        vals, dvals = _nested_pairs(phi, shift, s[ii], s[jj], rho[ii, jj], max(nodes, 16))
        F[ii, jj] = F[jj, ii] = vals
        Fd[ii, jj] = Fd[jj, ii] = dvals
    return F, (Fd if derivative else None)


@dataclass
class InfiniteWidthKernels:
    """Exact infinite-width kernels: ``K``, ``G = F(K)``, ``Gdot``, ``ntk = K/(1 - sa^2 Gdot)``;
    ``iterations`` of the matrix fixed point and its final relative change."""

    K: np.ndarray
    G: np.ndarray
    Gdot: np.ndarray
    ntk: np.ndarray
    iterations: int
    change: float


def infinite_width_kernels(
    phi: Any,
    sigma_a: float,
    sigma_b: float,
    X: Any,
    shift: float | None = None,
    nodes: int = 16,
    tol: float = 1e-13,
    max_iter: int = 1000,
) -> InfiniteWidthKernels:
    """Solve ``K = sigma_a^2 F(K) + sigma_b^2 X X^T`` by fixed-point iteration (a contraction
    when the DEQ is well posed) for the centred ``phi`` (``shift``: its centring constant,
    default from ``implicit_scalars``), then ``G = F(K)``, ``Gdot`` and the NTK."""
    _check_sigmas(sigma_a, sigma_b)
    X = _as_numpy(X)
    f = as_phi(phi)
    gram = X @ X.T
    if shift is None:
        shift = implicit_scalars(f, sigma_a, sigma_b, float(np.diag(gram).mean())).shift
    K = gram.copy()
    change = math.inf
    k = 0
    while k < max_iter and change > tol:
        k += 1
        F, _ = _pair_expectations(f, shift, K, nodes, derivative=False)
        K_new = sigma_a**2 * F + sigma_b**2 * gram
        change = float(np.abs(K_new - K).max() / np.abs(K_new).max())
        K = K_new
    G, Gd = _pair_expectations(f, shift, K, nodes, derivative=True)
    assert Gd is not None
    return InfiniteWidthKernels(K, G, Gd, K / (1 - sigma_a**2 * Gd), k, change)


@dataclass
class MonteCarloCK:
    """``G = mean_r Z_r Z_r^T`` over ``realizations`` random DEQs of width ``width``, with the
    largest forward iteration count and whether every solve converged."""

    G: np.ndarray
    width: int
    realizations: int
    max_iterations: int
    all_converged: bool


def wide_deq_ck(
    phi: Any,
    sigma_a: float,
    sigma_b: float,
    X: Any,
    width: int,
    realizations: int = 1,
    shift: float | None = None,
    generator: torch.Generator | None = None,
    tol: float = 1e-10,
    batch_memory: int = 2**25,
) -> MonteCarloCK:
    """Monte Carlo CK of random DEQs ``z = m^{-1/2} phi_c(sigma_a A z + sigma_b B x)``, every
    row of ``X`` and every realisation solved by plain fixed-point iteration
    (``runtime.solvers.fixed_point``); realisations are batched (``bmm``) up to
    ``batch_memory`` weight entries at a time."""
    _check_sigmas(sigma_a, sigma_b)
    Xt = torch.as_tensor(_as_numpy(X))
    n, p = Xt.shape
    f = as_phi(phi)
    if shift is None:
        shift = implicit_scalars(f, sigma_a, sigma_b, float((Xt * Xt).sum(1).mean())).shift
    G = torch.zeros(n, n, dtype=torch.float64)
    cfg = SolverConfig(tol=tol, max_iter=500)
    max_it, ok = 0, True
    scale = 1 / math.sqrt(width)
    per_batch = max(1, min(realizations, batch_memory // (width * (width + p))))
    done = 0
    while done < realizations:
        r = min(per_batch, realizations - done)
        done += r
        At = sigma_a * torch.randn(r, width, width, generator=generator, dtype=torch.float64)
        B = torch.randn(r, width, p, generator=generator, dtype=torch.float64)
        inj = sigma_b * torch.matmul(Xt, B.transpose(1, 2))  # (r, n, m)

        def T(z: Tensor, inj: Tensor = inj, At: Tensor = At, r: int = r) -> Tensor:
            pre = torch.bmm(z.view(r, n, width), At.transpose(1, 2)) + inj
            return ((f.torch(pre) - shift) * scale).view(r * n, width)

        z, stats = fixed_point(T, torch.zeros(r * n, width, dtype=torch.float64), cfg)
        max_it = max(max_it, int(stats.iterations.max()))
        ok = ok and stats.all_converged
        z = z.view(r, n, width)
        G += torch.einsum("rim,rjm->ij", z, z)
    return MonteCarloCK((G / realizations).numpy(), width, realizations, max_it, ok)


# --------------------------------------------------------------------------------------------
# Explicit networks and the matching
# --------------------------------------------------------------------------------------------


def hermite_activation(coefficients: Sequence[float], scale: float) -> Phi:
    """``phi(t) = sum_k c_k He_k(t / scale)`` (probabilists' Hermite ``He_1 = u``,
    ``He_2 = u^2 - 1``, ``He_3 = u^3 - 3u``); centred at input scale ``scale``."""
    coef = np.concatenate([[0.0], np.asarray(coefficients, dtype=float)])
    dcoef = np.polynomial.hermite_e.hermeder(coef)

    def fn(t: np.ndarray) -> np.ndarray:
        return np.polynomial.hermite_e.hermeval(np.asarray(t) / scale, coef)

    def grad(t: np.ndarray) -> np.ndarray:
        return np.polynomial.hermite_e.hermeval(np.asarray(t) / scale, dcoef) / scale

    def tfn(t: Tensor) -> Tensor:
        u = t / scale
        he = [torch.ones_like(u), u]
        for k in range(2, len(coef)):
            he.append(u * he[-1] - (k - 1) * he[-2])
        return sum(c * h for c, h in zip(coef, he, strict=False))

    return Phi(f"hermite{tuple(round(c, 6) for c in coefficients)}", fn, grad, (), tfn)


def explicit_coefficients(
    layers: Sequence[Any], tau0_sq: float, nodes: int = 64
) -> tuple[tuple[float, float, float, float], list[float]]:
    """Equivalent-CK coefficients ``(c1, c2, c3, c0)`` of ``(X X^T, psi psi^T, Q, I)`` for the
    explicit network ``y_l = m^{-1/2} (phi_l - E phi_l)(W_l y_{l-1})`` (module docstring's layer
    map, with moments by quadrature), and the input scale of every layer."""
    c1, c2, c3, e = 1.0, 0.0, 0.0, 1.0
    s2 = tau0_sq
    scales = []
    for layer in layers:
        mo = gaussian_moments(as_phi(layer), math.sqrt(s2), nodes)
        scales.append(s2)
        d1, d2 = mo.e1**2, mo.e2**2
        c1, c2, c3, e = d1 * c1, d1 * c2 + d2 / 4 * e * e, d1 * c3 + d2 / 2 * c1 * c1, mo.d4 / 2 * e
        s2 = mo.var
    return (c1, c2, c3, s2 - tau0_sq * c1), scales


@dataclass
class ExplicitMatch:
    """A two-layer explicit network matched to target equivalent-CK coefficients.

    ``family`` is ``"leaky_relu"`` (layers ``max``-type piecewise linear with slopes
    ``parameters["layer1"] = (a1, b1)``, ``parameters["layer2"] = (a2, b2)``) or ``"hermite"``
    (``layer1 = a1 He1 + a2 He2`` and ``layer2 = b1 He1 + b2 He2 + b3 He3``, both at scale
    ``tau0``). ``achieved`` are the network's coefficients recomputed by quadrature
    (``explicit_coefficients``); ``residual`` their largest deviation from ``target``
    relative to the largest target coefficient; ``exact`` whether the equations were solved.
    """

    family: str
    target: tuple[float, float, float, float]
    layers: tuple[Phi, Phi]
    parameters: dict[str, tuple[float, ...]]
    achieved: tuple[float, float, float, float]
    residual: float
    exact: bool


def _target_coefficients(
    target: ImplicitKernels | ImplicitScalars | Sequence[float], tau0_sq: float | None, kernel: str
) -> tuple[tuple[float, float, float, float], float]:
    if isinstance(target, ImplicitKernels):
        target = target.scalars
    if isinstance(target, ImplicitScalars):
        tau0_sq = target.tau0_sq
        if kernel not in ("ck", "pre_activation"):
            raise ValueError(f"kernel must be 'ck' or 'pre_activation', got {kernel!r}")
        target = target.ck_coefficients() if kernel == "ck" else target.four
    if tau0_sq is None:
        raise ValueError("tau0_sq is required when target is a coefficient tuple")
    c1, c2, c3, c0 = (float(c) for c in target)
    if c1 <= 0:
        raise ValueError(f"c1 must be > 0 (got {c1}): the linear part cannot be matched")
    return (c1, c2, c3, c0), float(tau0_sq)


def _solve_leaky(c: tuple[float, float, float, float], t2: float) -> tuple[np.ndarray, bool]:
    """Slopes ``(a1, b1, a2, b2)`` of two centred piecewise-linear layers.

    With ``u = (a + b)/2``, ``v = (a - b)/2``, ``kappa = 1 - 2/pi`` a layer at input scale ``s``
    has ``d1 = u^2``, ``d2 = 2 v^2/(pi s^2)``, ``Var = s^2 (u^2 + kappa v^2)`` and
    ``d4/2 = Var/s^2``. Writing ``U_l = u_l^2``, ``V_l = v_l^2``, ``e = U1 + kappa V1``:

        c1 = U1 U2,   2 pi tau0^2 c2 = U2 V1 + V2 e,   pi tau0^2 c3 = U2 V1 + V2 U1^2 / e,
        (c0 + tau0^2 c1) / tau0^2 = e (U2 + kappa V2);

    ``U2`` and ``V2`` are eliminated by the first and last, the other two are solved for
    ``(U1, V1) >= 0`` by bounded least squares from several starts.
    """
    c1, c2, c3, c0 = c
    kappa = 1 - 2 / math.pi
    level = (c0 + t2 * c1) / t2
    scale = np.array([2 * math.pi * t2 * c2, math.pi * t2 * c3])
    weight = 1 / max(float(np.abs(scale).max()), 1e-12 * (abs(c1) + abs(c0)))

    def unpack(v: np.ndarray) -> tuple[float, float, float, float, float]:
        U1, V1 = float(v[0]), float(v[1])
        e = U1 + kappa * V1
        U2 = c1 / U1
        V2 = (level / e - U2) / kappa
        return U1, V1, U2, V2, e

    def eqs(v: np.ndarray) -> np.ndarray:
        U1, V1, U2, V2, e = unpack(v)
        return weight * (np.array([U2 * V1 + V2 * e, U2 * V1 + V2 * U1 * U1 / e]) - scale)

    best = None
    for U1_0 in (1.0, 0.3, 3.0):
        for V1_0 in (0.0, 0.1, 1.0):
            sol = optimize.least_squares(
                eqs, [U1_0, V1_0], bounds=([1e-9, 0.0], [np.inf, np.inf]), xtol=1e-15, ftol=1e-15
            )
            if unpack(sol.x)[3] < -1e-12:
                continue
            if best is None or sol.cost < best.cost:
                best = sol
    if best is None:
        return np.array([math.sqrt(c1), math.sqrt(c1), 1.0, 1.0]), False
    U1, V1, U2, V2, _ = unpack(best.x)
    u1, v1, u2, v2 = (math.sqrt(max(0.0, x)) for x in (U1, V1, U2, V2))
    exact = bool(np.abs(eqs(best.x)).max() < 1e-9)
    return np.array([u1 + v1, u1 - v1, u2 + v2, u2 - v2]), exact


def _solve_hermite(c: tuple[float, float, float, float], t2: float) -> tuple[np.ndarray, bool]:
    """Coefficients ``(a1, a2, b1, b2, b3)`` (``ExplicitMatch``). With ``A = a1^2/tau0^2``
    (``a1^2 + 2 a2^2 = tau0^2``: layer 1 keeps the scale, so ``d1 = A``,
    ``d2 = 2(1-A)/tau0^2``, ``d4/2 = 2 - A``), ``D1 = b1^2/tau0^2``, ``D2 = 4 b2^2/tau0^4``:

        c1 = D1 A,   c3 = D1 (1-A)/tau0^2 + D2 A^2 / 2,
        c2 = D1 (1-A)/(2 tau0^2) + D2 (2-A)^2 / 4,
        c0 + tau0^2 c1 = tau0^2 D1 + tau0^4 D2 / 2 + 6 b3^2;

    eliminating ``D1``, ``D2`` leaves one equation in ``A`` in ``(0, 1]``: sign scan + Brent.
    """
    c1, c2, c3, c0 = c
    level = c0 + t2 * c1

    def parts(A: float) -> tuple[float, float]:
        D1 = c1 / A
        return D1, 2 * (c3 - D1 * (1 - A) / t2) / A**2

    def residual(A: float) -> float:
        D1, D2 = parts(A)
        return D1 * (1 - A) / (2 * t2) + D2 * (2 - A) ** 2 / 4 - c2

    def b3_sq(A: float) -> float:
        D1, D2 = parts(A)
        return (level - t2 * D1 - t2 * t2 * D2 / 2) / 6

    roots = []
    if abs(residual(1.0)) <= 1e-12 * max(abs(c2), abs(c3), 1e-300) or (c2 == 0 and c3 == 0):
        roots.append(1.0)
    grid = np.linspace(1.0, 1e-3, 2000)
    vals = np.array([residual(A) for A in grid])
    for k in np.nonzero(np.sign(vals[:-1]) * np.sign(vals[1:]) < 0)[0]:
        roots.append(optimize.brentq(residual, grid[k + 1], grid[k], xtol=1e-15, rtol=1e-15))
    roots = [A for A in roots if parts(A)[1] >= -1e-14 and b3_sq(A) >= -1e-14 * abs(level)]
    A = max(roots) if roots else 1.0  # the most linear first layer
    D1, D2 = parts(A)
    return (
        np.array(
            [
                math.sqrt(A * t2),
                math.sqrt(max(0.0, (1 - A) * t2 / 2)),
                math.sqrt(D1 * t2),
                math.sqrt(max(0.0, D2) * t2 * t2 / 4),
                math.sqrt(max(0.0, b3_sq(A))),
            ]
        ),
        bool(roots),
    )


MATCH_FAMILIES = ("leaky_relu", "hermite")


def match_explicit(
    target: ImplicitKernels | ImplicitScalars | Sequence[float],
    tau0_sq: float | None = None,
    kernel: str = "ck",
    family: str = "auto",
) -> ExplicitMatch:
    """A two-layer explicit network ``y = m^{-1/2} phi_2(W_2 m^{-1/2} phi_1(W_1 x))`` (centred
    activations, ``N(0, 1)`` weights) whose equivalent kernel has the ``target`` coefficients
    ``(c1, c2, c3, c0)`` of ``(X X^T, psi psi^T, Q, I)``: by default the DEQ's ``G_bar``
    (``kernel="pre_activation"``: ``K_bar``), i.e. the four equations in the four scalars.

    ``family``: ``"leaky_relu"`` (Ling et al.'s choice; ``_solve_leaky``), ``"hermite"``
    (cubic Hermite polynomials; ``_solve_hermite``), or ``"auto"`` (leaky ReLU when it solves
    the equations exactly, else Hermite: e.g. for odd ``phi`` such as tanh, ``c2 = c3 = 0`` but
    ``c0 > 0``, which no piecewise-linear pair can produce).
    """
    c, t2 = _target_coefficients(target, tau0_sq, kernel)
    if family not in (*MATCH_FAMILIES, "auto"):
        raise ValueError(f"family must be one of {(*MATCH_FAMILIES, 'auto')}, got {family!r}")
    tau0 = math.sqrt(t2)
    exact = False
    if family in ("leaky_relu", "auto"):
        slopes, exact = _solve_leaky(c, t2)
        if exact or family == "leaky_relu":
            a1, b1, a2, b2 = (float(v) for v in slopes)
            layers = (piecewise_linear(a1, b1), piecewise_linear(a2, b2))
            params: dict[str, tuple[float, ...]] = {"layer1": (a1, b1), "layer2": (a2, b2)}
            family = "leaky_relu"
    if family in ("hermite", "auto"):
        coef, exact = _solve_hermite(c, t2)
        a1, a2, b1, b2, b3 = (float(v) for v in coef)
        layers = (hermite_activation((a1, a2), tau0), hermite_activation((b1, b2, b3), tau0))
        params = {"layer1": (a1, a2), "layer2": (b1, b2, b3)}
        family = "hermite"
    achieved, _ = explicit_coefficients(layers, t2)
    ref = np.array(c)
    dev = np.abs(np.array(achieved) - ref) / max(float(np.abs(ref).max()), 1e-300)
    return ExplicitMatch(family, c, layers, params, achieved, float(dev.max()), exact)


def explicit_infinite_width_ck(layers: Sequence[Any], X: Any, nodes: int = 16) -> np.ndarray:
    """Exact infinite-width CK ``Sigma_L`` of the explicit network: ``Sigma_0 = X X^T``,
    ``Sigma_l = F_l(Sigma_{l-1})`` with ``F_l`` the Gaussian expectation of the centred
    ``phi_l`` (centred at its input scale, as in ``explicit_coefficients``)."""
    X = _as_numpy(X)
    S = X @ X.T
    s2 = float(np.diag(S).mean())
    for layer in layers:
        f = as_phi(layer)
        mo = gaussian_moments(f, math.sqrt(s2), 64)
        S, _ = _pair_expectations(f, mo.mean, S, nodes, derivative=False)
        s2 = mo.var
    return S


def explicit_monte_carlo_ck(
    layers: Sequence[Any],
    X: Any,
    width: int,
    realizations: int = 1,
    generator: torch.Generator | None = None,
) -> np.ndarray:
    """Monte Carlo CK ``mean_r Y_L Y_L^T`` of the explicit network with ``N(0, 1)`` weights."""
    Xt = torch.as_tensor(_as_numpy(X))
    s2 = float((Xt * Xt).sum(1).mean())
    fs, shifts = [], []
    for layer in layers:
        f = as_phi(layer)
        mo = gaussian_moments(f, math.sqrt(s2), 64)
        fs.append(f)
        shifts.append(mo.mean)
        s2 = mo.var
    G = torch.zeros(Xt.shape[0], Xt.shape[0], dtype=torch.float64)
    for _ in range(realizations):
        y = Xt
        for f, c in zip(fs, shifts, strict=True):
            W = torch.randn(width, y.shape[1], generator=generator, dtype=torch.float64)
            y = (f.torch(y @ W.T) - c) / math.sqrt(width)
        G += y @ y.T
    return (G / realizations).numpy()


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def gaussian_mixture(
    p: int,
    n_per_class: Sequence[int],
    means: Sequence[np.ndarray],
    covariance_scales: Sequence[float],
    generator: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Rows ``x_i = (mu_a + omega_i)/sqrt(p)``, ``omega_i ~ N(0, c_a I_p)``; returns ``X``
    (``n x p``), labels and the population covariances ``c_a I_p``."""
    xs, ys, covs = [], [], []
    for a, (n_a, mu, c) in enumerate(zip(n_per_class, means, covariance_scales, strict=True)):
        omega = generator.standard_normal((n_a, p)) * math.sqrt(c)
        xs.append((np.asarray(mu)[None, :] + omega) / math.sqrt(p))
        ys.append(np.full(n_a, a))
        covs.append(c * np.eye(p))
    return np.concatenate(xs), np.concatenate(ys), covs


def relative_spectral_error(A: np.ndarray, B: np.ndarray) -> float:
    """``|A - B|_2 / |A|_2`` (spectral norms; symmetric matrices)."""
    return float(np.linalg.norm(A - B, 2) / np.linalg.norm(A, 2))


__all__ = [
    "MATCH_FAMILIES",
    "NAMED_PHI",
    "ExplicitMatch",
    "GaussianMoments",
    "ImplicitKernels",
    "ImplicitScalars",
    "InfiniteWidthKernels",
    "MonteCarloCK",
    "Phi",
    "WellPosednessError",
    "as_phi",
    "explicit_coefficients",
    "explicit_infinite_width_ck",
    "explicit_monte_carlo_ck",
    "gaussian_mixture",
    "gaussian_moments",
    "gaussian_rule",
    "hermite_activation",
    "hermite_rule",
    "implicit_kernels",
    "implicit_scalars",
    "infinite_width_kernels",
    "match_explicit",
    "piecewise_linear",
    "relative_spectral_error",
    "solve_tau",
    "squared_gram_blocks",
    "wide_deq_ck",
]
