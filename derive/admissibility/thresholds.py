"""Numerical thresholds of the admissibility check (one place, so a reader sees them all)."""

from __future__ import annotations

#: A numerical negative mass must exceed this multiple of its error floor to reject.
REJECT_FACTOR = 1e6
#: ... and stay below this multiple of the floor to count as "no negative mass".
ACCEPT_FACTOR = 100.0
#: Smallest negativity (relative to the peak mass/density) that may reject numerically.
RESOLUTION = 1e-12
#: Largest error floor (relative to the peak) at which "no negative mass" still counts.
MAX_FLOOR = 1e-10
#: Digits for the real-only mpmath stages.
MP_DPS = 60
#: Order of the power series of exp(A) in x = e^eta.
SERIES_ORDER = 40
#: Gaussian damping width, in units of the tilted standard deviation sqrt(A''(theta0)).
DAMPING = 0.1
#: Half-width of the window in y for continuous inversion, in tilted standard deviations.
WINDOW_SD = 32.0
#: Largest lattice DFT size.
MAX_DFT = 2**15
