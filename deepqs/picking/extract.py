"""Particle extraction: cut boxes around picked centres into per-micrograph MRC stacks + a RELION STAR.

Coordinates are centres in pixels of the micrograph (x = column, y = row).  Boxes are
``box_px`` x ``box_px`` micrograph pixels (no resampling), normalised RELION-style by default
(background = the pixels outside the circle of diameter ``box_px``: mean 0, standard deviation 1).
Boxes that would run off the micrograph are skipped (counted) unless ``keep_edge``, which pads
them with the mean of their in-micrograph pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from deepqs.errors import InputError, PathLike
from deepqs.io import atomic_output, write_stack
from deepqs.io.coords import Coordinates, match_coordinate_files



@dataclass
class ExtractionResult:
    """What :func:`extract_particles` wrote.

    ``rows``: one per extracted particle, in output order: (micrograph key, index of the
    coordinate in its file group, x, y, stack file, 1-based slice in the stack).
    """

    star: str
    stacks: List[str]
    rows: List[tuple]
    box_px: int
    pixel_size_A: Optional[float]
    n_coordinates: int
    n_skipped_off_edge: int
    unmatched: Dict[str, int] = field(default_factory=dict)

    @property
    def n_particles(self) -> int:
        return len(self.rows)


def normalise_particles(boxes: np.ndarray) -> np.ndarray:
    """RELION-style normalisation of ``[n, y, x]`` boxes: the background (outside the circle of
    diameter = box size) gets mean 0 and standard deviation 1 in every box."""
    n, ny, nx = boxes.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    r2 = (yy - (ny - 1) / 2.0) ** 2 + (xx - (nx - 1) / 2.0) ** 2
    bg = r2 > (min(ny, nx) / 2.0) ** 2
    vals = boxes[:, bg]
    mean = vals.mean(axis=1)
    std = vals.std(axis=1)
    std = np.where(std > 0, std, 1.0)
    return ((boxes - mean[:, None, None]) / std[:, None, None]).astype(np.float32)


def extract_particles(micrographs: Sequence[PathLike], coordinate_files: Sequence[PathLike], box_px: int,
                      out_dir: PathLike, invert: bool = False, normalise: bool = True, keep_edge: bool = False,
                      pixel_size: Optional[float] = None,
                      warn: Optional[Callable[[str], None]] = None) -> ExtractionResult:
    """Extract ``box_px`` boxes around every coordinate into ``out_dir/<micrograph>.mrcs`` and
    ``out_dir/particles.star`` (``_rlnImageName``, ``_rlnMicrographName``, ``_rlnCoordinateX/Y``).

    One micrograph is in memory at a time.  ``invert`` flips the contrast (protein white, as
    RELION and cryoSPARC expect).  Every file is written atomically.
    """
    from deepqs.pruning.boxes import extract_boxes, read_image

    if not micrographs:
        raise InputError(None, "no micrographs given")
    if not coordinate_files:
        raise InputError(None, "no coordinate files given")
    box = int(box_px)
    if box < 8:
        raise InputError(None, f"box size must be at least 8 pixels, got {box_px}")
    mic_by_key, groups, unmatched = match_coordinate_files(micrographs, coordinate_files, warn)
    if not groups and unmatched:
        raise InputError(None, f"no coordinates match the given micrographs by file name "
                               f"({sum(unmatched.values())} coordinates)")
    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    by_key: Dict[str, List[Coordinates]] = {}
    for _, key, c in groups:
        by_key.setdefault(key, []).append(c)
    rows, stacks, skipped, n_coords, ref_ps = [], [], 0, 0, None
    for key in sorted(by_key):
        path = mic_by_key[key]
        image, ps = read_image(path, pixel_size)
        if ps is not None:
            if ref_ps is not None and abs(ps - ref_ps) > 0.01 * ref_ps:
                raise InputError(path, f"pixel size {ps:.4g} Å differs from the other micrographs' {ref_ps:.4g} Å")
            ref_ps = ref_ps or ps
        parts, info = [], []
        for c in by_key[key]:
            n_coords += len(c)
            if not len(c):
                continue
            boxes, off = extract_boxes(image, c.xy, box, out_size=None)
            keep = np.ones(len(c), bool) if keep_edge else ~off
            skipped += int((~keep).sum())
            if (~keep).any() and warn is not None:
                warn(f"{key}: {int((~keep).sum())} boxes run off the micrograph edge; skipped (--keep-edge pads them)")
            parts.append(boxes[keep])
            info += [(i, float(c.x[i]), float(c.y[i])) for i in np.flatnonzero(keep)]
        if not info:
            continue
        stack = np.concatenate(parts)
        if invert:
            stack = -stack
        if normalise:
            stack = normalise_particles(stack)
        stack_path = os.path.join(out, key + ".mrcs")
        write_stack(stack_path, stack, ps if ps is not None else 1.0)
        stacks.append(stack_path)
        rows += [(key, i, x, y, stack_path, k + 1) for k, (i, x, y) in enumerate(info)]
    star = os.path.join(out, "particles.star")
    lines = ["", "data_particles", "", "loop_", "_rlnImageName #1", "_rlnMicrographName #2",
             "_rlnCoordinateX #3", "_rlnCoordinateY #4"]
    lines += ["%06d@%s %s %.2f %.2f" % (k, os.path.basename(s), os.path.basename(mic_by_key[key]), x, y)
              for key, _, x, y, s, k in rows]
    with atomic_output(star) as tmp:
        with open(tmp, "w") as fh:
            fh.write("\n".join(lines) + "\n")
    return ExtractionResult(star, stacks, rows, box, ref_ps, n_coords, skipped, unmatched)
