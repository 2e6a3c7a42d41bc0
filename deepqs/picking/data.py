"""Pair micrographs with coordinate files and check them; every dropped item is counted.

Coordinate files are matched to micrographs by name (:func:`deepqs.io.micrograph_key`: file
name without folder and extension): a file per micrograph (.box, .csv without a micrograph
column, RELION coordinate .star) is matched by its own stem, multi-micrograph files (.star with
``_rlnMicrographName``, Topaz .txt, cryoSPARC .cs, CSV with a ``micrograph`` column) by the names
they hold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from deepqs.errors import InputError
from deepqs.io.coords import Coordinates, micrograph_key, read_coordinates_by_micrograph
from deepqs.picking.preprocess import IMAGE_EXTENSIONS, PreparedMicrograph

__all__ = ["Dropped", "stem", "read_coordinate_files", "check_pixel_sizes", "inside_micrograph"]


@dataclass
class Dropped:
    """Items left out, by reason: ``{reason: [names]}``."""

    items: Dict[str, List[str]] = field(default_factory=dict)

    def add(self, reason: str, name: str) -> None:
        self.items.setdefault(reason, []).append(name)

    def counts(self) -> Dict[str, int]:
        return {k: len(v) for k, v in self.items.items()}

    def total(self) -> int:
        return sum(len(v) for v in self.items.values())


def stem(path: str) -> str:
    """Micrograph name used for matching and output files (``dir/a.mrc`` -> ``a``)."""
    return PreparedMicrograph(np.zeros((1, 1)), (1, 1), (1, 1), None, 1.0, path).name


def read_coordinate_files(paths: Sequence[str], flip_y: bool = False,
                          heights: Optional[Dict[str, int]] = None) -> Dict[str, Coordinates]:
    """``{micrograph stem: Coordinates}`` from coordinate files (several files may name one micrograph)."""
    out: Dict[str, Coordinates] = {}
    for p in paths:
        groups = read_coordinates_by_micrograph(p, flip_y=flip_y, micrograph_height=heights)
        if not groups:
            out.setdefault(micrograph_key(p), Coordinates(np.zeros(0), np.zeros(0)))
        for name, c in groups.items():
            key = micrograph_key(name)
            if key in out and len(out[key]):
                prev = out[key]
                out[key] = Coordinates(np.r_[prev.x, c.x], np.r_[prev.y, c.y], None, prev.micrograph)
            else:
                out[key] = c
    return out


def inside_micrograph(coords: Coordinates, shape: Tuple[int, int]) -> np.ndarray:
    """Mask of coordinates whose centre lies on the micrograph (``-0.5 <= x < nx - 0.5``, same for y)."""
    ny, nx = shape
    return (coords.x >= -0.5) & (coords.y >= -0.5) & (coords.x < nx - 0.5) & (coords.y < ny - 0.5)


def _header_pixel_size(path: str) -> Optional[float]:
    if path.lower().endswith(IMAGE_EXTENSIONS):
        return None
    try:
        import mrcfile

        with mrcfile.open(path, header_only=True, permissive=True) as m:
            v = float(m.voxel_size.x)
        return v if v > 0 else None
    except Exception:                      # unreadable files are reported when they are read
        return None


def check_pixel_sizes(paths: Sequence[str], override: Optional[float] = None, rel_tol: float = 0.01) -> Optional[float]:
    """The one pixel size (Å) of ``paths`` (headers), or None when none has one.

    Raises InputError when the headers disagree by more than ``rel_tol`` and no override is given:
    one particle diameter cannot fit micrographs of different pixel sizes.
    """
    if override is not None:
        return float(override)
    sizes = [(p, _header_pixel_size(p)) for p in paths]
    known = [(p, s) for p, s in sizes if s is not None]
    if not known:
        return None
    lo = min(known, key=lambda t: t[1])
    hi = max(known, key=lambda t: t[1])
    if hi[1] > lo[1] * (1 + rel_tol):
        raise InputError(None, f"micrographs have different pixel sizes ({os.path.basename(lo[0])}: {lo[1]:.4g} Å, "
                               f"{os.path.basename(hi[0])}: {hi[1]:.4g} Å); process them in separate runs "
                               "(or give --pixel-size when the headers are wrong)")
    return known[0][1]
