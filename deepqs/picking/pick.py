"""Picks from a score map: non-maximum suppression, standard-deviation filter, threshold.

All steps are vectorised: peaks are the pixels equal to the maximum of a disc around them
(``scipy.ndimage.maximum_filter``), a second pass removes peaks closer than the radius to a
higher one (plateaus, near-ties), the window standard deviation comes from two box filters of
the working image, and every pick keeps its score.  Coordinates are particle centres in pixels
of the original micrograph (x = column, y = row).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple, Union

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from deepqs.io.coords import Coordinates
from deepqs.picking.model import PickerModel
from deepqs.picking.preprocess import PreparedMicrograph
from deepqs.picking.score import ScoreMap, score_image

__all__ = ["Picks", "find_peaks", "refine_peaks", "suppress_close", "local_std", "std_filter", "pick_prepared", "STD_MARGIN"]

#: The learned std range is widened by this factor on each side (low / f, high * f).
STD_MARGIN = 1.25


@dataclass
class Picks:
    """Particles picked on one micrograph.

    ``x``, ``y``: centres in original-micrograph pixels; ``score``: network probability (0-1).
    Counts say what each step removed: ``n_peaks`` local maxima, ``n_std_rejected`` removed by
    the standard-deviation filter, ``n_below_threshold`` below the threshold.
    """

    x: np.ndarray
    y: np.ndarray
    score: np.ndarray
    micrograph: str = "micrograph"
    threshold: float = 0.0
    n_peaks: int = 0
    n_std_rejected: int = 0
    n_below_threshold: int = 0
    diameter_px: float = 0.0
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x.size)

    def coordinates(self) -> Coordinates:
        """As :class:`deepqs.io.Coordinates` (box size = 1.5 diameters, rounded)."""
        box = float(round(1.5 * self.diameter_px)) if self.diameter_px else None
        return Coordinates(self.x, self.y, self.score, self.micrograph, box)

    def above(self, threshold: float) -> "Picks":
        """The picks with ``score >= threshold``."""
        keep = self.score >= threshold
        return Picks(self.x[keep], self.y[keep], self.score[keep], self.micrograph, float(threshold), self.n_peaks,
                     self.n_std_rejected, self.n_below_threshold + int((~keep).sum()), self.diameter_px, self.extra)


def _disc(radius: float) -> np.ndarray:
    r = max(int(np.floor(radius)), 0)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx * xx + yy * yy) <= radius * radius + 1e-9


def find_peaks(scores: np.ndarray, radius: float, min_score: float = 0.0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local maxima of ``scores`` within a disc of ``radius`` (map pixels), ``>= min_score``.

    Returns ``(rows, cols, values)`` sorted by decreasing value (then row, column).  Equal
    neighbours on a plateau are all returned; :func:`suppress_close` resolves them.
    """
    s = np.asarray(scores, dtype=np.float32)
    mx = ndimage.maximum_filter(s, footprint=_disc(radius), mode="constant", cval=-np.inf)
    rows, cols = np.nonzero((s == mx) & (s >= min_score))
    vals = s[rows, cols]
    order = np.lexsort((cols, rows, -vals))
    return rows[order], cols[order], vals[order]


def refine_peaks(scores: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Sub-pixel peak positions (map pixels): a parabola through each peak and its 2 neighbours per axis.

    Offsets are clipped to ±0.5; peaks on the map border keep their integer position on that axis.
    """
    s = np.asarray(scores, dtype=np.float64)
    h, w = s.shape
    r = np.asarray(rows, dtype=int)
    c = np.asarray(cols, dtype=int)

    def offset(prev, centre, nxt, ok):
        den = prev - 2 * centre + nxt
        d = np.where(ok & (den < 0), 0.5 * (prev - nxt) / np.where(den < 0, den, -1.0), 0.0)
        return np.clip(d, -0.5, 0.5)

    okr = (r > 0) & (r < h - 1)
    okc = (c > 0) & (c < w - 1)
    rm, rp = np.clip(r - 1, 0, h - 1), np.clip(r + 1, 0, h - 1)
    cm, cp = np.clip(c - 1, 0, w - 1), np.clip(c + 1, 0, w - 1)
    v = s[r, c]
    return r + offset(s[rm, c], v, s[rp, c], okr), c + offset(s[r, cm], v, s[r, cp], okc)


def suppress_close(x: np.ndarray, y: np.ndarray, score: np.ndarray, radius: float) -> np.ndarray:
    """Indices kept by greedy NMS: a point is dropped when a kept higher-scoring one is closer than ``radius``.

    Input order is taken as the priority when scores tie (pass points sorted by score).
    """
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=int)
    order = np.argsort(-np.asarray(score), kind="stable")
    pts = np.stack([np.asarray(x)[order], np.asarray(y)[order]], axis=1)
    pairs = cKDTree(pts).query_pairs(radius, output_type="ndarray")
    if len(pairs) == 0:
        return np.sort(order)
    # only points with close neighbours need the greedy pass, in priority order
    neighbours = [[] for _ in range(n)]
    for a, b in pairs:
        lo, hi = (a, b) if a < b else (b, a)
        neighbours[hi].append(lo)
    alive = np.ones(n, dtype=bool)
    for i in np.unique(pairs.max(axis=1)):
        if any(alive[j] for j in neighbours[i]):
            alive[i] = False
    return np.sort(order[alive])


def local_std(image: np.ndarray, size: float) -> np.ndarray:
    """Standard deviation of ``image`` in a ``size × size`` window around every pixel (box filters)."""
    k = max(int(round(size)), 1)
    img = np.asarray(image, dtype=np.float64)
    m = ndimage.uniform_filter(img, k, mode="reflect")
    m2 = ndimage.uniform_filter(img * img, k, mode="reflect")
    return np.sqrt(np.clip(m2 - m * m, 0, None)).astype(np.float32)


def std_filter(values: np.ndarray, std_range: Optional[Tuple[float, float]]) -> np.ndarray:
    """Boolean mask of ``values`` inside ``std_range`` (inclusive); all True when the range is None."""
    v = np.asarray(values)
    if std_range is None:
        return np.ones(v.shape, dtype=bool)
    lo, hi = std_range
    return (v >= lo) & (v <= hi)


def sample_std(prepared: PreparedMicrograph, xw: np.ndarray, yw: np.ndarray, working_diameter_px: float,
               std_map: Optional[np.ndarray] = None) -> np.ndarray:
    """Window standard deviation (one particle diameter wide) at working-pixel centres."""
    if std_map is None:
        std_map = local_std(prepared.image, working_diameter_px)
    h, w = std_map.shape
    r = np.clip(np.rint(yw).astype(int), 0, h - 1)
    c = np.clip(np.rint(xw).astype(int), 0, w - 1)
    return std_map[r, c]


def pick_prepared(model: PickerModel, prepared: PreparedMicrograph,
                  threshold: Union[None, float, str] = "auto",
                  std_range: Union[None, str, Tuple[float, float]] = "model",
                  device: str = "cpu", rotations: int = 4, tile: int = 1024,
                  score_map: Optional[ScoreMap] = None) -> Picks:
    """Pick particles on one prepared micrograph.

    ``threshold``: a number, "auto" (the model's stored value) or None (keep every peak).
    ``std_range``: "model" (learned from training positives; None when the model has none),
    None (off), or ``(low, high)`` in working-image standard deviations.
    """
    sm = score_map if score_map is not None else score_image(model.net, prepared.image, model.score_stride_px,
                                                             rotations, tile, device)
    r_work = model.nms_radius_diameters * model.working_diameter_px
    rows, cols, vals = find_peaks(sm.scores, r_work / sm.stride)
    xw, yw = sm.centres(*refine_peaks(sm.scores, rows, cols))
    h, w = prepared.image.shape
    inside = (xw > -0.5) & (yw > -0.5) & (xw < w - 0.5) & (yw < h - 0.5)
    xw, yw, vals = xw[inside], yw[inside], vals[inside].astype(np.float64)
    keep = suppress_close(xw, yw, vals, r_work)
    xw, yw, vals = xw[keep], yw[keep], vals[keep]
    n_peaks = int(xw.size)
    rng = model.std_range if isinstance(std_range, str) and std_range == "model" else std_range
    ok = std_filter(sample_std(prepared, xw, yw, model.working_diameter_px), rng)
    n_std = int((~ok).sum())
    xw, yw, vals = xw[ok], yw[ok], vals[ok]
    thr = model.threshold if isinstance(threshold, str) and threshold == "auto" else threshold
    thr = 0.0 if thr is None else float(thr)
    above = vals >= thr
    n_below = int((~above).sum())
    order = np.argsort(-vals[above], kind="stable")
    x, y = prepared.to_original(xw[above][order], yw[above][order])
    return Picks(x, y, vals[above][order], prepared.name, thr, n_peaks, n_std, n_below, prepared.diameter_px)
