"""Resampling between a map's own grid and the network's 1 Å/voxel grid.

* :func:`resample_to_spacing` puts a map on a grid of ``spacing`` Å/voxel (default 1 Å) covering the
  same box: same origin (position of voxel [0, 0, 0], Å), ``ceil((n - 1) · v / spacing) + 1``
  voxels per axis.  When the map is finer than the target along an axis it is first low-passed
  (after mirror padding, so opposite faces do not mix) in Fourier space (a cosine edge from 0.8 to 1.0 × the target Nyquist frequency ``1 / (2 · spacing)``
  1/Å), so no aliasing enters the coarser grid.  Values are then read by trilinear interpolation.
* :func:`resample_onto` reads a map (e.g. the network's output on the 1 Å grid) at the voxel
  centres of another grid (the input map's), by trilinear interpolation; points outside the
  source box take the nearest edge value.  Non-cubic voxels and any origin are handled per axis.

Interpolation is separable (one axis at a time), so memory stays proportional to the maps, never
to (points × 3) coordinate arrays.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from deepqs.io.mapdata import MapData, as_triple

__all__ = ["resample_to_spacing", "resample_onto", "lowpass", "interp_axis"]


def lowpass(data: np.ndarray, voxel_size_xyz: Sequence[float], cutoff_A: float, edge: float = 0.2) -> np.ndarray:
    """Low-pass ``data`` ([z, y, x]) in Fourier space at resolution ``cutoff_A`` (Å).

    Frequencies up to ``(1 - edge) / cutoff_A`` pass, those beyond ``1 / cutoff_A`` are removed,
    with a raised-cosine edge in between.  Voxel sizes are per axis (x, y, z) in Å.
    """
    vx, vy, vz = (float(v) for v in voxel_size_xyz)
    nz, ny, nx = data.shape
    kz = np.fft.fftfreq(nz, d=vz)[:, None, None]
    ky = np.fft.fftfreq(ny, d=vy)[None, :, None]
    kx = np.fft.rfftfreq(nx, d=vx)[None, None, :]
    k = np.sqrt(kz ** 2 + ky ** 2 + kx ** 2)
    k_hi = 1.0 / cutoff_A
    k_lo = (1.0 - edge) * k_hi
    t = np.clip((k - k_lo) / max(k_hi - k_lo, 1e-12), 0.0, 1.0)
    filt = 0.5 * (1.0 + np.cos(np.pi * t))
    ft = np.fft.rfftn(np.asarray(data, dtype=np.float64))
    ft *= filt
    return np.fft.irfftn(ft, s=data.shape).astype(np.float32)


def interp_axis(arr: np.ndarray, axis: int, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``arr`` along ``axis`` at fractional indices ``pos`` (clamped to the edges)."""
    n = arr.shape[axis]
    pos = np.clip(np.asarray(pos, dtype=np.float64), 0.0, n - 1)
    i0 = np.floor(pos).astype(np.int64)
    i0 = np.minimum(i0, max(n - 2, 0))
    i1 = np.minimum(i0 + 1, n - 1)
    w = (pos - i0).astype(np.float32)
    shape = [1] * arr.ndim
    shape[axis] = -1
    w = w.reshape(shape)
    a0 = np.take(arr, i0, axis=axis)
    a1 = np.take(arr, i1, axis=axis)
    return a0 * (1.0 - w) + a1 * w


def _interp_grid(data: np.ndarray, pos_z: np.ndarray, pos_y: np.ndarray, pos_x: np.ndarray) -> np.ndarray:
    out = interp_axis(np.asarray(data, dtype=np.float32), 0, pos_z)
    out = interp_axis(out, 1, pos_y)
    out = interp_axis(out, 2, pos_x)
    return np.ascontiguousarray(out, dtype=np.float32)


def resample_to_spacing(mapdata: MapData, spacing: Union[float, Sequence[float]] = 1.0) -> MapData:
    """``mapdata`` on a grid of ``spacing`` Å/voxel (same origin, same extent); see module doc."""
    target = as_triple(spacing, "spacing")
    vs = mapdata.voxel_size
    n_xyz = mapdata.grid_size
    if np.allclose(vs, target, rtol=1e-6, atol=0):
        return MapData(np.asarray(mapdata.data, dtype=np.float32).copy(), target, mapdata.origin.copy(), mapdata.path)
    data = np.asarray(mapdata.data, dtype=np.float32)
    if np.any(vs < target * (1 - 1e-6)):
        # mirror-pad by two cut-off lengths so that the periodic FFT does not mix opposite faces
        cutoff = 2.0 * float(target.max())
        pad = [int(min(np.ceil(2.0 * cutoff / v), n - 1)) for v, n in zip(vs[::-1], data.shape)]
        padded = np.pad(data, [(p, p) for p in pad], mode="reflect")
        data = lowpass(padded, vs, cutoff)[pad[0]:pad[0] + data.shape[0], pad[1]:pad[1] + data.shape[1],
                                          pad[2]:pad[2] + data.shape[2]]
    new_n = np.ceil((n_xyz - 1) * vs / target - 1e-6).astype(np.int64) + 1
    pos = [np.arange(new_n[a]) * target[a] / vs[a] for a in range(3)]       # x, y, z
    out = _interp_grid(data, pos[2], pos[1], pos[0])
    return MapData(out, target, mapdata.origin.copy(), mapdata.path)


def resample_onto(source: MapData, target: MapData) -> MapData:
    """Read ``source`` at the voxel centres of ``target``'s grid (trilinear); a map on ``target``'s grid."""
    pos = []
    for a in range(3):
        centres = target.origin[a] + np.arange(target.grid_size[a]) * target.voxel_size[a]
        pos.append((centres - source.origin[a]) / source.voxel_size[a])
    out = _interp_grid(source.data, pos[2], pos[1], pos[0])
    return MapData(out, target.voxel_size.copy(), target.origin.copy(), None)
