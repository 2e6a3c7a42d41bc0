"""Real labelled boxes from ``shared/data`` (optional: every function returns None when it is absent).

CryoPPP-derived micrographs (``shared/data/picking/cryoppp_dev/<EMPIAR>/<split>/{images,labels,coords}``,
8-bit PNG, 1024 px, particle centres as CSV x,y, particle disc masks as PNG; see its README):

* **good** (class 0): a box centred on an annotated particle centre;
* **bad** (class 1, ice/contamination): a box centred farther than ``far_diameters`` particle
  diameters from every annotated centre **and** whose area the annotated particle mask (the
  ``labels/`` PNG, resized to the image and binarised at 128) covers for at most
  ``max_mask_fraction`` (default 0.02: the box contains no annotated particle, at most a sliver of
  one at an edge).  The mask check matters: a box 1.85 diameters wide centred one diameter from a
  particle still holds a good part of it, and in the dense data sets (10059, 10947) such boxes
  are nearly all "bad" candidates at ``far_diameters`` = 1 alone (see ``docs/benchmarks.md``).
  ``max_mask_fraction=None`` turns the mask check off (the old rule).

The particle diameter is twice the README's disc radius (28, 17.8, 29.9 px for 10028, 10059,
10947); the box is ``box_to_diameter`` diameters.  ``group`` numbers the micrographs.
"""

from __future__ import annotations

import glob
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from deepqs.pruning.boxes import extract_boxes, read_image
from deepqs.pruning.simulated import LabelledBoxes, concat

__all__ = ["SHARED_DATA", "CRYOPPP_DIAMETER_PX", "cryoppp_root", "cryoppp_micrographs", "cryoppp_boxes",
           "mask_fraction"]

SHARED_DATA = os.environ.get("DEEPQS_SHARED_DATA",
                             os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                          "..", "shared", "data"))
#: Particle diameter in image pixels per EMPIAR id (2 × the annotation disc radius).
CRYOPPP_DIAMETER_PX: Dict[str, float] = {"10028": 56.0, "10059": 35.6, "10947": 59.8}


def cryoppp_root() -> Optional[str]:
    """The cryoppp_dev folder, or None when the shared data are not there."""
    root = os.path.normpath(os.path.join(SHARED_DATA, "picking", "cryoppp_dev"))
    return root if os.path.isdir(root) else None


def cryoppp_micrographs(datasets: Sequence[str] = ("10028", "10059", "10947"),
                        splits: Sequence[str] = ("test",)) -> List[Tuple[str, str, str]]:
    """``(EMPIAR id, split, stem)`` of each micrograph in the order :func:`cryoppp_boxes` numbers its ``group``s
    (item ``g`` is group ``g``); empty without the data."""
    root = cryoppp_root()
    if root is None:
        return []
    out = []
    for ds in datasets:
        for split in splits:
            for img_path in sorted(glob.glob(os.path.join(root, ds, split, "images", "*.png"))):
                stem = os.path.splitext(os.path.basename(img_path))[0]
                if os.path.exists(os.path.join(root, ds, split, "coords", stem + ".csv")):
                    out.append((ds, split, stem))
    return out


def _read_mask(path: str, shape) -> Optional[np.ndarray]:
    """The particle mask of a micrograph resized to ``shape`` (bilinear) and binarised at 128; None if absent."""
    if not os.path.exists(path):
        return None
    from PIL import Image

    im = Image.open(path).convert("L")
    if im.size != (shape[1], shape[0]):
        im = im.resize((shape[1], shape[0]), Image.BILINEAR)
    return np.asarray(im) >= 128


def mask_fraction(mask: np.ndarray, xy: np.ndarray, box_px: int) -> np.ndarray:
    """Fraction of each ``box_px`` box centred at ``xy`` (x, y) that ``mask`` covers (the part inside the image)."""
    ny, nx = mask.shape
    ii = np.zeros((ny + 1, nx + 1), np.int64)
    ii[1:, 1:] = np.cumsum(np.cumsum(mask, 0, dtype=np.int64), 1)          # summed-area table
    c = np.rint(np.asarray(xy, np.float64)).astype(np.int64)
    h = box_px // 2
    x0, x1 = np.clip(c[:, 0] - h, 0, nx), np.clip(c[:, 0] - h + box_px, 0, nx)
    y0, y1 = np.clip(c[:, 1] - h, 0, ny), np.clip(c[:, 1] - h + box_px, 0, ny)
    s = ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]
    return s / np.maximum(1, (x1 - x0) * (y1 - y0))


def cryoppp_boxes(datasets: Sequence[str] = ("10028", "10059", "10947"), splits: Sequence[str] = ("test",),
                  out_size: int = 64, box_to_diameter: float = 1.85, far_diameters: float = 1.0,
                  neg_per_micrograph: int = 60, seed: int = 0, max_mask_fraction: Optional[float] = 0.02,
                  n_candidates: int = 6000) -> Optional[LabelledBoxes]:
    """Good (0) and bad (1) boxes from the CryoPPP-derived micrographs (module doc); None without the data.

    Bad boxes: up to ``neg_per_micrograph`` of ``n_candidates`` uniformly drawn centres that pass
    both tests.  ``group`` numbers the micrographs.  Deterministic for ``seed``.
    """
    from deepqs.io import read_coordinates

    root = cryoppp_root()
    if root is None:
        return None
    rng = np.random.default_rng(seed)
    sets = []
    for ds in datasets:
        d = CRYOPPP_DIAMETER_PX[ds]
        box = int(round(box_to_diameter * d))
        for split in splits:
            for img_path in sorted(glob.glob(os.path.join(root, ds, split, "images", "*.png"))):   # per micrograph
                stem = os.path.splitext(os.path.basename(img_path))[0]
                cpath = os.path.join(root, ds, split, "coords", stem + ".csv")
                if not os.path.exists(cpath):
                    continue
                img, _ = read_image(img_path)
                c = read_coordinates(cpath)
                good = c.xy
                ny, nx = img.shape
                cand = rng.uniform([box / 2, box / 2], [nx - 1 - box / 2, ny - 1 - box / 2], size=(n_candidates, 2))
                dist = np.linalg.norm(cand[:, None, :] - good[None, :, :], axis=-1).min(axis=1) if len(good) else \
                    np.full(len(cand), np.inf)
                ok = dist > far_diameters * d
                if max_mask_fraction is not None:
                    mask = _read_mask(os.path.join(root, ds, split, "labels", stem + ".png"), img.shape)
                    if mask is not None:
                        ok &= mask_fraction(mask, cand, box) <= max_mask_fraction
                bad = cand[ok][:neg_per_micrograph]
                xy = np.concatenate([good, bad])
                b, _ = extract_boxes(img, xy, box, out_size, pad="reflect")
                lab = np.concatenate([np.zeros(len(good), np.int64), np.ones(len(bad), np.int64)])
                sets.append(LabelledBoxes(b, lab, np.zeros(len(lab), np.int64)))     # concat numbers the micrographs
    return concat(sets) if sets else None
