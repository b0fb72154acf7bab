"""Contraction certificate for the plain DEQ map (10)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ContractionCertificate:
    """Global convergence facts for the DEQ map (10) ``f(z) = (1/lam) W^T (T - sigma(Wz+B))``.

    Its Jacobian ``-(1/lam) W^T diag(sigma') W`` is symmetric with eigenvalues in
    ``[-L/lam, 0]``, ``L = |W|_2^2 sup sigma'``. Hence (mean value theorem, symmetric Jacobians)

    * plain iteration ``z <- f(z)`` is a global contraction with factor ``ratio = L/lam`` when
      ``ratio < 1`` (for the Gaussian, ``sigma' = 1``, the bound is attained, so ``ratio > 1``
      gives divergence along the top singular vector);
    * damped iteration ``z <- (1 - beta) z + beta f(z) = z - (beta/lam) grad J(z)`` is gradient
      descent on ``J`` with step ``alpha = beta/lam``; its Jacobian ``I - alpha H`` has
      eigenvalues in ``[1 - alpha (lam + L), 1 - alpha lam]``, so the factor
      ``max(|1 - alpha lam|, |1 - alpha (lam + L)|)`` is minimised by
      ``alpha* = 2/(2 lam + L)``, i.e. ``beta* = 2 lam/(2 lam + L)``, with factor
      ``L/(2 lam + L) < 1``: always a contraction when ``L`` is finite.

    Attributes:
        spectral_norm_sq: ``|W|_2^2``.
        lipschitz: ``L = |W|_2^2 sup sigma'`` (``inf`` when ``sup sigma'`` is unbounded/unknown).
        ratio: ``L / lam``, the contraction factor bound of the plain map.
        plain_contracts: ``ratio < 1``.
        optimal_step: ``alpha* = 2/(2 lam + L)`` (0 when ``L`` is infinite).
        optimal_damping: ``beta* = lam alpha*`` (the ``damping`` option for ``fixed_point``).
        damped_rate: ``L/(2 lam + L)`` (1 when ``L`` is infinite: no certificate).
    """

    spectral_norm_sq: float
    lipschitz: float
    ratio: float
    plain_contracts: bool
    optimal_step: float
    optimal_damping: float
    damped_rate: float


def contraction_certificate(
    W: Tensor, lam: float, sup_sigma_prime: float | None
) -> ContractionCertificate:
    """Compute the ``ContractionCertificate`` for weights ``W`` (``d x l``), ``lam`` and
    ``sup sigma'`` (``None`` = unknown, treated as unbounded)."""
    if lam <= 0:
        raise ValueError(f"lam must be > 0, got {lam!r}")
    norm_sq = float(torch.linalg.matrix_norm(W.detach().double(), ord=2)) ** 2
    sup = math.inf if sup_sigma_prime is None else float(sup_sigma_prime)
    lip = norm_sq * sup if norm_sq > 0 else 0.0
    if math.isinf(lip):
        return ContractionCertificate(norm_sq, lip, math.inf, False, 0.0, 0.0, 1.0)
    step = 2.0 / (2.0 * lam + lip)
    return ContractionCertificate(
        spectral_norm_sq=norm_sq,
        lipschitz=lip,
        ratio=lip / lam,
        plain_contracts=lip < lam,
        optimal_step=step,
        optimal_damping=lam * step,
        damped_rate=lip / (2.0 * lam + lip),
    )
