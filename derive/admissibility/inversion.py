"""Fourier inversion of ``phi(r) = exp(A(theta0 + i r) - A(theta0))`` at one tilt.

Two routes to the tilted law ``mu_theta0``: on an integer lattice, the DFT over one period of
the 2 pi-periodic ``phi`` (:func:`lattice_phi`); otherwise Gaussian-damped trapezoidal
inversion (:func:`continuous_phi`). Both measure their own error floors (aliasing from
doubling N or the window) and return typed results; a ``phi`` that overflows comes back as a
bare :class:`PhiPath` with ``overflow=True`` (the bound stage reports it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .path import PathEvaluator, TooCoarse
from .thresholds import DAMPING, MAX_DFT, WINDOW_SD


@dataclass(frozen=True, kw_only=True)
class PhiPath:
    """``A(theta0 + i r)`` on the points ``r`` (``A0`` its real value at r = 0), ``phi`` and
    the log branches taken; ``overflow`` when ``phi`` is not finite on the path."""

    r: np.ndarray
    Az: np.ndarray
    A0: float
    phi: np.ndarray
    branches: dict
    overflow: bool = False


@dataclass(frozen=True, kw_only=True)
class LatticePhi(PhiPath):
    """DFT masses ``p`` (index n mod N) with the alias difference between N/2 and N points,
    the periodicity error ``max |phi(r + 2 pi) - phi(r)|`` and the largest log step."""

    p: np.ndarray
    N: int
    alias: float
    periodicity_error: float
    max_log_step: float


@dataclass(frozen=True, kw_only=True)
class ContinuousPhi(PhiPath):
    """Damped density ``f`` on ``y`` (spacing ``dy``), damping ``s``, cutoff ``R``, step
    ``dr``, period ``L`` in y, the roundoff bound and the wrap-around (alias) difference."""

    f: np.ndarray
    y: np.ndarray
    dy: float
    s: float
    R: float
    dr: float
    L: float
    roundoff: float
    alias: float = math.nan


def lattice_phi(ev: PathEvaluator, theta0: float) -> LatticePhi | PhiPath | None:
    """DFT masses of the tilted law on the integers, doubling N until the alias difference
    between N and 2N points is below 1e-15 (or N = MAX_DFT). None if phi is not 2 pi-periodic.

    p_n = (1/N) sum_k phi(2 pi k/N) e^{-2 pi i n k/N} = sum_m P(Y = n + m N) (aliasing).
    """
    prev = None
    N = 64
    res: LatticePhi | None = None
    coarse: TooCoarse | None = None
    while N <= MAX_DFT:
        extra = N // 8
        r = 2 * math.pi * np.arange(N + extra + 1) / N
        try:
            Az = ev.path(theta0, r)
        except TooCoarse as exc:
            coarse = exc
            N *= 2
            continue
        A0 = Az[0].real
        with np.errstate(over="ignore", invalid="ignore"):
            phi = np.exp(Az - A0)
        if not np.all(np.isfinite(phi)):
            return PhiPath(r=r, Az=Az, A0=A0, phi=phi, branches=dict(ev.branches), overflow=True)
        per_err = float(np.max(np.abs(phi[N : N + extra + 1] - phi[: extra + 1])))
        if per_err > 1e-8:
            return None
        p = np.fft.fft(phi[:N]) / N
        alias = math.inf
        if prev is not None:
            Np = prev.size
            idx = np.arange(-Np // 2, Np // 2)
            alias = float(np.max(np.abs(p[idx % N] - prev[idx % Np])))
            alias = max(alias, float(np.max(np.abs(p[np.arange(Np // 2, N - Np // 2)]))))
        res = LatticePhi(
            r=r,
            Az=Az,
            A0=A0,
            phi=phi,
            branches=dict(ev.branches),
            p=p,
            N=N,
            alias=alias,
            periodicity_error=per_err,
            max_log_step=ev.max_step,
        )
        if alias < 1e-15:
            break
        prev = p
        N *= 2
    if res is None and coarse is not None:
        raise coarse
    return res


def _path_step(ev: PathEvaluator, theta0: float, dr: float, M: int) -> tuple[float, int]:
    """Halve dr (doubling M) until every continued log moves by < 1 rad per step."""
    while True:
        try:
            ev.path(theta0, dr * np.arange(M + 1))
            return dr, M
        except TooCoarse:
            dr, M = dr / 2, 2 * M
            if M > 2**22:
                raise


def continuous_phi(
    ev: PathEvaluator, theta0: float, mean: float, sd: float
) -> ContinuousPhi | PhiPath:
    """Density of mu_theta0 * N(0, s^2), s = DAMPING sd, by trapezoidal Fourier inversion of
    phi(r) e^{-s^2 r^2/2} on |r| <= R (damping < 1e-18 beyond), window +-WINDOW_SD sd;
    repeated with the window doubled to bound the wrap-around (aliasing) error.

    f_s(y) = (1/2 pi) int phi(r) e^{-s^2 r^2/2} e^{-i r y} dr >= 0 whenever phi is a
    characteristic function, so the damping cannot create negative mass.
    """
    s = DAMPING * sd
    R = math.sqrt(2 * math.log(1e18)) / s
    L = 2 * WINDOW_SD * sd + 20 * s
    dr = 2 * math.pi / L
    dr, M = _path_step(ev, theta0, dr, math.ceil(R / dr))
    nfft = 1 << math.ceil(math.log2(2 * M + 1))
    prev: ContinuousPhi | None = None
    level = 1
    while True:  # double the window (same dy, twice the y range) until wrap-around is negligible
        dr_l, M_l, n_l = dr / level, M * level, nfft * level
        r = dr_l * np.arange(M_l + 1)
        Az = ev.path(theta0, r)
        A0 = Az[0].real
        with np.errstate(over="ignore", invalid="ignore"):
            phi = np.exp(Az - A0)
            damped = phi * np.exp(-0.5 * (s * r) ** 2)
        if not np.all(np.isfinite(damped)):
            return PhiPath(r=r, Az=Az, A0=A0, phi=phi, branches=dict(ev.branches), overflow=True)
        g = np.zeros(n_l, dtype=complex)
        g[: M_l + 1] = damped * np.exp(-1j * r * mean)
        g[n_l - M_l :] = np.conj(g[M_l:0:-1])
        f = np.fft.fftshift(np.fft.fft(g)) * dr_l / (2 * math.pi)
        dy = 2 * math.pi / (n_l * dr_l)
        alias = math.nan
        if prev is not None:
            # the previous y grid is the middle half of this one: the difference is the
            # wrap-around (aliasing) error of the previous window
            half = prev.f.size
            mid = f[half // 2 : half // 2 + half]
            alias = float(np.max(np.abs(prev.f.real - mid.real)))
        cur = ContinuousPhi(
            r=r,
            Az=Az,
            A0=A0,
            phi=phi,
            branches=dict(ev.branches),
            f=f,
            y=mean + dy * np.arange(-n_l // 2, n_l // 2),
            dy=dy,
            s=s,
            R=R,
            dr=dr_l,
            L=2 * math.pi / dr_l,
            roundoff=float(np.sum(np.abs(damped)) * dr_l / (2 * math.pi) * 1e-15),
            alias=alias,
        )
        if prev is not None:
            peak = float(np.max(f.real))
            if alias < 1e-14 * max(peak, 1e-300) or level >= 32:
                return cur
        prev = cur
        level *= 2
