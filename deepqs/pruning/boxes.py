"""Particle boxes for pruning: cut from micrographs at coordinates, or read from particle stacks.

Conventions (``CONVENTIONS.md``): a micrograph is ``[y, x]`` (x = column, y = row, pixel centres
at integers); coordinates are particle centres in pixels of the micrograph as given.  A box of
``box_px`` pixels around centre ``(x, y)`` has its pixel ``[box_px // 2, box_px // 2]`` on the
micrograph pixel nearest the centre (``round(y), round(x)``), as
:func:`deepqs.simulate.particle_stack` does.

Every box is then resampled to the network size (``out_size``, 64 px by default) with
antialiased bilinear interpolation (:func:`resample_boxes`); intensities are left as they are
(per-box normalisation is done by :func:`deepqs.pruning.network.normalise_boxes`).

Edges: pixels of a box that fall outside the micrograph are filled with the mean of the box's
pixels that fall inside (``pad="mean"``, default) or by mirroring the micrograph at its border
(``pad="reflect"``); such boxes are flagged in ``off_edge``.  A centre outside the micrograph
gives a box of constant value (its nearest pixels mirrored/averaged) and is flagged too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from deepqs.errors import InputError, PathLike, check_input_file

__all__ = ["BoxSet", "IMAGE_EXTENSIONS", "extract_boxes", "resample_boxes", "read_particle_boxes",
           "read_micrograph_boxes", "read_image", "parse_image_name"]

#: 8/16-bit image files read with Pillow (no pixel size); everything else is read as MRC.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_CHUNK_PIXELS = 16_000_000       # pixels gathered at once by extract_boxes (memory bound, ~64 MB)


@dataclass
class BoxSet:
    """Boxes and where they came from, one entry per input item (file order).

    Attributes
    ----------
    boxes : ndarray float32 (n, S, S)
        Resampled boxes, ``[y, x]``, intensities as in the input.
    off_edge : ndarray bool (n,)
        The box ran off the micrograph edge and was padded (always False for stacks).
    micrograph : ndarray str (n,)
        Micrograph name (coordinates input: the micrograph key; .star input: ``_rlnMicrographName``
        or ""; plain stacks: "").
    x, y : ndarray float64 (n,)
        Centres in micrograph pixels (NaN when unknown, e.g. a plain stack).
    index : ndarray int64 (n,)
        Position of the item in its source (0-based row of the .star, section of the stack, or
        row of the coordinate file).
    pixel_size_A : float or None
        Pixel size of the input (Å), None when the input does not say (PNG micrographs).
    box_px : int or None
        Box size in input pixels before resampling.
    source : dict
        What is needed to write the kept/rejected subsets back in the input's format
        (``kind`` = "stack", "star" or "coordinates", plus paths and tables).
    """

    boxes: np.ndarray
    off_edge: np.ndarray
    micrograph: np.ndarray
    x: np.ndarray
    y: np.ndarray
    index: np.ndarray
    pixel_size_A: Optional[float] = None
    box_px: Optional[int] = None
    source: Dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


# --------------------------------------------------------------------------------------------
# core array operations
# --------------------------------------------------------------------------------------------
def resample_boxes(boxes: np.ndarray, out_size: int = 64) -> np.ndarray:
    """Resample ``(n, b, b)`` boxes to ``(n, out_size, out_size)`` (bilinear, antialiased when shrinking).

    The resampling maps the box's field of view onto the output (pixel size grows by
    ``b / out_size``).  Returns float32; a no-op copy when ``b == out_size``.
    """
    arr = np.asarray(boxes, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise ValueError(f"boxes must be (n, b, b), got {arr.shape}")
    if arr.shape[1] == out_size:
        return arr.copy()
    if arr.shape[0] == 0:
        return np.zeros((0, out_size, out_size), np.float32)
    out = np.empty((arr.shape[0], out_size, out_size), np.float32)
    step = max(1, _CHUNK_PIXELS // (arr.shape[1] ** 2))
    for s in range(0, arr.shape[0], step):      # chunks bound the memory, each chunk is one call
        t = torch.from_numpy(np.array(arr[s:s + step], dtype=np.float32))[:, None]   # a writable copy
        r = F.interpolate(t, size=(out_size, out_size), mode="bilinear", align_corners=False,
                          antialias=arr.shape[1] > out_size)
        out[s:s + step] = r[:, 0].numpy()
    return out


def extract_boxes(image: np.ndarray, xy: np.ndarray, box_px: int, out_size: Optional[int] = 64,
                  pad: str = "mean") -> Tuple[np.ndarray, np.ndarray]:
    """Cut ``box_px`` boxes centred on ``xy`` ((n, 2) as x = column, y = row, pixels) from ``image`` [y, x].

    Returns ``(boxes, off_edge)``: float32 ``(n, out_size, out_size)`` (or ``(n, box_px, box_px)``
    with ``out_size=None``) and a bool ``(n,)`` flag for boxes that ran off the edge and were
    padded (``pad``: "mean" = mean of the box's in-image pixels, "reflect" = mirrored micrograph).
    Vectorised: one fancy-indexing gather per chunk of boxes.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"image must be 2D [y, x], got shape {img.shape}")
    if pad not in ("mean", "reflect"):
        raise ValueError(f"pad must be 'mean' or 'reflect', got {pad!r}")
    b = int(box_px)
    if b < 2:
        raise InputError(None, f"box size must be at least 2 pixels, got {box_px}")
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    ny, nx = img.shape
    n = pts.shape[0]
    off = np.arange(b) - b // 2
    cx = np.rint(pts[:, 0]).astype(np.int64)
    cy = np.rint(pts[:, 1]).astype(np.int64)
    off_edge = (cx + off[0] < 0) | (cy + off[0] < 0) | (cx + off[-1] >= nx) | (cy + off[-1] >= ny)
    raw = np.empty((n, b, b), np.float32)
    step = max(1, _CHUNK_PIXELS // (b * b))
    for s in range(0, n, step):
        ix = cx[s:s + step, None] + off[None, :]                       # (m, b) columns
        iy = cy[s:s + step, None] + off[None, :]                       # (m, b) rows
        if pad == "reflect":
            ixr, iyr = _reflect(ix, nx), _reflect(iy, ny)
            raw[s:s + step] = img[iyr[:, :, None], ixr[:, None, :]]
        else:
            okx = (ix >= 0) & (ix < nx)
            oky = (iy >= 0) & (iy < ny)
            vals = img[np.clip(iy, 0, ny - 1)[:, :, None], np.clip(ix, 0, nx - 1)[:, None, :]]
            ok = oky[:, :, None] & okx[:, None, :]
            cnt = ok.sum(axis=(1, 2))
            mean = np.where(cnt > 0, np.where(ok, vals, 0).sum(axis=(1, 2)) / np.maximum(cnt, 1), float(img.mean()))
            raw[s:s + step] = np.where(ok, vals, mean[:, None, None].astype(np.float32))
    if out_size is None:
        return raw, off_edge
    return resample_boxes(raw, int(out_size)), off_edge


def _reflect(i: np.ndarray, n: int) -> np.ndarray:
    """Mirror indices into [0, n) (``numpy.pad(mode="reflect")`` convention, edge pixel not repeated)."""
    if n == 1:
        return np.zeros_like(i)
    period = 2 * (n - 1)
    j = np.mod(i, period)
    return np.where(j >= n, period - j, j)


# --------------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------------
def read_image(path: PathLike, pixel_size: Optional[float] = None) -> Tuple[np.ndarray, Optional[float]]:
    """Read one micrograph (MRC, or an 8/16-bit PNG/JPEG/TIFF): the picking engine's reader,
    :func:`deepqs.picking.preprocess.read_image` (``(image float32 [y, x], pixel_size_A or None)``;
    InputError for missing, unreadable, non-2D, constant or non-finite images)."""
    from deepqs.picking.preprocess import read_image as _read

    return _read(path, pixel_size)


def parse_image_name(value: str) -> Tuple[int, str]:
    """RELION ``_rlnImageName`` ``"12@Particles/stack.mrcs"`` -> ``(11, "Particles/stack.mrcs")`` (0-based)."""
    text = str(value).strip()
    if "@" not in text:
        return 0, text
    num, path = text.split("@", 1)
    try:
        k = int(num)
    except ValueError:
        raise ValueError(f"bad image number in {text!r}") from None
    if k < 1:
        raise ValueError(f"image numbers start at 1, got {text!r}")
    return k - 1, path


def _check_pixel_size(path: str, ps: float, ref: Optional[float], ref_path: Optional[str]) -> None:
    if ref is not None and abs(ps - ref) > 0.01 * ref:
        raise InputError(path, f"pixel size {ps:.4g} Å differs from {ref:.4g} Å of {os.path.basename(ref_path or '')}; "
                               "give particles of one pixel size (or --pixel-size when the headers are wrong)")


def _resolve_stack_path(name: str, star_dir: str) -> Optional[str]:
    for cand in (name, os.path.join(star_dir, name), os.path.join(star_dir, os.path.basename(name))):
        if os.path.isfile(cand):
            return cand
    return None


def read_particle_boxes(path: PathLike, out_size: int = 64, pixel_size: Optional[float] = None) -> BoxSet:
    """Read particle images from an MRC stack (``.mrcs``/``.mrc``) or a RELION particle ``.star``.

    ``.star``: ``_rlnImageName`` rows ``k@stack.mrcs`` (k from 1); stack paths are tried as
    written, relative to the .star folder, and by file name in the .star folder.  Each stack is read
    once.  ``_rlnMicrographName`` and ``_rlnCoordinateX/Y`` are kept when present.  All images must
    be square and share one pixel size (±1 %); ``pixel_size`` (Å) overrides the headers.
    Raises InputError (one line, naming the file) for empty stacks, unreadable or missing files,
    bad image numbers and mixed pixel sizes.
    """
    from deepqs.io import read_stack

    p = check_input_file(path, "particle stack or .star file", allow_empty=False)
    if p.lower().endswith(".star"):
        return _read_star_particles(p, out_size, pixel_size)
    imgs, ps = read_stack(p, pixel_size=pixel_size, mmap=True)
    if imgs.shape[0] == 0:
        raise InputError(p, "empty particle stack (0 images)")
    if imgs.shape[1] != imgs.shape[2]:
        raise InputError(p, f"particle images must be square, got {imgs.shape[2]} x {imgs.shape[1]} pixels")
    n = imgs.shape[0]
    boxes = resample_boxes(np.asarray(imgs), out_size)
    return BoxSet(boxes, np.zeros(n, bool), np.full(n, "", dtype=object), np.full(n, np.nan), np.full(n, np.nan),
                  np.arange(n, dtype=np.int64), float(ps), int(imgs.shape[1]), {"kind": "stack", "path": p})


def _read_star_particles(p: str, out_size: int, pixel_size: Optional[float]) -> BoxSet:
    import pandas as pd
    import starfile

    from deepqs.io import read_stack

    try:
        blocks = starfile.read(p, always_dict=True)
    except Exception as exc:
        raise InputError(p, f"cannot parse the STAR file ({type(exc).__name__}: {exc})") from None
    tables = {k: v for k, v in blocks.items() if isinstance(v, pd.DataFrame) and "rlnImageName" in v.columns}
    if not tables:
        raise InputError(p, "no _rlnImageName column: not a RELION particle .star file")
    name = "particles" if "particles" in tables else next(iter(tables))
    df = tables[name].reset_index(drop=True)
    if len(df) == 0:
        raise InputError(p, "the particle table is empty (0 rows)")
    star_dir = os.path.dirname(os.path.abspath(p))
    try:
        parsed = [parse_image_name(v) for v in df["rlnImageName"].astype(str)]
    except ValueError as exc:
        raise InputError(p, f"_rlnImageName: {exc}") from None
    sections = np.array([k for k, _ in parsed], dtype=np.int64)
    names = np.array([s for _, s in parsed], dtype=object)
    n = len(df)
    boxes: Optional[np.ndarray] = None
    ref_ps: Optional[float] = None
    ref_path: Optional[str] = None
    box_px: Optional[int] = None
    for stack_name in dict.fromkeys(names):                 # per stack file (few), not per particle
        sp = _resolve_stack_path(stack_name, star_dir)
        if sp is None:
            raise InputError(p, f"particle stack {stack_name!r} not found (tried as written and beside the .star)")
        imgs, ps = read_stack(sp, pixel_size=pixel_size, mmap=True)
        _check_pixel_size(sp, ps, ref_ps, ref_path)
        ref_ps, ref_path = (ps, sp) if ref_ps is None else (ref_ps, ref_path)
        if imgs.shape[1] != imgs.shape[2]:
            raise InputError(sp, f"particle images must be square, got {imgs.shape[2]} x {imgs.shape[1]} pixels")
        if box_px is not None and imgs.shape[1] != box_px:
            raise InputError(sp, f"box size {imgs.shape[1]} px differs from {box_px} px of the other stacks")
        box_px = int(imgs.shape[1])
        rows = np.nonzero(names == stack_name)[0]
        sec = sections[rows]
        if sec.max() >= imgs.shape[0]:
            raise InputError(p, f"image {int(sec.max()) + 1}@{stack_name} requested but the stack holds "
                                f"{imgs.shape[0]}")
        if boxes is None:
            boxes = np.empty((n, out_size, out_size), np.float32)
        boxes[rows] = resample_boxes(np.asarray(imgs[sec]), out_size)
    mic = (df["rlnMicrographName"].astype(str).to_numpy(dtype=object) if "rlnMicrographName" in df.columns
           else np.full(n, "", dtype=object))

    def col(c: str) -> np.ndarray:
        if c not in df.columns:
            return np.full(n, np.nan)
        return pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64)

    src = {"kind": "star", "path": p, "blocks": blocks, "block": name}
    return BoxSet(boxes, np.zeros(n, bool), mic, col("rlnCoordinateX"), col("rlnCoordinateY"),
                  np.arange(n, dtype=np.int64), ref_ps, box_px, src)


def read_micrograph_boxes(micrographs: Sequence[PathLike], coordinate_files: Sequence[PathLike], box_px: int,
                          out_size: int = 64, pixel_size: Optional[float] = None, pad: str = "mean",
                          warn=None) -> BoxSet:
    """Boxes of ``box_px`` micrograph pixels around every coordinate of ``coordinate_files``.

    Coordinate files are matched to micrographs by :func:`deepqs.io.micrograph_key` (file stem):
    one file per micrograph (.box, .csv, RELION coordinate .star) by the file's own stem, or by the
    longest micrograph stem it starts with followed by "_" (``mic01_autopick.star`` -> ``mic01``),
    multi-micrograph files (.star with ``_rlnMicrographName``, Topaz .txt, .cs) by the names they hold.
    Items come out grouped by coordinate file, in file order.  Coordinates naming no given
    micrograph are reported through ``warn(message)`` and counted in ``source["unmatched"]``.
    Micrographs must share one pixel size (±1 %) unless ``pixel_size`` overrides.
    """
    from deepqs.io.coords import coordinate_format, match_coordinate_files

    if not micrographs:
        raise InputError(None, "no micrographs given")
    if not coordinate_files:
        raise InputError(None, "no coordinate files given")
    mic_by_key, groups, unmatched = match_coordinate_files(micrographs, coordinate_files, warn)
    items = [(cfp, coordinate_format(cfp), key, c) for cfp, key, c in groups]
    cache: Dict[str, Tuple[np.ndarray, Optional[float]]] = {}
    ref_ps: Optional[float] = None
    ref_path: Optional[str] = None
    parts, flags, mics, xs, ys, idx = [], [], [], [], [], []
    for cfp, fmt, key, c in items:                       # per (file, micrograph) group
        mpath = mic_by_key[key]
        if mpath not in cache:
            img, ps = read_image(mpath, pixel_size)
            if ps is not None:
                _check_pixel_size(mpath, ps, ref_ps, ref_path)
                ref_ps, ref_path = (ps, mpath) if ref_ps is None else (ref_ps, ref_path)
            cache = {mpath: (img, ps)}                   # keep one micrograph in memory
        img = cache[mpath][0]
        b, f = extract_boxes(img, c.xy, box_px, out_size, pad)
        parts.append(b)
        flags.append(f)
        mics.append(np.full(len(c), key, dtype=object))
        xs.append(c.x)
        ys.append(c.y)
        idx.append(np.arange(len(c), dtype=np.int64))
    if not items and unmatched:
        raise InputError(None, f"no coordinates match the given micrographs by file name ({sum(unmatched.values())} "
                               f"coordinates of {', '.join(sorted(unmatched)[:3])}{', ...' if len(unmatched) > 3 else ''})")
    boxes = np.concatenate(parts) if parts else np.zeros((0, out_size, out_size), np.float32)
    cat = (lambda a, dt: np.concatenate(a) if a else np.zeros(0, dt))
    src = {"kind": "coordinates", "groups": [(cfp, fmt, key, c) for cfp, fmt, key, c in items], "unmatched": unmatched}
    return BoxSet(boxes, cat(flags, bool), cat(mics, object), cat(xs, np.float64), cat(ys, np.float64),
                  cat(idx, np.int64), ref_ps, int(box_px), src)
