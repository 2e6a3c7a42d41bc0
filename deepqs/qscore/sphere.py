"""Sample points of MapQ's Q-score: shell radii and Saff–Kuijlaars spiral points on the unit sphere.

MapQ (Pintilie et al., Nat Methods 2020) samples the map around an atom on shells of radius
0.1, 0.2, ..., 2.0 Å.  The radius is *accumulated* (``r += 0.1`` in floating point), so the third
shell is ``0.30000000000000004`` Å and the last ``2.0000000000000004`` Å; the rejection radius
``0.9 r`` and the reference Gaussian use these exact values.  On each shell, try ``i = 0..49``
places ``N = 8 + 2 i`` points with the Saff–Kuijlaars spiral:

    h_k = -1 + 2 (k - 1) / (N - 1),   phi_k = acos(h_k),
    theta_1 = theta_N = 0,  theta_k = (theta_{k-1} + 3.6 / sqrt(N (1 - h_k^2))) mod 2 pi,
    u_k = (sin phi_k cos theta_k, sin phi_k sin theta_k, cos phi_k),   k = 1..N.

The first point is the south pole (0, 0, -1) and the last the north pole (0, 0, 1).
"""

from __future__ import annotations

import math
from typing import List

import numpy as np

#: Points of the first try on a shell (MapQ's ``numPts``); also how often the centre value counts.
N_POINTS = 8
#: Tries per shell; try ``i`` places ``N_POINTS + 2 i`` points.
N_TRIES = 50
#: Shell spacing and outermost shell (Å), as MapQ's command line uses them.
SHELL_STEP = 0.1
SHELL_MAX = 2.0
#: A point is dropped when any atom lies strictly closer than this fraction of the shell radius.
REJECT_FRACTION = 0.9


def shell_radii(step: float = SHELL_STEP, max_radius: float = SHELL_MAX) -> List[float]:
    """Shell radii in Å, accumulated as MapQ does (``r = step; while r < max + 0.01: ...; r += step``)."""
    radii = []
    r = step
    while r < max_radius + 0.01:
        radii.append(r)
        r += step
    return radii


def spiral_points(n: int) -> np.ndarray:
    """``n`` Saff–Kuijlaars points on the unit sphere, shape (n, 3), float64, south pole first."""
    if n < 2:
        raise ValueError("the spiral needs at least 2 points")
    k = np.arange(1, n + 1, dtype=np.float64)
    h = -1.0 + 2.0 * (k - 1.0) / float(n - 1)
    phi = np.arccos(h)
    theta = np.zeros(n, dtype=np.float64)
    # theta is a running sum taken modulo 2 pi at every step (MapQ's recurrence); n <= 106,
    # so this short loop runs once per spiral size, never per atom.
    t = 0.0
    two_pi = 2.0 * math.pi
    for j in range(1, n - 1):
        t = (t + 3.6 / math.sqrt(n * (1.0 - h[j] * h[j]))) % two_pi
        theta[j] = t
    sin_phi = np.sin(phi)
    return np.stack([sin_phi * np.cos(theta), sin_phi * np.sin(theta), np.cos(phi)], axis=1)


def try_sizes(n_points: int = N_POINTS, n_tries: int = N_TRIES) -> List[int]:
    """Points placed by each try on a shell: ``n_points + 2 i`` for ``i = 0 .. n_tries - 1``."""
    return [n_points + 2 * i for i in range(n_tries)]


def spiral_table(n_points: int = N_POINTS, n_tries: int = N_TRIES) -> List[np.ndarray]:
    """The unit-sphere points of every try (computed once per call; 2,850 points for 8/50)."""
    return [spiral_points(n) for n in try_sizes(n_points, n_tries)]
