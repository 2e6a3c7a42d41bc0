"""Particle coordinates: EMAN2 .box, RELION .star, Topaz .txt, cryoSPARC .cs and plain .csv.

Convention (see ``CONVENTIONS.md``): every coordinate in memory is a particle **centre** in
pixels of the original micrograph, ``x`` = column and ``y`` = row of the ``[y, x]`` array,
pixel centres at integers.

File formats:

* EMAN2 ``.box``: ``x_corner y_corner w h [score]`` per line (whitespace separated); the
  centre is ``corner + (w/2, h/2)`` on reading and the corner ``centre - size/2`` on writing.
  An existing empty file means zero particles; a malformed row is an error.
* RELION ``.star``: ``_rlnCoordinateX/Y`` (centres), optional ``_rlnAutopickFigureOfMerit``
  (score) and ``_rlnMicrographName``; coordinate files, RELION 3.0 particle files (one loop)
  and 3.1+ files (``data_optics`` + ``data_particles``).  ``_rlnOriginX/Y(Angst)`` shifts of
  refined particles are **not** applied.  Written as RELION 3.1 coordinate files.
* Topaz ``.txt``: tab-separated, header ``image_name x_coord y_coord [score]``; centres.
* cryoSPARC ``.cs`` (read only): a numpy structured array; centre =
  ``(center_x_frac * width, center_y_frac * height)`` with ``location/micrograph_shape`` =
  (height, width).  Loaded with ``allow_pickle=False``.
* ``.csv``: header line with ``x,y`` and optional ``score`` and ``micrograph`` columns
  (centres), e.g. the CryoPPP-derived centres in ``shared/data/picking``.

y flip: some data sets store y flipped relative to the micrograph array.  Nothing is
guessed: readers take ``flip_y=True`` with the micrograph height ``H`` (pixels) and map
``y -> H - 1 - y``.  With pixel centres at integers this is exactly the row mapping of
``numpy.flipud`` (row ``r`` of an ``H``-row image becomes row ``H - 1 - r``).  Use
:func:`fraction_on_density` / :func:`y_flip_report` to check which way fits a micrograph.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from deepqs.errors import InputError, PathLike, check_input_file
from deepqs.io.atomic import atomic_output

__all__ = [
    "COORDINATE_FORMATS",
    "Coordinates",
    "coordinate_format",
    "read_coordinates",
    "read_coordinates_by_micrograph",
    "write_coordinates",
    "micrograph_key",
    "flip_y_coordinates",
    "fraction_on_density",
    "y_flip_report",
]

#: Format names accepted by ``fmt`` arguments.
COORDINATE_FORMATS = ("box", "star", "topaz", "cs", "csv")

_EXT_FORMATS = {".box": "box", ".star": "star", ".cs": "cs", ".txt": "topaz", ".tsv": "topaz", ".csv": "csv"}
_NPY_MAGIC = b"\x93NUMPY"


@dataclass
class Coordinates:
    """Particle centres on one micrograph.

    Attributes
    ----------
    x, y : ndarray float64, shape (n,)
        Centres in pixels of the original micrograph (x = column, y = row).
    score : ndarray float64 (n,) or None
        Picker score (figure of merit), when the file has one.
    micrograph : str or None
        Micrograph name as written in the file (None when the file does not say).
    box_size : float or None
        Box size in pixels, when the file records one (EMAN2 .box); used when writing .box.
    """

    x: np.ndarray
    y: np.ndarray
    score: Optional[np.ndarray] = None
    micrograph: Optional[str] = None
    box_size: Optional[float] = None

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float64).reshape(-1)
        self.y = np.asarray(self.y, dtype=np.float64).reshape(-1)
        if self.x.shape != self.y.shape:
            raise ValueError(f"x and y differ in length ({self.x.size} vs {self.y.size})")
        if self.score is not None:
            self.score = np.asarray(self.score, dtype=np.float64).reshape(-1)
            if self.score.shape != self.x.shape:
                raise ValueError(f"score has {self.score.size} values for {self.x.size} coordinates")

    def __len__(self) -> int:
        return int(self.x.size)

    @property
    def xy(self) -> np.ndarray:
        """(n, 2) array of (x, y) centres in pixels."""
        return np.stack([self.x, self.y], axis=1)

    def select(self, mask: np.ndarray) -> "Coordinates":
        """A new ``Coordinates`` with the rows that ``mask`` (bool or index array) selects."""
        return Coordinates(
            self.x[mask], self.y[mask], None if self.score is None else self.score[mask], self.micrograph, self.box_size
        )

    def scaled(self, factor: float) -> "Coordinates":
        """Coordinates multiplied by ``factor`` (e.g. to move between binned and original pixels)."""
        box = None if self.box_size is None else self.box_size * factor
        return Coordinates(self.x * factor, self.y * factor, self.score, self.micrograph, box)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def micrograph_key(name: str) -> str:
    """File name without folder and extension (``"Movies/mic_01.mrc"`` -> ``"mic_01"``).

    Topaz names micrographs without extension and RELION with a path; compare through this key.
    """
    base = os.path.basename(str(name).replace("\\", "/"))
    for ext in (".gz", ".bz2"):
        if base.lower().endswith(ext):
            base = base[: -len(ext)]
    stem, ext = os.path.splitext(base)
    return stem if ext else base


def _fmt_num(v: float) -> str:
    """Compact text for a coordinate: up to 3 decimals, no trailing zeros (``12.5``, ``100``)."""
    s = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def flip_y_coordinates(coords: Coordinates, micrograph_height: int) -> Coordinates:
    """Return ``coords`` with ``y -> micrograph_height - 1 - y`` (pixel centres at integers)."""
    h = float(micrograph_height)
    return Coordinates(coords.x.copy(), h - 1.0 - coords.y, coords.score, coords.micrograph, coords.box_size)


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InputError(path, f"cannot read the file ({exc})") from None
    if b"\x00" in raw:
        raise InputError(path, "binary content, not a text coordinate file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _check_exists(path: PathLike) -> str:
    return check_input_file(path, "coordinate file")


def coordinate_format(path: PathLike) -> str:
    """Coordinate format of ``path``: by extension, else by content.  InputError when unknown."""
    p = _check_exists(path)
    ext = os.path.splitext(p)[1].lower()
    if ext in _EXT_FORMATS and ext != ".txt":
        return _EXT_FORMATS[ext]
    with open(p, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(_NPY_MAGIC):
        return "cs"
    text = head.decode("latin-1")
    if "_rlnCoordinateX" in text or "data_" in text and "_rln" in text:
        return "star"
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if lines:
        first = lines[0].lower()
        if "image_name" in first and "x_coord" in first:
            return "topaz"
        if "," in first and {"x", "y"} <= {c.strip() for c in first.split(",")}:
            return "csv"
        try:
            vals = [float(v) for v in lines[0].split()]
            if len(vals) in (4, 5):
                return "box"
        except ValueError:
            pass
    elif ext == ".txt":
        return "topaz"
    raise InputError(p, "unknown coordinate format (expected EMAN2 .box, RELION .star, Topaz .txt, cryoSPARC .cs or .csv)")


def _numeric_rows(path: str, rows: List[Tuple[int, List[str]]], ncols: Sequence[int], what: str) -> np.ndarray:
    """Parse whitespace-split rows into a float array; InputError names the bad line."""
    if not rows:
        return np.zeros((0, max(ncols)), dtype=np.float64)
    width = len(rows[0][1])
    if width not in ncols:
        raise InputError(path, f"line {rows[0][0]}: {width} columns, a {what} row has {' or '.join(map(str, ncols))}")
    out = np.empty((len(rows), width), dtype=np.float64)
    for k, (lineno, fields) in enumerate(rows):
        if len(fields) != width:
            raise InputError(path, f"line {lineno}: {len(fields)} columns where the file has {width}")
        try:
            out[k] = [float(f) for f in fields]
        except ValueError:
            raise InputError(path, f"line {lineno}: non-numeric value in {' '.join(fields)!r}") from None
    if not np.all(np.isfinite(out)):
        bad = int(np.nonzero(~np.all(np.isfinite(out), axis=1))[0][0])
        raise InputError(path, f"line {rows[bad][0]}: NaN or infinite value")
    return out


# --------------------------------------------------------------------------------------------
# readers, one per format; each returns {key: Coordinates} in file order
# --------------------------------------------------------------------------------------------
def _read_box(path: str) -> Dict[str, Coordinates]:
    text = _read_text(path)
    rows = [
        (i + 1, ln.split())
        for i, ln in enumerate(text.splitlines())
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    arr = _numeric_rows(path, rows, (4, 5), "EMAN2 .box (x y w h [score])")
    w, h = arr[:, 2], arr[:, 3]
    if np.any(w <= 0) or np.any(h <= 0):
        bad = int(np.nonzero((w <= 0) | (h <= 0))[0][0])
        raise InputError(path, f"line {rows[bad][0]}: box width and height must be positive")
    box = float(w[0]) if arr.shape[0] and np.all(w == w[0]) and np.all(h == w[0]) else None
    score = arr[:, 4] if arr.shape[1] == 5 else None
    c = Coordinates(arr[:, 0] + w / 2.0, arr[:, 1] + h / 2.0, score, None, box)
    return {micrograph_key(path): c}


def _star_blocks(path: str) -> Dict[str, "object"]:
    import pandas as pd
    import starfile

    text = _read_text(path)
    if not text.strip():
        return {}
    if "data_" not in text:
        raise InputError(path, "not a STAR file (no data_ block)")
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as exc:
        raise InputError(path, f"cannot parse the STAR file ({type(exc).__name__}: {exc})") from None
    out: Dict[str, object] = {}
    for name, blk in blocks.items():
        if isinstance(blk, dict):  # a key/value (non-loop) block: one row
            blk = pd.DataFrame({k: [v] for k, v in blk.items()})
        out[name] = blk
    return out


def _read_star(path: str) -> Dict[str, Coordinates]:
    import pandas as pd

    blocks = _star_blocks(path)
    if not blocks:
        return {}
    cand = [(n, b) for n, b in blocks.items() if "rlnCoordinateX" in b.columns or "rlnCoordinateY" in b.columns]
    if not cand:
        names = ", ".join(f"data_{n}" for n in blocks)
        raise InputError(path, f"no _rlnCoordinateX/_rlnCoordinateY columns in any block ({names})")
    pref = [c for c in cand if c[0] == "particles"]
    name, df = (pref or cand)[0]
    for col in ("rlnCoordinateX", "rlnCoordinateY"):
        if col not in df.columns:
            raise InputError(path, f"data_{name} lacks the _{col} column")

    def numeric(col: str) -> np.ndarray:
        vals = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(vals)
        if bad.any():
            k = int(np.nonzero(bad)[0][0])
            raise InputError(path, f"data_{name} row {k + 1}: _{col} is missing or not a number ({df[col].iloc[k]!r})")
        return vals

    x = numeric("rlnCoordinateX")
    y = numeric("rlnCoordinateY")
    score = numeric("rlnAutopickFigureOfMerit") if "rlnAutopickFigureOfMerit" in df.columns else None
    if "rlnMicrographName" not in df.columns:
        return {micrograph_key(path): Coordinates(x, y, score, None)}
    mics = df["rlnMicrographName"].astype(str).to_numpy()
    return _group(mics, x, y, score)


def _group(
    mics: np.ndarray, x: np.ndarray, y: np.ndarray, score: Optional[np.ndarray], height: Optional[np.ndarray] = None
) -> Dict[str, Coordinates]:
    """Split per-particle arrays by micrograph name, keeping the order of first appearance."""
    if mics.size == 0:
        return {}
    uniq, first, inverse = np.unique(mics, return_index=True, return_inverse=True)
    out: Dict[str, Coordinates] = {}
    for k in np.argsort(first, kind="stable"):
        sel = inverse == k
        name = str(uniq[k])
        out[name] = Coordinates(x[sel], y[sel], None if score is None else score[sel], name)
    return out


def _read_topaz(path: str) -> Dict[str, Coordinates]:
    text = _read_text(path)
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if not lines:
        return {}
    lineno, header = lines[0]
    split = (lambda s: s.rstrip("\r\n").split("\t")) if "\t" in header else (lambda s: s.split())
    cols = [c.strip() for c in split(header)]
    missing = [c for c in ("image_name", "x_coord", "y_coord") if c not in cols]
    if missing:
        raise InputError(path, f"line {lineno}: Topaz header must name image_name, x_coord, y_coord; missing {missing}")
    ix, iy, iname = cols.index("x_coord"), cols.index("y_coord"), cols.index("image_name")
    iscore = cols.index("score") if "score" in cols else None
    names: List[str] = []
    vals: List[Tuple[int, List[str]]] = []
    for ln_no, ln in lines[1:]:
        fields = [f.strip() for f in split(ln)]
        if len(fields) != len(cols):
            raise InputError(path, f"line {ln_no}: {len(fields)} columns where the header has {len(cols)}")
        names.append(fields[iname])
        keep = [fields[ix], fields[iy]] + ([fields[iscore]] if iscore is not None else [])
        vals.append((ln_no, keep))
    arr = _numeric_rows(path, vals, (3,) if iscore is not None else (2,), "Topaz")
    score = arr[:, 2] if iscore is not None else None
    return _group(np.array(names, dtype=str), arr[:, 0], arr[:, 1], score)


def _read_csv(path: str) -> Dict[str, Coordinates]:
    text = _read_text(path)
    if not text.strip():
        return {}
    reader = csv.reader(io.StringIO(text))
    rows = [(i + 1, r) for i, r in enumerate(reader) if r and any(f.strip() for f in r)]
    lineno, header = rows[0]
    cols = [c.strip().lower() for c in header]
    if "x" not in cols or "y" not in cols:
        raise InputError(path, f"line {lineno}: CSV header must name columns x and y, found {header}")
    ix, iy = cols.index("x"), cols.index("y")
    iscore = cols.index("score") if "score" in cols else None
    imic = cols.index("micrograph") if "micrograph" in cols else None
    vals: List[Tuple[int, List[str]]] = []
    names: List[str] = []
    for ln_no, r in rows[1:]:
        if len(r) != len(cols):
            raise InputError(path, f"line {ln_no}: {len(r)} columns where the header has {len(cols)}")
        vals.append((ln_no, [r[ix], r[iy]] + ([r[iscore]] if iscore is not None else [])))
        if imic is not None:
            names.append(r[imic].strip())
    arr = _numeric_rows(path, vals, (3,) if iscore is not None else (2,), "CSV")
    score = arr[:, 2] if iscore is not None else None
    if imic is None:
        return {micrograph_key(path): Coordinates(arr[:, 0], arr[:, 1], score, None)}
    return _group(np.array(names, dtype=str), arr[:, 0], arr[:, 1], score)


def _read_cs(path: str) -> Tuple[Dict[str, Coordinates], Dict[str, int]]:
    """cryoSPARC .cs -> ({micrograph: Coordinates}, {micrograph: height in pixels})."""
    with open(path, "rb") as fh:
        if fh.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
            raise InputError(path, "not a cryoSPARC .cs file (no numpy array header)")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise InputError(
                path, "holds pickled Python objects (object-typed columns); refusing to unpickle. "
                "Re-export the particles with string columns (e.g. cryosparc-tools)"
            ) from None
        raise InputError(path, f"not a cryoSPARC .cs file (numpy array) ({exc})") from None
    except (OSError, EOFError) as exc:
        raise InputError(path, f"not a cryoSPARC .cs file (numpy array) ({exc})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.names is None:
        raise InputError(path, "not a cryoSPARC .cs file (no named fields)")
    need = ["location/center_x_frac", "location/center_y_frac", "location/micrograph_shape"]
    missing = [f for f in need if f not in arr.dtype.names]
    if missing:
        raise InputError(path, f"cryoSPARC .cs file lacks the field(s) {missing}")
    arr = arr.reshape(-1)
    shape = np.asarray(arr["location/micrograph_shape"], dtype=np.float64).reshape(arr.size, -1)
    if shape.shape[1] != 2:
        raise InputError(path, "location/micrograph_shape must hold (height, width) per particle")
    height, width = shape[:, 0], shape[:, 1]
    fx = np.asarray(arr["location/center_x_frac"], dtype=np.float64)
    fy = np.asarray(arr["location/center_y_frac"], dtype=np.float64)
    if not (np.all(np.isfinite(fx)) and np.all(np.isfinite(fy))):
        raise InputError(path, "non-finite centre fractions")
    x, y = fx * width, fy * height
    score = None
    if "pick_stats/ncc_score" in arr.dtype.names:
        score = np.asarray(arr["pick_stats/ncc_score"], dtype=np.float64)
    if "location/micrograph_path" in arr.dtype.names:
        raw_names = arr["location/micrograph_path"]
        mics = np.array([n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in raw_names.tolist()], dtype=str)
    else:
        mics = np.full(arr.size, micrograph_key(path))
    groups = _group(mics, x, y, score)
    heights: Dict[str, int] = {}
    for name in groups:
        heights[name] = int(height[mics == name][0])
    return groups, heights


# --------------------------------------------------------------------------------------------
# public readers / writers
# --------------------------------------------------------------------------------------------
def read_coordinates_by_micrograph(
    path: PathLike,
    fmt: Optional[str] = None,
    flip_y: bool = False,
    micrograph_height: Optional[Union[int, Mapping[str, int]]] = None,
) -> Dict[str, Coordinates]:
    """Read a coordinate file as ``{micrograph: Coordinates}`` (file order).

    The key is the micrograph name written in the file (RELION ``_rlnMicrographName``, Topaz
    ``image_name``, cryoSPARC ``location/micrograph_path``, CSV ``micrograph``); for files that
    do not name it (.box, RELION coordinate files) the key is the coordinate file's name without
    extension and ``Coordinates.micrograph`` is None.  An existing empty file is valid and holds
    zero particles (``{}``, or one empty entry for .box files); malformed content raises InputError.

    ``fmt``: one of :data:`COORDINATE_FORMATS`, else detected from the extension and content.
    ``flip_y``: map ``y -> H - 1 - y`` with ``H = micrograph_height`` (pixels; an int, or a
    dict by micrograph name/key).  cryoSPARC files know their heights, so ``H`` may be omitted.
    """
    p = _check_exists(path)
    fmt = coordinate_format(p) if fmt is None else fmt.lower()
    heights: Dict[str, int] = {}
    if fmt == "box":
        groups = _read_box(p)
    elif fmt == "star":
        groups = _read_star(p)
    elif fmt == "topaz":
        groups = _read_topaz(p)
    elif fmt == "csv":
        groups = _read_csv(p)
    elif fmt == "cs":
        groups, heights = _read_cs(p)
    else:
        raise ValueError(f"unknown coordinate format {fmt!r}; use one of {COORDINATE_FORMATS}")
    if flip_y:
        out: Dict[str, Coordinates] = {}
        for name, c in groups.items():
            h = _height_for(name, micrograph_height, heights)
            if h is None:
                raise InputError(p, "flip_y needs the micrograph height in pixels (micrograph_height=...)")
            out[name] = flip_y_coordinates(c, h)
        groups = out
    return groups


def match_coordinate_files(micrographs: Sequence[PathLike], coordinate_files: Sequence[PathLike],
                           warn: Optional[Callable[[str], None]] = None):
    """Pair coordinate groups with micrographs by file stem.

    Returns ``(mic_by_key, groups, unmatched)``: ``{key: micrograph path}``, a list of
    ``(coordinate file, key, Coordinates)`` in file order, and ``{key: n}`` of coordinates that
    name no given micrograph (also reported through ``warn``).  One file per micrograph is
    matched by its own stem, or by the longest micrograph stem it starts with followed by "_"
    (``mic01_autopick.star`` -> ``mic01``); multi-micrograph files by the names they hold.
    """
    mic_by_key: Dict[str, str] = {}
    for m in micrographs:
        key = micrograph_key(os.fspath(m))
        if key in mic_by_key:
            raise InputError(os.fspath(m), f"two micrographs share the name {key!r}")
        mic_by_key[key] = os.fspath(m)
    groups, unmatched = [], {}
    for cf in coordinate_files:
        cfp = os.fspath(cf)
        for name, c in read_coordinates_by_micrograph(cfp).items():
            key = micrograph_key(name)
            if key not in mic_by_key and c.micrograph is None:
                prefixes = [k for k in mic_by_key if key.startswith(k + "_")]
                key = max(prefixes, key=len) if prefixes else key
            if key not in mic_by_key:
                unmatched[key] = unmatched.get(key, 0) + len(c)
                if warn is not None and len(c):
                    warn(f"{cfp}: {len(c)} coordinates of micrograph {key!r} match no given micrograph; skipped")
                continue
            groups.append((cfp, key, c))
    return mic_by_key, groups, unmatched


def _height_for(name: str, micrograph_height, heights: Mapping[str, int]) -> Optional[int]:
    if micrograph_height is None:
        return heights.get(name)
    if isinstance(micrograph_height, Mapping):
        if name in micrograph_height:
            return int(micrograph_height[name])
        return micrograph_height.get(micrograph_key(name), heights.get(name))  # type: ignore[return-value]
    return int(micrograph_height)


def read_coordinates(
    path: PathLike,
    fmt: Optional[str] = None,
    flip_y: bool = False,
    micrograph_height: Optional[Union[int, Mapping[str, int]]] = None,
    micrograph: Optional[str] = None,
) -> Coordinates:
    """Read the coordinates of **one** micrograph (see :func:`read_coordinates_by_micrograph`).

    ``micrograph`` selects one micrograph of a multi-micrograph file (matched by exact name or
    by :func:`micrograph_key`); without it a file naming several micrographs is refused.  An
    empty file gives zero coordinates.
    """
    groups = read_coordinates_by_micrograph(path, fmt, flip_y, micrograph_height)
    p = os.fspath(path)
    if micrograph is not None:
        if micrograph in groups:
            return groups[micrograph]
        key = micrograph_key(micrograph)
        hits = [c for n, c in groups.items() if micrograph_key(n) == key]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            return Coordinates(np.zeros(0), np.zeros(0), None, micrograph)
        raise InputError(p, f"several micrographs match {micrograph!r}")
    if not groups:
        return Coordinates(np.zeros(0), np.zeros(0))
    if len(groups) > 1:
        names = list(groups)
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise InputError(p, f"holds coordinates for {len(names)} micrographs ({shown}); choose one (micrograph=...)")
    return next(iter(groups.values()))


def _as_groups(coords: Union[Coordinates, Mapping[str, Coordinates]], path: str) -> Dict[str, Coordinates]:
    if isinstance(coords, Coordinates):
        return {coords.micrograph or micrograph_key(path): coords}
    return dict(coords)


def write_coordinates(
    path: PathLike,
    coords: Union[Coordinates, Mapping[str, Coordinates]],
    fmt: Optional[str] = None,
    box_size: Optional[float] = None,
) -> None:
    """Write coordinates atomically; ``fmt`` defaults from the extension.

    * ``box``: one micrograph; needs ``box_size`` (pixels) or ``coords.box_size``; corner =
      centre - size/2; 5th column = score when present.
    * ``star``: RELION 3.1 coordinate file (``# version 30001``, ``data_``, loop with
      ``_rlnCoordinateX/Y`` and, when present, ``_rlnAutopickFigureOfMerit``; a mapping of
      several micrographs adds ``_rlnMicrographName``).
    * ``topaz``: tab-separated ``image_name x_coord y_coord [score]`` (image names as
      :func:`micrograph_key`).
    * ``csv``: ``x,y[,score][,micrograph]``.

    Writing cryoSPARC .cs is not supported.
    """
    p = os.fspath(path)
    if fmt is None:
        ext = os.path.splitext(p)[1].lower()
        if ext not in _EXT_FORMATS:
            raise ValueError(f"cannot tell the coordinate format from {p!r}; pass fmt=")
        fmt = _EXT_FORMATS[ext]
    fmt = fmt.lower()
    groups = _as_groups(coords, p)
    has_score = bool(groups) and all(c.score is not None for c in groups.values())
    lines: List[str] = []
    if fmt == "box":
        if len(groups) > 1:
            raise ValueError("an EMAN2 .box file holds one micrograph; write one file per micrograph")
        c = next(iter(groups.values())) if groups else Coordinates(np.zeros(0), np.zeros(0))
        size = box_size if box_size is not None else c.box_size
        if size is None or not size > 0:
            raise ValueError("writing .box needs a positive box_size (pixels)")
        half = size / 2.0
        for i in range(len(c)):
            row = [_fmt_num(c.x[i] - half), _fmt_num(c.y[i] - half), _fmt_num(size), _fmt_num(size)]
            if c.score is not None:
                row.append("%.6f" % c.score[i])
            lines.append("\t".join(row))
    elif fmt == "star":
        multi = not isinstance(coords, Coordinates) or coords.micrograph is not None
        labels = ["rlnCoordinateX", "rlnCoordinateY"] + (["rlnAutopickFigureOfMerit"] if has_score else [])
        labels += ["rlnMicrographName"] if multi else []
        lines += ["", "# version 30001", "", "data_", "", "loop_"]
        lines += [f"_{lab} #{i + 1}" for i, lab in enumerate(labels)]
        for name, c in groups.items():
            for i in range(len(c)):
                row = ["%12.6f" % c.x[i], "%12.6f" % c.y[i]]
                if has_score:
                    row.append("%12.6f" % c.score[i])  # type: ignore[index]
                if multi:
                    row.append(_star_value(name))
                lines.append(" ".join(row))
        lines.append("")
    elif fmt == "topaz":
        lines.append("\t".join(["image_name", "x_coord", "y_coord"] + (["score"] if has_score else [])))
        for name, c in groups.items():
            key = micrograph_key(name)
            for i in range(len(c)):
                row = [key, _fmt_num(c.x[i]), _fmt_num(c.y[i])]
                if has_score:
                    row.append("%.6f" % c.score[i])  # type: ignore[index]
                lines.append("\t".join(row))
    elif fmt == "csv":
        named = len(groups) > 1 or any(c.micrograph for c in groups.values())
        lines.append(",".join(["x", "y"] + (["score"] if has_score else []) + (["micrograph"] if named else [])))
        for name, c in groups.items():
            for i in range(len(c)):
                row = [_fmt_num(c.x[i]), _fmt_num(c.y[i])]
                if has_score:
                    row.append("%.6f" % c.score[i])  # type: ignore[index]
                if named:
                    row.append(name)
                lines.append(",".join(row))
    elif fmt == "cs":
        raise ValueError("writing cryoSPARC .cs files is not supported")
    else:
        raise ValueError(f"unknown coordinate format {fmt!r}; use one of {COORDINATE_FORMATS}")
    text = "\n".join(lines) + ("\n" if lines and lines[-1] != "" else "")
    with atomic_output(p) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)


def _star_value(s: str) -> str:
    if not s or any(ch.isspace() for ch in s) or s[0] in "_#$'\"" or s.lower().startswith(("data_", "loop_")):
        return '"' + s + '"'
    return s


# --------------------------------------------------------------------------------------------
# y-flip check
# --------------------------------------------------------------------------------------------
def _disc_means(image: np.ndarray, x: np.ndarray, y: np.ndarray, radius_px: float) -> Tuple[np.ndarray, np.ndarray]:
    """Mean of ``image`` in a disc of ``radius_px`` around each (x, y) (rounded to pixels).

    Returns (means, n_pixels); pixels outside the image are left out, a disc entirely outside
    gives n_pixels = 0 and mean NaN.
    """
    hgt, wid = image.shape
    r = max(0, int(math.ceil(radius_px)))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    inside = dx * dx + dy * dy <= radius_px * radius_px + 1e-9
    dy, dx = dy[inside], dx[inside]
    cx = np.rint(x).astype(np.int64)
    cy = np.rint(y).astype(np.int64)
    means = np.full(x.size, np.nan)
    counts = np.zeros(x.size, dtype=np.int64)
    chunk = max(1, 4_000_000 // max(1, dx.size))
    for s in range(0, x.size, chunk):
        yy = cy[s : s + chunk, None] + dy[None, :]
        xx = cx[s : s + chunk, None] + dx[None, :]
        ok = (yy >= 0) & (yy < hgt) & (xx >= 0) & (xx < wid)
        vals = image[np.clip(yy, 0, hgt - 1), np.clip(xx, 0, wid - 1)]
        n = ok.sum(axis=1)
        tot = np.where(ok, vals, 0.0).sum(axis=1)
        counts[s : s + chunk] = n
        with np.errstate(invalid="ignore", divide="ignore"):
            means[s : s + chunk] = np.where(n > 0, tot / np.maximum(n, 1), np.nan)
    return means, counts


def fraction_on_density(
    micrograph: np.ndarray, coords: Coordinates, radius_px: float, particle_sign: float = -1.0
) -> float:
    """Fraction of coordinates whose local disc mean lies on the "particle" side of the median.

    For each centre, the mean of ``micrograph`` (``[y, x]``) over a disc of ``radius_px``
    pixels is compared with the median of the whole micrograph.  ``particle_sign = -1``
    (default) is for raw cryo-EM micrographs, where protein scatters more and is **darker**
    (lower values) than the ice: a coordinate is "on density" when its disc mean is below the
    median.  Use ``+1`` for images with inverted contrast (particles bright).  Centres whose
    disc lies entirely outside the image count as off density.  Returns 0.0 for no coordinates.

    It is a crude test meant for comparisons, e.g. the same picks with and without a y flip
    (:func:`y_flip_report`).
    """
    img = np.asarray(micrograph, dtype=np.float32)
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 2:
        raise ValueError(f"micrograph must be 2D [y, x], got shape {img.shape}")
    if len(coords) == 0:
        return 0.0
    means, counts = _disc_means(img, coords.x, coords.y, float(radius_px))
    ref = float(np.median(img))
    with np.errstate(invalid="ignore"):
        on = (counts > 0) & (np.sign(particle_sign) * (means - ref) > 0)
    return float(np.count_nonzero(on)) / len(coords)


def y_flip_report(
    micrograph: np.ndarray, coords: Coordinates, radius_px: float, particle_sign: float = -1.0
) -> Dict[str, float]:
    """Compare :func:`fraction_on_density` for the coordinates as given and with y flipped.

    Returns a JSON-able dict: ``fraction_on_density``, ``fraction_on_density_flipped`` and
    ``y_seems_flipped`` (True when the flipped coordinates land on density clearly more
    often: by more than 0.1).
    """
    img = np.asarray(micrograph)
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    f0 = fraction_on_density(img, coords, radius_px, particle_sign)
    f1 = fraction_on_density(img, flip_y_coordinates(coords, img.shape[0]), radius_px, particle_sign)
    return {
        "n_coordinates": len(coords),
        "fraction_on_density": f0,
        "fraction_on_density_flipped": f1,
        "y_seems_flipped": bool(f1 - f0 > 0.1),
    }
