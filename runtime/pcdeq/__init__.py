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
(``deqfam.certificates.certify_map`` attaches the symbolic proof for ``sigma``). With Theorem 3's
sign ``W1 = -K/lam <= 0`` the certificate fails on ``nonnegative_weights``, as it must.

Modules: ``activations`` (``PositiveActivation`` and the named and family activations),
``model`` (the equilibrium and the ``PositiveConcaveDEQ`` layer), ``certificate`` (the
conditions and ``certify_map``/``certify``), ``iteration`` (the observed plain iteration).
"""

from .activations import (
    ADMISSIBLE_ACTIVATIONS,
    NAMED_ACTIVATIONS,
    PositiveActivation,
    activation_from_family,
    as_activation,
)
from .certificate import CertificationError, Condition, PCDEQCertificate, certify, certify_map
from .model import WEIGHT_PARAMETRISATIONS, PositiveConcaveDEQ, pcdeq_equilibrium, pcdeq_map

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
