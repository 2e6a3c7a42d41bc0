"""Whole-map prediction in overlapping tiles, blended back with a smooth window.

The volume ([z, y, x], already normalised, 1 Å/voxel) is zero-padded to at least one tile per
axis and cut into cubes of ``tile`` voxels whose starts are ``tile - overlap`` apart (the last
one flush with the end).  Each tile's prediction is weighted by a separable window that is 0 in
the ``margin`` voxels next to an *inner* tile edge (where the network sees zero padding instead
of the neighbouring density), rises as a raised cosine over the next ``overlap - 2·margin``
voxels and is 1 elsewhere; faces on the volume's own border get weight 1.  The blended value is
``Σ w·pred / Σ w``.  So any map fits in memory: only ``batch`` tiles are on the device at once.
Tiles containing no voxel of ``mask`` (when given) are skipped (their output is 0).
On CUDA the network runs under ``torch.autocast`` (float16); on the CPU in float32.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import torch

__all__ = ["tile_starts", "tile_window", "predict_tiled"]


def tile_starts(n: int, tile: int, overlap: int) -> List[int]:
    """Tile start indices along an axis of ``n`` voxels (``n >= tile``)."""
    step = max(1, tile - overlap)
    starts = list(range(0, max(n - tile, 0) + 1, step))
    if starts[-1] + tile < n:
        starts.append(n - tile)
    return starts


def _ramp(tile: int, margin: int, ramp: int, at_start: bool, at_end: bool) -> np.ndarray:
    i = np.arange(tile, dtype=np.float64)
    w = np.ones(tile)
    if not at_start:
        t = np.clip((i - margin + 0.5) / max(ramp, 1), 0.0, 1.0)
        w *= np.sin(0.5 * np.pi * t) ** 2
    if not at_end:
        t = np.clip((tile - 1 - i - margin + 0.5) / max(ramp, 1), 0.0, 1.0)
        w *= np.sin(0.5 * np.pi * t) ** 2
    return w


def tile_window(tile: int, overlap: int, first: Tuple[bool, bool, bool], last: Tuple[bool, bool, bool]) -> np.ndarray:
    """Separable blending window (tile, tile, tile) for a tile; ``first``/``last`` say per axis (z, y, x)
    whether the tile touches the start/end of the volume."""
    margin = overlap // 4
    ramp = max(overlap - 2 * margin, 1)
    wz, wy, wx = (_ramp(tile, margin, ramp, first[a], last[a]) for a in range(3))
    return (wz[:, None, None] * wy[None, :, None] * wx[None, None, :]).astype(np.float32)


def predict_tiled(net: torch.nn.Module, volume: np.ndarray, tile: int = 64, overlap: int = 16, batch: int = 2,
                  device: str = "cpu", mask: Optional[np.ndarray] = None, progress=None) -> np.ndarray:
    """Apply ``net`` ((B,1,t,t,t) -> (B,1,t,t,t)) to ``volume`` [z, y, x] in blended tiles.

    Parameters
    ----------
    tile : int
        Tile edge in voxels (rounded up to the network's ``multiple`` when it has one).
    overlap : int
        Voxels shared by neighbouring tiles (at least 4, at most ``tile // 2``).
    batch : int
        Tiles per forward pass.
    device : str
        ``"cpu"`` or ``"cuda"``/``"cuda:N"`` (autocast float16 there).
    mask : ndarray of bool, optional
        Tiles without any mask voxel are skipped.
    progress : callable, optional
        Called with the number of tiles done after each batch.
    """
    mult = int(getattr(net, "multiple", 1))
    tile = int(-(-int(tile) // mult) * mult)
    overlap = int(min(max(int(overlap), 4), tile // 2))
    vol = np.asarray(volume, dtype=np.float32)
    shape = vol.shape
    padded_shape = tuple(max(n, tile) for n in shape)
    if padded_shape != shape:
        pad = [(0, p - n) for n, p in zip(shape, padded_shape)]
        vol = np.pad(vol, pad)
        if mask is not None:
            mask = np.pad(mask, pad)
    starts = [tile_starts(n, tile, overlap) for n in padded_shape]
    jobs = []
    for z in starts[0]:
        for y in starts[1]:
            for x in starts[2]:
                if mask is not None and not mask[z:z + tile, y:y + tile, x:x + tile].any():
                    continue
                jobs.append((z, y, x))
    acc = np.zeros(padded_shape, dtype=np.float32)
    wsum = np.zeros(padded_shape, dtype=np.float32)
    dev = torch.device(device)
    use_amp = dev.type == "cuda"
    net = net.to(dev).eval()
    windows = {}
    with torch.no_grad():
        for b0 in range(0, len(jobs), max(1, int(batch))):
            chunk = jobs[b0:b0 + max(1, int(batch))]
            x_in = np.stack([vol[z:z + tile, y:y + tile, x:x + tile] for z, y, x in chunk])[:, None]
            xt = torch.from_numpy(x_in).to(dev)
            if use_amp:
                with torch.autocast(device_type="cuda", dtype=torch.float16):
                    out = net(xt)
            else:
                out = net(xt)
            out = out.float().cpu().numpy()[:, 0]
            for (z, y, x), pred in zip(chunk, out):
                key = (z == 0, y == 0, x == 0, z + tile >= padded_shape[0], y + tile >= padded_shape[1],
                       x + tile >= padded_shape[2])
                if key not in windows:
                    windows[key] = tile_window(tile, overlap, key[:3], key[3:])
                w = windows[key]
                acc[z:z + tile, y:y + tile, x:x + tile] += w * pred
                wsum[z:z + tile, y:y + tile, x:x + tile] += w
            if progress is not None:
                progress(len(chunk))
    out = np.divide(acc, wsum, out=np.zeros_like(acc), where=wsum > 0)
    return out[:shape[0], :shape[1], :shape[2]]
