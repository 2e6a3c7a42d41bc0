"""Trilinear interpolation of a map at real-space points, in single precision as Chimera does it.

MapQ reads its map values through Chimera's ``interpolated_values``: the points are converted to
float32, mapped to fractional voxel indices with a float32 affine transform
``i = x * (1 / step) + (-origin / step)``, and blended with float32 trilinear weights.  Doing the
same arithmetic here reproduces MapQ's per-residue Q-scores to their 6 printed decimals (float64
arithmetic is off by up to ~6e-6).  Points outside the box (index < 0 or > n - 1 on any axis)
read 0; a point on the last grid plane uses the last cell.
"""

from __future__ import annotations

import numpy as np

from deepqs.io.mapdata import MapData

_F32 = np.float32


class Interpolator:
    """Interpolate one map at many points (Chimera's single-precision arithmetic)."""

    def __init__(self, mapdata: MapData):
        data = mapdata.data
        if data.ndim != 3:
            raise ValueError(f"expected a 3D map, got shape {data.shape}")
        self.flat = np.ascontiguousarray(data, dtype=_F32).reshape(-1)
        origin = np.asarray(mapdata.origin, dtype=np.float64)
        step = np.asarray(mapdata.voxel_size, dtype=np.float64)
        # The index transform, computed in double and stored in single precision (Chimera's
        # xyz_to_ijk transform handed to its C++ interpolation).
        self.scale = (1.0 / step).astype(_F32)
        self.offset = (-origin / step).astype(_F32)
        nz, ny, nx = data.shape
        self.size = np.array([nx, ny, nz], dtype=np.int64)
        self.upper = (self.size - 1).astype(_F32)
        self.itype = np.int32 if data.size < 2 ** 31 - 1 else np.int64
        self.last_cell = np.maximum(self.size - 2, 0).astype(self.itype)
        # Strides of x, y, z in the flattened [z, y, x] array (0 on a single-voxel axis).
        self.strides = np.where(self.size > 1, np.array([1, nx, nx * ny], dtype=np.int64), 0)

    def index(self, points: np.ndarray) -> np.ndarray:
        """Fractional voxel indices (float32, x, y, z) of real-space points (m, 3) in Å."""
        p = np.asarray(points).reshape(-1, 3).astype(_F32)
        p *= self.scale
        p += self.offset
        return p

    def inside(self, points: np.ndarray) -> np.ndarray:
        """True where a point lies in the box (fractional index within ``[0, n - 1]`` on all axes)."""
        x, y, z = self._columns(points)
        return self._inside(x, y, z)

    def _columns(self, points: np.ndarray):
        p = np.asarray(points).reshape(-1, 3)
        cols = []
        for a in range(3):
            c = p[:, a].astype(_F32)
            c *= self.scale[a]
            c += self.offset[a]
            cols.append(c)
        return cols

    def _inside(self, x, y, z) -> np.ndarray:
        ux, uy, uz = self.upper
        ok = x >= 0
        ok &= x <= ux
        ok &= y >= 0
        ok &= y <= uy
        ok &= z >= 0
        ok &= z <= uz
        return ok

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Map values (float32) at ``points`` (m, 3) in Å; 0 outside the box."""
        x, y, z = self._columns(points)
        m = x.shape[0]
        if m == 0:
            return np.zeros(0, dtype=_F32)
        ok = self._inside(x, y, z)
        if ok.all():
            return self._blend(x, y, z)
        out = np.zeros(m, dtype=_F32)
        sel = np.flatnonzero(ok)
        if sel.size:
            out[sel] = self._blend(x[sel], y[sel], z[sel])
        return out

    def _blend(self, x, y, z) -> np.ndarray:
        itype = self.itype
        ix = x.astype(itype)              # >= 0, so truncation is floor
        iy = y.astype(itype)
        iz = z.astype(itype)
        lx, ly, lz = self.last_cell
        np.minimum(ix, lx, out=ix)
        np.minimum(iy, ly, out=iy)
        np.minimum(iz, lz, out=iz)
        x1 = x - ix.astype(_F32)           # float32 weights of the upper corner
        y1 = y - iy.astype(_F32)
        z1 = z - iz.astype(_F32)
        x0 = _F32(1.0) - x1
        y0 = _F32(1.0) - y1
        z0 = _F32(1.0) - z1
        sx, sy, sz = (int(s) for s in self.strides)
        base = iy * itype(sy)
        base += ix
        base += iz * itype(sz)
        f = self.flat
        # Chimera's blend: sum over z, y, x corners of ((wx * wy) * wz) * value, in that order.
        wxy = ((x0 * y0, 0), (x1 * y0, sx), (x0 * y1, sy), (x1 * y1, sx + sy))
        v = None
        for wz, oz in ((z0, 0), (z1, sz)):
            for wxy_, oxy in wxy:
                w = wxy_ * wz
                w *= f.take(base + itype(oxy + oz))
                if v is None:
                    v = w
                else:
                    v += w
        return v
