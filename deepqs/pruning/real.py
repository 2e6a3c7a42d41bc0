"""Real labelled boxes from ``shared/data`` (optional: every function returns None when it is absent).

CryoPPP-derived micrographs (``shared/data/picking/cryoppp_dev/<EMPIAR>/<split>/{images,coords}``,
8-bit PNG, 1024 px, particle centres as CSV x,y; see its README): boxes at particle centres are
**good** (class 0); boxes centred farther than ``far_diameters`` particle diameters from every
annotated centre (and a half box from the border) are **bad** and go to the ice/contamination
class (1): empty ice, gaps, contamination the annotators did not pick.  The particle diameter is
twice the README's disc radius (28, 17.8, 29.9 px for 10028, 10059, 10947); the box is
``box_to_diameter`` diameters.
"""

from __future__ import annotations

import glob
import os
from typing import Dict, Optional, Sequence

import numpy as np

from deepqs.pruning.boxes import extract_boxes, read_image
from deepqs.pruning.simulated import LabelledBoxes, concat

__all__ = ["SHARED_DATA", "CRYOPPP_DIAMETER_PX", "cryoppp_root", "cryoppp_boxes"]

SHARED_DATA = os.environ.get("DEEPQS_SHARED_DATA",
                             os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                          "..", "shared", "data"))
#: Particle diameter in image pixels per EMPIAR id (2 × the annotation disc radius).
CRYOPPP_DIAMETER_PX: Dict[str, float] = {"10028": 56.0, "10059": 35.6, "10947": 59.8}


def cryoppp_root() -> Optional[str]:
    """The cryoppp_dev folder, or None when the shared data are not there."""
    root = os.path.normpath(os.path.join(SHARED_DATA, "picking", "cryoppp_dev"))
    return root if os.path.isdir(root) else None


def cryoppp_boxes(datasets: Sequence[str] = ("10028", "10059", "10947"), splits: Sequence[str] = ("test",),
                  out_size: int = 64, box_to_diameter: float = 1.85, far_diameters: float = 1.0,
                  neg_per_micrograph: int = 60, seed: int = 0) -> Optional[LabelledBoxes]:
    """Good (0) and bad (1) boxes from the CryoPPP-derived micrographs (module doc); None without the data.

    ``group`` numbers the micrographs.  Deterministic for ``seed``.
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
                cand = rng.uniform([box / 2, box / 2], [nx - 1 - box / 2, ny - 1 - box / 2], size=(4000, 2))
                dist = np.linalg.norm(cand[:, None, :] - good[None, :, :], axis=-1).min(axis=1) if len(good) else \
                    np.full(len(cand), np.inf)
                bad = cand[dist > far_diameters * d][:neg_per_micrograph]
                xy = np.concatenate([good, bad])
                b, _ = extract_boxes(img, xy, box, out_size, pad="reflect")
                lab = np.concatenate([np.zeros(len(good), np.int64), np.ones(len(bad), np.int64)])
                sets.append(LabelledBoxes(b, lab, np.zeros(len(lab), np.int64)))
    return concat(sets) if sets else None
