"""Input normalisation of a map for the local-Q network, invariant to the map's scale and offset.

Rule (applied to the map on the 1 Å grid):

1. ``centre`` = median of all voxels (the solvent level in a cryo-EM box, which is mostly solvent);
2. ``noise`` = 1.4826 × median absolute deviation from ``centre`` (the Gaussian σ of the solvent
   noise).  For masked/zoned maps more than half the voxels are constant and the MAD is 0: then
   ``noise`` is the standard deviation of the voxels that differ from ``centre``;
   a constant map gets ``noise`` = 1;
3. ``z = (value - centre) / noise`` (density in units of the solvent noise, ``σ``) is compressed
   with ``asinh(z / 4)`` (linear for |z| ≲ 4, logarithmic beyond: a soft clip that keeps strong
   densities of noise-free maps from dominating), then hard-clipped to ±``clip`` (default 6).

``a · map + b`` (a > 0) gives exactly the same network input as ``map``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NormalisationStats", "robust_stats", "normalise_map"]

#: z is divided by this before asinh (in solvent-noise σ).
ASINH_SCALE = 4.0


@dataclass
class NormalisationStats:
    """Statistics of the normalisation: ``centre`` and ``noise`` in the map's own units."""

    centre: float
    noise: float
    masked: bool


def robust_stats(data: np.ndarray) -> NormalisationStats:
    """Median and robust noise σ of ``data`` (see the module doc)."""
    flat = np.asarray(data, dtype=np.float32).ravel()
    centre = float(np.median(flat))
    dev = np.abs(flat - centre)
    mad = float(np.median(dev))
    scale = float(np.max(dev)) if dev.size else 0.0
    if mad > 1e-6 * scale and mad > 0:
        return NormalisationStats(centre, 1.4826 * mad, False)
    varying = flat[dev > 1e-6 * scale] if scale > 0 else flat[:0]
    if varying.size > 1:
        sd = float(np.sqrt(np.mean((varying - centre) ** 2)))
        if sd > 0:
            return NormalisationStats(centre, sd, True)
    return NormalisationStats(centre, 1.0, True)


def normalise_map(data: np.ndarray, clip: float = 6.0) -> np.ndarray:
    """Network input (float32, same shape) from map values ``data`` (see the module doc)."""
    st = robust_stats(data)
    z = (np.asarray(data, dtype=np.float32) - np.float32(st.centre)) / np.float32(st.noise)
    out = np.arcsinh(z / np.float32(ASINH_SCALE))
    return np.clip(out, -clip, clip).astype(np.float32)
