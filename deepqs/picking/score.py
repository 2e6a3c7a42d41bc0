"""Score maps: every window of a working image scored in one convolutional pass, tiled.

The map is the mean over the 4 rotations (0/90/180/270°) of the input (``torch.rot90``), each
rotated back, so it does not depend on the micrograph's orientation.  The image is padded with
zeros (its mean) by half a box so that windows centred near the edge are scored too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

from deepqs.device import resolve_device  # the project's one device rule (re-exported for old callers)
from deepqs.picking.networks import WindowNet

__all__ = ["ScoreMap", "score_image", "resolve_device"]


@dataclass
class ScoreMap:
    """Probabilities of 'particle' on a grid of window centres.

    ``scores[i, j]`` belongs to the window centred at working pixel
    ``(x = j * stride + offset, y = i * stride + offset)``.
    """

    scores: np.ndarray
    stride: int
    offset: float

    def centres(self, rows: np.ndarray, cols: np.ndarray):
        """Map indices -> working-pixel centres ``(x, y)``."""
        return (np.asarray(cols, float) * self.stride + self.offset,
                np.asarray(rows, float) * self.stride + self.offset)


def _padded_size(n: int, box: int, stride: int, pad: int) -> int:
    """``n + 2 * pad`` rounded up so that ``padded - box`` is a multiple of ``stride``.

    The window grid is symmetric about the image centre (exact rotation invariance) whenever
    no rounding is needed, e.g. even sizes with a stride of 2.
    """
    total = n + 2 * pad
    return total + (-(total - box)) % stride


@torch.no_grad()
def score_image(net: WindowNet, image: np.ndarray, stride: int = 2, rotations: int = 4, tile: int = 1024,
                device: Union[str, torch.device] = "cpu") -> ScoreMap:
    """Score every window of ``image`` (working scale, [y, x]); ``rotations`` 1 or 4.

    ``tile`` (working pixels) bounds the input of one pass (GPU memory); tiles overlap by one
    box so the result does not depend on it.
    """
    if rotations not in (1, 4):
        raise ValueError("rotations must be 1 or 4")
    dev = resolve_device(device)
    net = net.to(dev).eval()
    box = net.box
    pad = box // 2
    offset = (box - 1) / 2.0 - pad
    h, w = image.shape
    hp = _padded_size(h, box, stride, pad)
    wp = _padded_size(w, box, stride, pad)
    x = torch.zeros((hp, wp), dtype=torch.float32)
    x[pad:pad + h, pad:pad + w] = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    mh, mw = (hp - box) // stride + 1, (wp - box) // stride + 1
    out = np.zeros((mh, mw), dtype=np.float32)
    t = max(1, (max(tile, box) - box) // stride + 1)          # map rows/cols per tile
    for r0 in range(0, mh, t):
        r1 = min(mh, r0 + t)
        for c0 in range(0, mw, t):
            c1 = min(mw, c0 + t)
            patch = x[r0 * stride:(r1 - 1) * stride + box, c0 * stride:(c1 - 1) * stride + box]
            patch = patch.to(dev)[None, None]
            acc = None
            for k in range(rotations):
                s = net.score_map(torch.rot90(patch, k, dims=(2, 3)), stride)
                s = torch.rot90(s, -k, dims=(2, 3))
                acc = s if acc is None else acc + s
            out[r0:r1, c0:c1] = (acc / rotations)[0, 0].float().cpu().numpy()
    return ScoreMap(out, int(stride), float(offset))
