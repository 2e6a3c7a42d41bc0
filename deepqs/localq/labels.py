"""Training labels from the exact Q-score engine.

Rule: a voxel whose centre lies within ``radius`` (default 1.5 Å) of an atom's centre carries the
Q-score (σ = 0.6 Å, :func:`deepqs.qscore.compute_qscores`) of the *nearest* such atom and loss
weight 1; every other voxel (solvent, and space between atoms farther than ``radius``) has
label 0 and weight 0, i.e. it is left out of the loss.  Atoms with a non-finite Q (hydrogens
without a parent) are ignored.  Nearest atoms are found with a ``scipy.spatial.cKDTree``.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy.spatial import cKDTree

from deepqs.io.mapdata import MapData

__all__ = ["LABEL_RADIUS_A", "label_map"]

#: Voxels within this distance (Å) of an atom are labelled.
LABEL_RADIUS_A = 1.5


def label_map(grid: MapData, xyz: np.ndarray, q: np.ndarray, radius: float = LABEL_RADIUS_A
              ) -> Tuple[np.ndarray, np.ndarray]:
    """``(labels, weights)`` float32 arrays on ``grid``'s [z, y, x] voxels (see the module doc).

    ``xyz`` (n, 3) atom centres in Å, ``q`` (n,) their Q-scores.
    """
    labels = np.zeros(grid.shape, dtype=np.float32)
    weights = np.zeros(grid.shape, dtype=np.float32)
    xyz = np.asarray(xyz, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    ok = np.isfinite(q) & np.all(np.isfinite(xyz), axis=1)
    xyz, q = xyz[ok], q[ok]
    if xyz.shape[0] == 0:
        return labels, weights
    lo = np.floor((xyz.min(axis=0) - radius - grid.origin) / grid.voxel_size).astype(np.int64)
    hi = np.ceil((xyz.max(axis=0) + radius - grid.origin) / grid.voxel_size).astype(np.int64)
    n = grid.grid_size
    lo = np.clip(lo, 0, n)
    hi = np.clip(hi + 1, 0, n)
    if np.any(hi <= lo):
        return labels, weights
    ix, iy, iz = (np.arange(lo[a], hi[a]) for a in range(3))
    gz, gy, gx = np.meshgrid(iz, iy, ix, indexing="ij")
    pts = np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1) * grid.voxel_size + grid.origin
    dist, idx = cKDTree(xyz).query(pts, k=1, distance_upper_bound=radius)
    hit = np.isfinite(dist)
    sub_l = np.zeros(pts.shape[0], dtype=np.float32)
    sub_w = np.zeros(pts.shape[0], dtype=np.float32)
    sub_l[hit] = q[idx[hit]]
    sub_w[hit] = 1.0
    shape = (len(iz), len(iy), len(ix))
    labels[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]] = sub_l.reshape(shape)
    weights[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]] = sub_w.reshape(shape)
    return labels, weights
