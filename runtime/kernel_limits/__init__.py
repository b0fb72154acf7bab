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

Modules: ``activations`` (``Phi`` and the named activations), ``quadrature`` (Gaussian rules
and moments), ``scalars`` (the scalar system), ``equivalents`` (``K_bar``, ``G_bar``,
``Theta_bar``), ``pairs`` (``F(K)`` and ``Gdot``), ``infinite_width`` (exact infinite-width
kernels), ``monte_carlo`` (finite-width random networks), ``explicit`` (the matched explicit
networks), ``data`` (Gaussian mixtures, spectral error).
"""

from .activations import NAMED_PHI, Phi, as_phi, hermite_activation, piecewise_linear
from .data import gaussian_mixture, relative_spectral_error
from .equivalents import ImplicitKernels, implicit_kernels, squared_gram_blocks
from .explicit import MATCH_FAMILIES, ExplicitMatch, explicit_coefficients, match_explicit
from .infinite_width import (
    InfiniteWidthKernels,
    explicit_infinite_width_ck,
    infinite_width_kernels,
)
from .monte_carlo import MonteCarloCK, explicit_monte_carlo_ck, wide_deq_ck
from .quadrature import GaussianMoments, gaussian_moments, gaussian_rule, hermite_rule
from .scalars import ImplicitScalars, WellPosednessError, implicit_scalars, solve_tau

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
