"""1.c Local resolution: a BlocRes-style local FSC in a sliding window.

Around each sampled centre inside the mask (the largest thresholded component dilated, as in
0.b), a cube of ``w`` voxels is cut from both half maps, tapered by a spherical raised-cosine
window (radius w/2), Fourier transformed, and the FSC computed per shell of the ``w³`` grid; the
local resolution is where it first falls below 0.143 (linear interpolation between shells;
``w · voxel`` when the first shell is already below, 2 × voxel when it never falls).

* ``w`` is even, about 4 × the reported resolution in voxels, clipped to [16, 32].
* Centres lie on a grid of step ``s`` voxels, the smallest step that keeps at most
  ``MAX_CENTRES`` of them inside the mask; windows are transformed in batches (no per-voxel loop).
* The local-resolution map on the input grid holds, in every mask voxel, the value of the nearest
  sampled centre, and 0 outside the mask.  Percentiles are over the mask voxels.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from deepqs.validation import checks as C
from deepqs.validation.checks import Check
from deepqs.validation.fsc import shell_index
from deepqs.validation.inputs import ValidationInputs
from deepqs.validation.util import central_slices_png, fig_png, pyplot

LEVEL = "1"
#: Most window centres evaluated (bounds the time: ~2000 windows of 24³ take a few seconds).
MAX_CENTRES = 3000
#: Windows Fourier-transformed at a time.
BATCH = 128


def window_size(resolution_A: float, voxel_A: float) -> int:
    w = int(round(4.0 * resolution_A / voxel_A))
    w += w % 2
    return int(np.clip(w, 16, 32))


def _taper(w: int) -> np.ndarray:
    c = (w - 1) / 2.0
    z, y, x = np.ogrid[:w, :w, :w]
    r = np.sqrt((z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2) / (w / 2.0)
    return np.where(r < 1, 0.5 * (1 + np.cos(np.pi * r)), 0.0)


def local_fsc_resolution(h1: np.ndarray, h2: np.ndarray, mask: np.ndarray, voxel_A: float, w: int,
                         threshold: float = C.FSC_THRESHOLD):
    """Local resolution at sampled centres: ``(centres [n, 3] z,y,x, resolution_A [n], step)``."""
    step = 1
    while int(mask[::step, ::step, ::step].sum()) > MAX_CENTRES:
        step += 1
    grid = np.zeros_like(mask)
    grid[::step, ::step, ::step] = True
    centres = np.argwhere(mask & grid)
    h = w // 2
    pad = [(h, w - h)] * 3
    p1 = np.pad(np.asarray(h1, dtype=np.float32), pad)
    p2 = np.pad(np.asarray(h2, dtype=np.float32), pad)
    v1 = sliding_window_view(p1, (w, w, w))
    v2 = sliding_window_view(p2, (w, w, w))
    taper = _taper(w).astype(np.float32)
    shells = shell_index(w)
    n_shells = w // 2 + 1
    keep = shells.ravel() < n_shells
    sh = shells.ravel()[keep]
    freq = np.arange(n_shells) / (w * voxel_A)
    res = np.empty(len(centres))
    for s in range(0, len(centres), BATCH):
        cz, cy, cx = centres[s:s + BATCH].T
        a = np.fft.rfftn(v1[cz, cy, cx] * taper, axes=(1, 2, 3)).reshape(len(cz), -1)[:, keep]
        b = np.fft.rfftn(v2[cz, cy, cx] * taper, axes=(1, 2, 3)).reshape(len(cz), -1)[:, keep]
        m = len(cz)
        idx = (np.arange(m)[:, None] * n_shells + sh[None, :]).ravel()
        num = np.bincount(idx, weights=np.real(a * np.conj(b)).ravel(), minlength=m * n_shells).reshape(m, n_shells)
        pa = np.bincount(idx, weights=(np.abs(a) ** 2).ravel(), minlength=m * n_shells).reshape(m, n_shells)
        pb = np.bincount(idx, weights=(np.abs(b) ** 2).ravel(), minlength=m * n_shells).reshape(m, n_shells)
        den = np.sqrt(pa * pb)
        f = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
        res[s:s + m] = _crossing(freq, f, threshold)
    return centres, res, step


def _crossing(freq: np.ndarray, f: np.ndarray, thr: float) -> np.ndarray:
    """Per row of ``f`` (shells 0..), the resolution where it first falls below ``thr`` (vectorised)."""
    below = f[:, 1:] < thr
    anyb = below.any(axis=1)
    i = np.where(anyb, np.argmax(below, axis=1) + 1, f.shape[1] - 1)
    rows = np.arange(f.shape[0])
    i0 = np.maximum(i - 1, 1)
    c0, c1 = f[rows, i0], f[rows, i]
    f0, f1 = freq[i0], freq[i]
    with np.errstate(invalid="ignore", divide="ignore"):
        fr = np.where((i > 1) & anyb & (c1 != c0), f0 + (thr - c0) * (f1 - f0) / (c1 - c0), freq[i])
    return 1.0 / fr


def local_resolution_map(shape, mask: np.ndarray, centres: np.ndarray, values: np.ndarray, step: int) -> np.ndarray:
    """Fill every mask voxel with the value of its nearest sampled centre (0 outside the mask)."""
    coarse_shape = tuple((np.array(shape) + step - 1) // step)
    coarse = np.zeros(coarse_shape, dtype=np.float64)
    have = np.zeros(coarse_shape, dtype=bool)
    ci = centres // step
    coarse[ci[:, 0], ci[:, 1], ci[:, 2]] = values
    have[ci[:, 0], ci[:, 1], ci[:, 2]] = True
    _, ind = ndimage.distance_transform_edt(~have, return_indices=True)
    filled = coarse[tuple(ind)]
    z, y, x = (np.minimum(np.rint(np.arange(n) / step).astype(int), cn - 1) for n, cn in zip(shape, coarse_shape))
    full = filled[z[:, None, None], y[None, :, None], x[None, None, :]]
    return np.where(mask, full, 0.0).astype(np.float32)


def check_1c(inp: ValidationInputs) -> Check:
    """1.c Local resolution (sliding-window local FSC), percentiles and a map."""
    from deepqs.validation.level0 import _mask

    c = Check("1.c", "Local resolution (local FSC)", LEVEL, description=(
        "BlocRes-style local FSC (0.143) of the half maps in a sliding tapered cube inside the mask; "
        f"the reported resolution below the {C.LOCALRES_PERCENTILE:g} percentile of the local resolutions warns."))
    mask = _mask(inp)
    vs = inp.voxel_size
    w = window_size(inp.resolution, vs)
    centres, res, step = local_fsc_resolution(inp.half1.data, inp.half2.data, mask, vs, w)
    if len(centres) == 0:
        c.status = C.NOT_APPLICABLE
        c.reason = "the mask is empty"
        return c
    lmap = local_resolution_map(inp.map.data.shape, mask, centres, res, step)
    vals = lmap[mask]
    pct = np.percentile(vals, C.LOCALRES_PERCENTILES)
    p01 = float(np.percentile(vals, C.LOCALRES_PERCENTILE))
    c.warn_if(inp.resolution < p01, f"reported {inp.resolution:g} Å is better than the {C.LOCALRES_PERCENTILE:g} "
              f"percentile of the local resolution ({p01:.2f} Å)")
    c.values = {"percentiles_A": {f"p{p:g}": float(v) for p, v in zip(C.LOCALRES_PERCENTILES, pct)},
                "median_A": float(np.median(vals)), "window_voxels": w, "window_A": w * vs, "step_voxels": step,
                "centres": int(len(centres))}
    c.maps["local_resolution"] = inp.map.with_data(lmap)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(vals, bins=50, color="#4a7ab5")
    ax.axvline(inp.resolution, color="k", ls="-.", label=f"reported {inp.resolution:g} Å")
    ax.axvline(p01, color="C3", ls="--", label=f"0.1 %: {p01:.2f} Å")
    ax.set_xlabel("local resolution (Å)")
    ax.set_ylabel("mask voxels")
    ax.legend(fontsize=7, frameon=False)
    c.figures["histogram"] = fig_png(fig)
    c.figures["slices"] = central_slices_png(inp.map.data, inp.threshold, "Local resolution (Å; blue good, red poor)",
                                             overlay=lmap, overlay_label="Å")
    return c.decide()
