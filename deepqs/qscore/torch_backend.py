"""The Q-score algorithm of :mod:`deepqs.qscore.core` in torch, for a CUDA GPU (``device="cuda"``).

Same rule, same arithmetic where it matters:

* neighbour lists from the same KD-tree query (on the CPU);
* the rejection margins ``u . d - threshold`` in float32 with element-wise products (never a
  matmul, so TF32 cannot enter), reduced per atom with ``scatter_reduce(amax)``; points within
  the band are decided again in float64 with MapQ's float32-search-tree rule;
* the map values with Chimera's single-precision trilinear blend, in the same order of
  operations as :class:`~deepqs.qscore.interp.Interpolator`;
* the correlation from float64 running sums, as :func:`~deepqs.qscore.core._correlation`.

On the CPU this path agrees with the numpy one (the tests run it there); on a GPU it trades the
numpy path's careful memory layout for plain scatter operations.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

from deepqs.io.mapdata import MapData
from deepqs.qscore.core import FLAT_ULPS, FLOAT32_EPS, QScorer, REJECT_FRACTION, _spatial_order

#: Atoms per chunk on the device.
TORCH_CHUNK = 65536


def score_torch(mapdata: MapData, xyz: np.ndarray, sigma: float = 0.6, device: str = "cuda",
                progress: Optional[Callable[[int], None]] = None, chunk: int = TORCH_CHUNK) -> np.ndarray:
    """Q-scores of the atoms ``xyz`` (all of them reject points), computed with torch on ``device``."""
    import torch

    dev = torch.device(device)
    xyz = np.ascontiguousarray(xyz, dtype=np.float64).reshape(-1, 3)
    n = xyz.shape[0]
    q = np.zeros(n)
    if n == 0:
        return q
    scorer = QScorer(None, xyz, sigma=sigma)
    ctx = _DeviceMap(mapdata, dev)
    reject64 = torch.as_tensor(scorer.reject_xyz, device=dev)
    reject32 = torch.as_tensor(scorer.reject_xyz32, device=dev)
    units = [torch.as_tensor(u, device=dev) for u in scorer.units]
    order = _spatial_order(xyz)
    for s0 in range(0, n, chunk):
        sel = order[s0:s0 + chunk]
        centres_np = xyz[sel]
        p_atom, p_nb, p_diff, p_d2 = scorer.pairs(centres_np, workers=-1)
        centres = torch.as_tensor(centres_np, device=dev)
        pairs = (torch.as_tensor(p_atom, device=dev), torch.as_tensor(p_nb.astype(np.int64), device=dev),
                 torch.as_tensor(p_diff, device=dev), torch.as_tensor(p_d2, device=dev))
        q[sel] = _score_chunk(scorer, ctx, centres, pairs, reject64, reject32, units).cpu().numpy()
        if progress is not None:
            progress(len(sel))
    return q


class _DeviceMap:
    """The map on the device, interpolated like :class:`~deepqs.qscore.interp.Interpolator`."""

    def __init__(self, mapdata: MapData, dev):
        import torch
        data = np.ascontiguousarray(mapdata.data, dtype=np.float32)
        nz, ny, nx = data.shape
        self.torch = torch
        self.flat = torch.as_tensor(data.reshape(-1), device=dev)
        origin = np.asarray(mapdata.origin, dtype=np.float64)
        step = np.asarray(mapdata.voxel_size, dtype=np.float64)
        self.scale = [float(v) for v in (1.0 / step).astype(np.float32)]
        self.offset = [float(v) for v in (-origin / step).astype(np.float32)]
        size = np.array([nx, ny, nz])
        self.upper = [float(v) for v in (size - 1).astype(np.float32)]
        self.last = [int(v) for v in np.maximum(size - 2, 0)]
        self.strides = [s if n > 1 else 0 for s, n in zip((1, nx, nx * ny), size)]

    def __call__(self, points):
        torch = self.torch
        f32 = torch.float32
        cols = []
        for a in range(3):
            c = points[:, a].to(f32)
            c = c * torch.tensor(self.scale[a], dtype=f32, device=c.device)
            c = c + torch.tensor(self.offset[a], dtype=f32, device=c.device)
            cols.append(c)
        x, y, z = cols
        ok = (x >= 0) & (x <= self.upper[0]) & (y >= 0) & (y <= self.upper[1]) & (z >= 0) & (z <= self.upper[2])
        out = torch.zeros(points.shape[0], dtype=f32, device=points.device)
        if not bool(ok.any()):
            return out
        x, y, z = x[ok], y[ok], z[ok]
        ix = torch.clamp(x.to(torch.int64), max=self.last[0])
        iy = torch.clamp(y.to(torch.int64), max=self.last[1])
        iz = torch.clamp(z.to(torch.int64), max=self.last[2])
        x1, y1, z1 = x - ix.to(f32), y - iy.to(f32), z - iz.to(f32)
        x0, y0, z0 = 1.0 - x1, 1.0 - y1, 1.0 - z1
        sx, sy, sz = self.strides
        base = iy * sy + ix + iz * sz
        wxy = ((x0 * y0, 0), (x1 * y0, sx), (x0 * y1, sy), (x1 * y1, sx + sy))
        v = None
        for wz, oz in ((z0, 0), (z1, sz)):
            for w_xy, oxy in wxy:
                w = w_xy * wz
                w = w * self.flat[base + (oxy + oz)]
                v = w if v is None else v + w
        out[ok] = v
        return out


def _score_chunk(scorer, ctx, centres, pairs, reject64, reject32, units):
    import torch
    f64 = torch.float64
    b = centres.shape[0]
    dev = centres.device
    centre_val = ctx(centres).to(f64)
    s_n = torch.zeros(b, dtype=f64, device=dev)
    s_v = torch.zeros_like(s_n)
    s_vv = torch.zeros_like(s_n)
    s_vg = torch.zeros_like(s_n)
    s_g = torch.zeros_like(s_n)
    s_gg = torch.zeros_like(s_n)
    for r, g in zip(scorer.radii, scorer.gauss):
        ids, pts = _shell_points(scorer, centres, pairs, reject64, reject32, units, r)
        if ids.numel() == 0:
            continue
        v = ctx(pts).to(f64) - centre_val[ids]
        cnt = torch.zeros(b, dtype=f64, device=dev).index_add_(0, ids, torch.ones_like(v))
        sv = torch.zeros(b, dtype=f64, device=dev).index_add_(0, ids, v)
        s_n += cnt
        s_v += sv
        s_vv += torch.zeros(b, dtype=f64, device=dev).index_add_(0, ids, v * v)
        s_vg += g * sv
        s_g += g * cnt
        s_gg += (g * g) * cnt
    n0 = float(scorer.n_points)
    n = n0 + s_n
    s_g = s_g + n0
    s_gg = s_gg + n0
    cov = s_vg - s_v * s_g / n
    var_v = s_vv - s_v * s_v / n
    var_g = s_gg - s_g * s_g / n
    scale = centre_val.abs() + torch.sqrt(torch.clamp(s_vv, min=0.0) / n)
    var_v = torch.where(var_v <= n * (FLAT_ULPS * FLOAT32_EPS * scale) ** 2, torch.zeros_like(var_v), var_v)
    den = var_v * var_g
    ok = (var_v > 0) & (var_g > 0) & (den > 0)
    q = torch.zeros_like(n)
    q[ok] = cov[ok] / torch.sqrt(den[ok])
    return torch.clamp(q, -1.0, 1.0)


def _shell_points(scorer, centres, pairs, reject64, reject32, units, r):
    """Atom rows and positions of the kept points of shell ``r`` (see QScorer._shell_points)."""
    import torch
    dev = centres.device
    b = centres.shape[0]
    p_atom, p_nb, p_diff, p_d2 = pairs
    reach2 = ((1.0 + REJECT_FRACTION) * r) ** 2
    inner2 = ((1.0 - REJECT_FRACTION) * r) ** 2
    sel = (p_d2 < reach2 * (1.0 + 1e-9) + 1e-12) & (p_d2 > inner2 * (1.0 - 1e-9))
    atom = p_atom[sel]
    nb = p_nb[sel]
    counts = torch.bincount(atom, minlength=b)
    ids, pts = [], []
    free = torch.nonzero(counts == 0).flatten()
    u0 = units[0]
    if free.numel():
        ids.append(free.repeat_interleave(u0.shape[0]))
        pts.append((centres[free][:, None, :] + u0[None] * r).reshape(-1, 3))
    active = torch.nonzero(counts > 0).flatten()
    if active.numel():
        pos_of = torch.full((b,), -1, dtype=torch.int64, device=dev)
        pos_of[active] = torch.arange(active.numel(), device=dev)
        row_pos = pos_of[atom]                                  # pairs stay grouped by atom
        d = p_diff[sel].to(torch.float32)
        thr = (-(p_d2[sel] + (1.0 - REJECT_FRACTION ** 2) * r * r) / (2.0 * r)).to(torch.float32)
        for u in units:
            na = active.numel()
            if na == 0:
                break
            npts = u.shape[0]
            u32 = u.to(torch.float32)
            m_pair = d[:, 0:1] * u32[:, 0]
            m_pair = m_pair + d[:, 1:2] * u32[:, 1]
            m_pair = m_pair + d[:, 2:3] * u32[:, 2]
            m_pair = m_pair + thr[:, None]
            margin = torch.full((na, npts), -math.inf, dtype=torch.float32, device=dev)
            margin.scatter_reduce_(0, row_pos[:, None].expand(-1, npts), m_pair, reduce="amax")
            rejected = margin > scorer.band
            near = (margin >= -scorer.band) & ~rejected
            if bool(near.any()):
                ai, ci = torch.nonzero(near, as_tuple=True)
                rejected[ai, ci] = _exact_ties(centres[active[ai]], u[ci], r, ai, row_pos, nb,
                                               reject64, reject32)
            kept = ~rejected
            done = kept.sum(dim=1) >= scorer.n_points
            if bool(done.any()):
                di, ci = torch.nonzero(kept[done], as_tuple=True)
                atoms = active[done][di]
                ids.append(atoms)
                pts.append(centres[atoms] + u[ci] * r)
                keep = ~done
                keep_rows = keep[row_pos]
                new_pos = torch.cumsum(keep.to(torch.int64), 0) - 1
                d, thr, nb = d[keep_rows], thr[keep_rows], nb[keep_rows]
                row_pos = new_pos[row_pos[keep_rows]]
                active = active[keep]
    if not ids:
        return torch.zeros(0, dtype=torch.int64, device=dev), torch.zeros((0, 3), dtype=torch.float64, device=dev)
    return torch.cat(ids), torch.cat(pts)


def _exact_ties(c, u, r, pos, row_pos, nb, reject64, reject32):
    """MapQ's float32-search-tree rule for near-boundary points (see QScorer._exact_ties)."""
    import torch
    # the pair rows of each point's atom (rows stay grouped by atom, in ascending order)
    starts = torch.searchsorted(row_pos, pos)
    ends = torch.searchsorted(row_pos, pos, right=True)
    cnt = ends - starts
    item = torch.repeat_interleave(torch.arange(pos.numel(), device=pos.device), cnt)
    first = torch.repeat_interleave(starts - (torch.cumsum(cnt, 0) - cnt), cnt)
    rows = first + torch.arange(item.numel(), device=pos.device)
    p = c[item] + u[item] * r
    x = reject64[nb[rows]]
    x32 = reject32[nb[rows]]
    out2 = (REJECT_FRACTION * r) ** 2

    def d2(a, b_):
        v = a - b_
        return (v[:, 0] * v[:, 0] + v[:, 1] * v[:, 1]) + v[:, 2] * v[:, 2]

    hit = (d2(p, x) < out2) & (d2(p, x32) < out2)
    return torch.bincount(item[hit], minlength=pos.numel()) > 0
