"""Gaussian pair expectations ``F(K)_ij = E[phi_c(h_i) phi_c(h_j)]`` and
``E[phi'(h_i) phi'(h_j)]`` for ``h ~ N(0, K)``: closed forms for piecewise-linear ``phi``,
Mehler's expansion for smooth ones, nested piecewise Gauss-Legendre otherwise."""

from __future__ import annotations

import math

import numpy as np

from .activations import Phi
from .quadrature import gaussian_rule, piecewise_nodes


def nested_pairs(
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
        x1, w1 = piecewise_nodes(cut1, nodes)  # (P, Q)
        cut2 = (kinks[None, None, :] / b[..., None] - (r * x1)[..., None]) / c[..., None]
        cut2 = np.concatenate([cut2, np.broadcast_to(fixed, (*cut2.shape[:-1], 3))], -1)
        x2, w2 = piecewise_nodes(cut2, nodes)  # (P, Q, Q)
        u = a * x1
        v = b[..., None] * (r[..., None] * x1[..., None] + c[..., None] * x2)
        fu, fv = phi.fn(u) - shift, phi.fn(v) - shift
        vals[sl] = np.einsum("pq,pq,pqr,pqr->p", w1, fu, w2, fv)
        dvals[sl] = np.einsum("pq,pq,pqr,pqr->p", w1, phi.grad(u), w2, phi.grad(v))
    return vals, dvals


def pair_expectations(
    phi: Phi, shift: float, K: np.ndarray, nodes: int, derivative: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """``F(K)_ij = E[phi_c(h_i) phi_c(h_j)]`` and (optionally) ``E[phi'(h_i) phi'(h_j)]`` for
    ``h ~ N(0, K)``, ``phi_c = phi - shift``.

    * piecewise-linear ``phi`` (ReLU, leaky ReLU): closed forms (arc-cosine kernels);
    * smooth ``phi`` (no breakpoints): Mehler's expansion
      ``E[f(xi) g(eta)] = sum_k rho^k E[f He_k] E[g He_k] / k!`` (``k < 90``) for
      ``|rho| <= 0.7`` (truncation ``< 0.7^90``), with the 1-D coefficients by the piecewise
      rule; pairs with larger ``|rho|`` (and the diagonal) by nested piecewise Gauss-Legendre;
    * other ``phi``: nested piecewise Gauss-Legendre (``nested_pairs``) for every pair.
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
        vals, dvals = nested_pairs(phi, shift, s[ii], s[jj], rho[ii, jj], max(nodes, 16))
        F[ii, jj] = F[jj, ii] = vals
        Fd[ii, jj] = Fd[jj, ii] = dvals
    return F, (Fd if derivative else None)
