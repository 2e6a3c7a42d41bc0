"""MRC/CCP4 maps, micrographs and particle stacks.

Conventions (see ``CONVENTIONS.md``):

* In memory a map is a float32 array indexed ``[z, y, x]`` (C order) plus ``voxel_size``
  (x, y, z) in Å/voxel and ``origin`` (x, y, z) in Å, the real-space position of voxel
  ``[0, 0, 0]`` (:class:`~deepqs.io.mapdata.MapData`).
* Axis order: whatever ``mapc/mapr/maps`` say, the array is transposed to ``[z, y, x]``.
* Voxel size: ``cella / (mx, my, mz)`` along x, y, z.  A zero, negative or NaN voxel size is
  refused unless the caller passes an override.
* Origin: the header ``origin`` (x, y, z) when it is not all zero, otherwise
  ``(nxstart, nystart, nzstart)`` (stored in column/row/section order and mapped onto x, y, z
  through ``mapc/mapr/maps``) times the voxel size.  This is what Chimera/ChimeraX and MapQ do.
* Modes 0 (int8; uint8 when IMOD's imodFlags say so), 1 (int16), 2 (float32), 6 (uint16) and
  12 (float16) are read and converted to float32; complex modes (3, 4) and packed modes are refused.
* Writers always write mode 2, ``mapc/mapr/maps = 1, 2, 3``, ``nstart = 0`` and the origin
  in the header ``origin`` field, through :func:`~deepqs.io.atomic.atomic_output`.

Every problem with an input file raises :class:`~deepqs.errors.InputError` naming the file
and the reason.
"""

from __future__ import annotations

import math
import os
import warnings
import zlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import mrcfile
import numpy as np

from deepqs.errors import InputError, PathLike, check_input_file
from deepqs.io.atomic import atomic_output
from deepqs.io.mapdata import MapData, Triple, as_triple

__all__ = [
    "SUPPORTED_MODES",
    "read_map",
    "write_map",
    "map_header_info",
    "read_micrograph",
    "read_stack",
    "write_micrograph",
    "write_stack",
]

#: MRC modes the reader accepts, with the numpy type stored in the file.
SUPPORTED_MODES: Dict[int, str] = {0: "int8", 1: "int16", 2: "float32", 6: "uint16", 12: "float16"}

_MODE_NAMES: Dict[int, str] = {
    0: "int8",
    1: "int16",
    2: "float32",
    3: "complex int16",
    4: "complex64",
    6: "uint16",
    12: "float16",
    101: "4-bit packed",
}

_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_HEADER_BYTES = 1024
# Sections checked for NaN/Inf at a time (keeps the boolean temporary small for big maps).
_FINITE_CHECK_VOXELS = 1 << 24

VoxelSizeArg = Optional[Union[float, Triple]]


# --------------------------------------------------------------------------------------------
# Low-level reading
# --------------------------------------------------------------------------------------------
@dataclass
class _RawMrc:
    """What one MRC file holds, before any convention is applied (internal)."""

    path: str
    header: Any                 # numpy record (mrcfile header)
    data: Optional[np.ndarray]  # file order (ns, nr, nc), or None when header only
    compressed: Optional[str]   # None, "gzip" or "bzip2"
    warnings: List[str]
    file_size: int

    # -- header fields in plain Python types ---------------------------------------------
    @property
    def mode(self) -> int:
        return int(self.header.mode)

    @property
    def ncrs(self) -> Tuple[int, int, int]:
        """Number of columns, rows, sections (header nx, ny, nz)."""
        h = self.header
        return int(h.nx), int(h.ny), int(h.nz)

    @property
    def axes(self) -> Tuple[int, int, int]:
        """(mapc, mapr, maps): which of x=1, y=2, z=3 runs along columns, rows, sections."""
        h = self.header
        return int(h.mapc), int(h.mapr), int(h.maps)

    @property
    def nstart_crs(self) -> Tuple[int, int, int]:
        """(nxstart, nystart, nzstart) as stored, i.e. in column/row/section order."""
        h = self.header
        return int(h.nxstart), int(h.nystart), int(h.nzstart)

    @property
    def shape_zyx(self) -> Tuple[int, int, int]:
        """Array shape (nz, ny, nx) after normalising the axis order."""
        n_xyz = [0, 0, 0]
        for n, axis in zip(self.ncrs, self.axes):
            n_xyz[axis - 1] = n
        return n_xyz[2], n_xyz[1], n_xyz[0]

    @property
    def sampling(self) -> Tuple[int, int, int]:
        h = self.header
        return int(h.mx), int(h.my), int(h.mz)

    @property
    def header_voxel_size(self) -> np.ndarray:
        """cella / (mx, my, mz) in float64 (x, y, z); NaN where mx/my/mz is zero."""
        h = self.header
        cell = np.array([h.cella.x, h.cella.y, h.cella.z], dtype=np.float64)
        m = np.array(self.sampling, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            vs = np.where(m != 0, cell / np.where(m != 0, m, 1.0), np.nan)
        return vs

    @property
    def header_origin(self) -> np.ndarray:
        h = self.header
        return np.array([h.origin.x, h.origin.y, h.origin.z], dtype=np.float64)

    @property
    def nstart_xyz(self) -> np.ndarray:
        """nstart mapped through mapc/mapr/maps onto (x, y, z)."""
        out = np.zeros(3, dtype=np.float64)
        for n, axis in zip(self.nstart_crs, self.axes):
            out[axis - 1] = n
        return out

    @property
    def ispg(self) -> int:
        return int(self.header.ispg)

    @property
    def imod_unsigned_bytes(self) -> bool:
        """True for IMOD mode-0 files flagged as unsigned bytes (imodStamp 1146047817, imodFlags bit 0)."""
        if self.mode != 0:
            return False
        order = self.header.mode.dtype.byteorder
        words = np.frombuffer(bytes(self.header.extra2)[40:48], dtype=np.dtype(np.int32).newbyteorder(order))
        return int(words[0]) == 1146047817 and bool(int(words[1]) & 1)

    @property
    def is_stack_like(self) -> bool:
        """True for files that hold a stack of 2D images rather than one volume.

        A file is a stack when its name ends in ``.mrcs``, when it is a volume stack
        (``ispg`` 401-630 with ``nz != mz``), or when ``ispg = 0``, ``mz = 1`` and ``nz > 1``
        (the MRC2014 image-stack convention).  Files with ``ispg = 0`` and ``mz = nz > 1``
        (most Chimera-written maps) are volumes.
        """
        nz = self.ncrs[2]
        if nz <= 1:
            return False
        if _strip_compression_suffix(self.path).lower().endswith(".mrcs"):
            return True
        if 401 <= self.ispg <= 630 and self.sampling[2] != nz:
            return True
        return self.ispg == 0 and self.sampling[2] == 1


def _strip_compression_suffix(path: str) -> str:
    for ext in (".gz", ".bz2"):
        if path.lower().endswith(ext):
            return path[: -len(ext)]
    return path


def _check_file(path: PathLike) -> Tuple[str, int, Optional[str]]:
    """Existence/size checks; returns (path, size in bytes, compression or None)."""
    p = check_input_file(path, "map file", allow_empty=False)
    size = os.path.getsize(p)
    with open(p, "rb") as fh:
        magic = fh.read(4)
    compressed = None
    if magic.startswith(_GZIP_MAGIC):
        compressed = "gzip"
    elif magic.startswith(_BZIP2_MAGIC) and magic[3:4].isdigit():
        compressed = "bzip2"
    if compressed is None and size < _HEADER_BYTES:
        raise InputError(p, f"not an MRC/CCP4 file: {size} bytes is shorter than the {_HEADER_BYTES}-byte header")
    return p, size, compressed


def _open_raw(path: PathLike, mmap: bool = False, header_only: bool = False) -> _RawMrc:
    """Open an MRC/CCP4 file permissively and validate its header (internal).

    The data array (when read) is in file order ``(sections, rows, columns)``; nothing is
    transposed or converted here.  ``mmap`` memory-maps uncompressed files read-only (the
    array stays valid after the file object is closed); compressed files are always read
    into memory.  mrcfile's warnings are collected in ``warnings``.
    """
    p, size, compressed = _check_file(path)
    use_mmap = mmap and compressed is None
    try:
        with warnings.catch_warnings(record=True) as wlist:
            warnings.simplefilter("always")
            if use_mmap:
                mrc = mrcfile.mmap(p, mode="r", permissive=True)
            else:
                mrc = mrcfile.open(p, mode="r", permissive=True, header_only=header_only)
            try:
                header = mrc.header.copy()
                data = None if header_only else mrc.data
            finally:
                mrc.close()
    except (ValueError, OSError, EOFError, TypeError, OverflowError, MemoryError, zlib.error) as exc:
        if any("Map ID string not found" in str(w.message) for w in wlist):
            raise InputError(p, f"not an MRC/CCP4 file (no 'MAP ' identifier and an unreadable header: {exc})") from None
        if compressed is not None:
            raise InputError(p, f"corrupt or truncated {compressed} file, or not an MRC/CCP4 file inside ({exc})") from None
        raise InputError(p, f"not an MRC/CCP4 file ({exc})") from None
    raw = _RawMrc(p, header, None, compressed, [str(w.message) for w in wlist], size)
    _validate_header(raw)
    if header_only:
        return raw
    if data is None:
        raise InputError(p, _truncation_reason(raw))
    nc, nr, ns = raw.ncrs
    expected = nc * nr * ns
    if data.size != expected:
        raise InputError(p, f"data block holds {data.size} voxels, the header says {nc} x {nr} x {ns} = {expected}")
    data = data.reshape(ns, nr, nc)
    if raw.imod_unsigned_bytes:
        data = data.view(np.uint8)
    raw.data = data
    return raw


def _truncation_reason(raw: _RawMrc) -> str:
    nc, nr, ns = raw.ncrs
    itemsize = np.dtype(SUPPORTED_MODES[raw.mode]).itemsize
    need = nc * nr * ns * itemsize
    if raw.compressed:
        return (
            f"truncated data: the header says {nc} x {nr} x {ns} voxels of mode {raw.mode} ({need} bytes), "
            "the decompressed data block is shorter"
        )
    have = raw.file_size - _HEADER_BYTES - max(int(raw.header.nsymbt), 0)
    return (
        f"truncated data: the header says {nc} x {nr} x {ns} voxels of mode {raw.mode} ({need} bytes) "
        f"but the file holds {max(have, 0)} bytes after the header"
    )


def _validate_header(raw: _RawMrc) -> None:
    """Refuse headers that are not MRC/CCP4 or that deepqs cannot read (internal)."""
    p = raw.path
    axes = raw.axes
    if sorted(axes) != [1, 2, 3]:
        raise InputError(
            p, f"not an MRC/CCP4 file (or a corrupt header): axis order mapc/mapr/maps = {axes} is not a permutation of 1, 2, 3"
        )
    ncrs = raw.ncrs
    if min(ncrs) < 0:
        raise InputError(p, f"not an MRC/CCP4 file (or a corrupt header): negative dimensions nx, ny, nz = {ncrs}")
    if min(ncrs) == 0:
        raise InputError(p, f"zero-size map: nx, ny, nz = {ncrs}")
    if int(raw.header.nsymbt) < 0:
        raise InputError(p, f"corrupt header: negative extended header size nsymbt = {int(raw.header.nsymbt)}")
    mode = raw.mode
    if mode not in SUPPORTED_MODES:
        name = _MODE_NAMES.get(mode)
        what = f"MRC mode {mode}" + (f" ({name})" if name else "")
        if name is None and not (0 <= mode <= 200):
            raise InputError(p, f"not an MRC/CCP4 file (or a corrupt header): unknown {what}")
        raise InputError(p, f"unsupported {what}; deepqs reads modes 0, 1, 2, 6 and 12 (real-valued maps)")


def _check_finite(data: Optional[np.ndarray], path: str) -> None:
    """Raise InputError when ``data`` holds NaN or Inf values.

    Give it the file-order (C-contiguous) array: it is scanned in slabs of sections without
    copying, so memory-mapped maps stay cheap.
    """
    assert data is not None
    if not np.issubdtype(data.dtype, np.floating):
        return
    flat_sections = data.reshape(data.shape[0], -1)
    step = max(1, _FINITE_CHECK_VOXELS // max(1, flat_sections.shape[1]))
    for start in range(0, flat_sections.shape[0], step):
        block = flat_sections[start : start + step]
        if not np.isfinite(block).all():
            n_nan = int(np.count_nonzero(np.isnan(data)))
            n_inf = int(np.count_nonzero(np.isinf(data)))
            raise InputError(path, f"map contains non-finite voxels ({n_nan} NaN, {n_inf} Inf)")


def _to_zyx(raw: _RawMrc) -> np.ndarray:
    """File-order array -> [z, y, x] view (no copy)."""
    assert raw.data is not None
    file_axes = (raw.axes[2], raw.axes[1], raw.axes[0])  # array axes 0, 1, 2 hold maps, mapr, mapc
    order = [file_axes.index(3), file_axes.index(2), file_axes.index(1)]
    return raw.data.transpose(order)


def _as_float32(arr: np.ndarray, keep_mmap: bool) -> np.ndarray:
    """float32, native byte order, C order; avoids a copy for memory-mapped float32 data."""
    native = np.dtype(np.float32)
    if keep_mmap and arr.dtype == native and arr.flags.c_contiguous:
        return arr
    out = np.ascontiguousarray(arr, dtype=native)
    if out is arr or not out.flags.writeable:
        out = out.copy()
    return out


def _resolve_voxel_size(raw: _RawMrc, override: VoxelSizeArg, two_d: bool) -> np.ndarray:
    """Voxel size (x, y, z) in Å from the header or the override (internal).

    For 2D images and stacks (``two_d``) only x and y must be valid; an invalid z is set to x.
    """
    p = raw.path
    if override is not None:
        try:
            vs = as_triple(override, "voxel_size")
        except (ValueError, TypeError) as exc:
            raise InputError(p, f"bad voxel size override: {exc}") from None
        if not (np.all(np.isfinite(vs)) and np.all(vs > 0)):
            raise InputError(p, f"voxel size override must be positive, got {tuple(float(v) for v in vs)}")
        return vs
    vs = raw.header_voxel_size
    check = vs[:2] if two_d else vs
    if not (np.all(np.isfinite(check)) and np.all(check > 0)):
        h = raw.header
        cell = (float(h.cella.x), float(h.cella.y), float(h.cella.z))
        raise InputError(
            p,
            f"invalid voxel size {tuple(round(float(v), 6) for v in vs)} A in the header "
            f"(cella = {cell}, mx, my, mz = {raw.sampling}); pass a voxel size override "
            f"(--voxel-size / voxel_size=...) giving the true value in A",
        )
    if two_d and not (math.isfinite(vs[2]) and vs[2] > 0):
        vs = vs.copy()
        vs[2] = vs[0]
    return vs


def _resolve_origin(raw: _RawMrc, voxel_size: np.ndarray) -> np.ndarray:
    """Origin (x, y, z) in Å by the CONVENTIONS rule (internal)."""
    origin = raw.header_origin
    if not np.all(np.isfinite(origin)):
        raise InputError(raw.path, f"header origin {tuple(origin)} is not finite")
    if np.any(origin != 0):
        return origin
    return raw.nstart_xyz * voxel_size


# --------------------------------------------------------------------------------------------
# Public readers
# --------------------------------------------------------------------------------------------
def read_map(
    path: PathLike,
    voxel_size: VoxelSizeArg = None,
    mmap: bool = False,
    allow_stack: bool = False,
) -> MapData:
    """Read an MRC/CCP4 map (optionally gzip/bzip2 compressed) as a :class:`MapData`.

    Parameters
    ----------
    path
        ``.mrc``, ``.map``, ``.ccp4`` (also ``.gz``/``.bz2``-compressed).
    voxel_size
        Override (Å/voxel), a number or (x, y, z), for files whose header is wrong or zero.
        Without it a zero, negative or NaN header voxel size raises InputError.
    mmap
        Memory-map the data instead of reading it (uncompressed files only; compressed files
        are read into memory).  A mode-2 little-endian float32 map with axis order 1, 2, 3 is
        returned as a **read-only** ``numpy.memmap`` without any copy; other files are
        converted in memory.
    allow_stack
        Accept image stacks (``.mrcs``, ``ispg = 0`` with ``mz = 1``, volume stacks); the
        returned array is then ``[n, y, x]``.  By default a stack is refused, since a map was
        asked for.  Files with ``ispg = 0`` and ``mz = nz > 1`` are volumes either way.

    Returns
    -------
    MapData
        ``data`` float32 ``[z, y, x]`` (a 2D image gives shape ``(1, ny, nx)``), ``voxel_size``
        and ``origin`` (x, y, z) in Å; ``origin`` is the header origin if not all zero,
        otherwise nstart (mapped to x, y, z) times the voxel size.

    Raises
    ------
    InputError
        Missing or empty file, not an MRC file, truncated data, unsupported mode (complex
        modes 3 and 4, packed modes), zero-size map, NaN/Inf voxels, invalid voxel size,
        or an image stack when ``allow_stack`` is False.
    """
    raw = _open_raw(path, mmap=mmap)
    p = raw.path
    if raw.is_stack_like and not allow_stack:
        raise InputError(
            p,
            f"is an image stack of {raw.ncrs[2]} images (ispg={raw.ispg}, mz={raw.sampling[2]}), not a volume; "
            "read it as a particle stack",
        )
    two_d = raw.ncrs[2] == 1 or raw.is_stack_like
    vs = _resolve_voxel_size(raw, voxel_size, two_d=two_d)
    origin = _resolve_origin(raw, vs)
    zyx = _to_zyx(raw)
    _check_finite(raw.data, p)
    data = _as_float32(zyx, keep_mmap=mmap)
    return MapData(data=data, voxel_size=vs, origin=origin, path=p)


def map_header_info(path: PathLike) -> Dict[str, Any]:
    """Header summary of an MRC/CCP4 file as a plain JSON-able dict (for ``deepqs info``).

    Keys: ``path``, ``file_size_bytes``, ``compressed`` (None/"gzip"/"bzip2"), ``shape``
    ([nz, ny, nx] after axis normalisation), ``grid_size_xyz``, ``mode``, ``dtype`` (as stored),
    ``voxel_size_A`` (header, x, y, z; null where undefined), ``voxel_size_valid``,
    ``origin_A`` (by the CONVENTIONS rule, using the header voxel size; null when the voxel
    size is invalid and nstart is used), ``origin_source`` ("header" or "nstart"),
    ``header_origin_A``, ``nstart`` (as stored, column/row/section), ``nstart_xyz``,
    ``axis_order`` ([mapc, mapr, maps]), ``sampling_mxyz``, ``cell_A``, ``cell_angles_deg``,
    ``ispg``, ``is_stack``, ``nsymbt``, ``exttyp``, ``nversion``, ``labels``, ``min``, ``max``,
    ``mean``, ``std`` (computed from the data over finite voxels, not taken from the header),
    ``n_nonfinite`` and ``warnings`` (mrcfile's messages about the header).

    Raises InputError when the file cannot be read at all (missing, not MRC, truncated,
    unsupported mode); quirks such as a zero voxel size or NaN voxels are reported, not raised.
    """
    raw = _open_raw(path, mmap=True)
    h = raw.header
    vs = raw.header_voxel_size
    vs_valid = bool(np.all(np.isfinite(vs[:2])) and np.all(vs[:2] > 0)
                    and (raw.ncrs[2] == 1 or raw.is_stack_like or (np.isfinite(vs[2]) and vs[2] > 0)))
    header_origin = raw.header_origin
    if np.any(header_origin != 0):
        origin: Optional[List[float]] = [float(v) for v in header_origin]
        origin_source = "header"
    else:
        origin_source = "nstart"
        origin = [float(v) for v in raw.nstart_xyz * vs] if vs_valid else None
    # Statistics over the file-order array (order does not matter), in float64 slabs.
    assert raw.data is not None
    finite_count = 0
    n_nonfinite = 0
    dmin, dmax = math.inf, -math.inf
    total = 0.0
    flat = raw.data.reshape(raw.data.shape[0], -1)
    step = max(1, _FINITE_CHECK_VOXELS // max(1, flat.shape[1]))
    for start in range(0, flat.shape[0], step):
        block = np.asarray(flat[start : start + step], dtype=np.float64)
        ok = np.isfinite(block)
        n_ok = int(ok.sum())
        n_nonfinite += block.size - n_ok
        if n_ok:
            vals = block[ok] if n_ok != block.size else block
            finite_count += n_ok
            dmin = min(dmin, float(vals.min()))
            dmax = max(dmax, float(vals.max()))
            total += float(vals.sum())
    mean = total / finite_count if finite_count else None
    sq = 0.0
    if finite_count:
        for start in range(0, flat.shape[0], step):
            block = np.asarray(flat[start : start + step], dtype=np.float64)
            ok = np.isfinite(block)
            sq += float(((block[ok] - mean) ** 2).sum())
    std = math.sqrt(sq / finite_count) if finite_count else None
    try:
        labels = [bytes(lab).rstrip(b"\x00 ").decode("ascii", "replace") for lab in h.label[: max(0, min(int(h.nlabl), 10))]]
    except Exception:  # pragma: no cover - labels are informative only
        labels = []
    exttyp = bytes(h.exttyp).decode("ascii", "replace").replace("\x00", "")

    def _num(v: float) -> Optional[float]:
        return float(v) if math.isfinite(float(v)) else None

    return {
        "path": raw.path,
        "file_size_bytes": int(raw.file_size),
        "compressed": raw.compressed,
        "shape": [int(n) for n in raw.shape_zyx],
        "grid_size_xyz": [int(n) for n in raw.shape_zyx[::-1]],
        "mode": raw.mode,
        "dtype": SUPPORTED_MODES[raw.mode],
        "voxel_size_A": [_num(v) for v in vs],
        "voxel_size_valid": vs_valid,
        "origin_A": origin,
        "origin_source": origin_source,
        "header_origin_A": [float(v) for v in header_origin],
        "nstart": [int(n) for n in raw.nstart_crs],
        "nstart_xyz": [int(n) for n in raw.nstart_xyz],
        "axis_order": [int(a) for a in raw.axes],
        "sampling_mxyz": [int(m) for m in raw.sampling],
        "cell_A": [float(h.cella.x), float(h.cella.y), float(h.cella.z)],
        "cell_angles_deg": [float(h.cellb.alpha), float(h.cellb.beta), float(h.cellb.gamma)],
        "ispg": raw.ispg,
        "is_stack": bool(raw.is_stack_like),
        "nsymbt": int(h.nsymbt),
        "exttyp": exttyp,
        "nversion": int(h.nversion),
        "labels": labels,
        "min": dmin if finite_count else None,
        "max": dmax if finite_count else None,
        "mean": mean,
        "std": std,
        "n_nonfinite": int(n_nonfinite),
        "warnings": list(raw.warnings),
    }


def _pixel_size_2d(raw: _RawMrc, pixel_size: Optional[float]) -> float:
    """Pixel size (Å) of an image or stack: header x (x and y must agree) or the override."""
    if pixel_size is not None:
        try:
            ps = float(pixel_size)
        except (TypeError, ValueError):
            raise InputError(raw.path, f"bad pixel size override {pixel_size!r}") from None
        if not (math.isfinite(ps) and ps > 0):
            raise InputError(raw.path, f"pixel size override must be positive, got {ps}")
        return ps
    vs = _resolve_voxel_size(raw, None, two_d=True)
    if not math.isclose(vs[0], vs[1], rel_tol=1e-3):
        raise InputError(
            raw.path, f"non-square pixels in the header (x {vs[0]:.6g} A, y {vs[1]:.6g} A); pass a pixel size override"
        )
    return float(vs[0])


def read_micrograph(path: PathLike, pixel_size: Optional[float] = None) -> Tuple[np.ndarray, float]:
    """Read one 2D micrograph.

    Returns ``(image, pixel_size_A)`` with ``image`` float32 indexed ``[y, x]`` (x = column,
    y = row, pixel centres at integers).  ``pixel_size`` (Å) overrides the header, which is
    needed when the header pixel size is zero.  A file holding several sections (a stack or a
    volume) is refused; a stack with a single section is fine.
    """
    raw = _open_raw(path)
    nz = raw.ncrs[2]
    if nz != 1:
        raise InputError(
            raw.path, f"holds {nz} sections (an image stack or a volume), not a single micrograph; read it as a stack"
        )
    ps = _pixel_size_2d(raw, pixel_size)
    zyx = _to_zyx(raw)
    _check_finite(raw.data, raw.path)
    return _as_float32(zyx, keep_mmap=False)[0], ps


def read_stack(path: PathLike, pixel_size: Optional[float] = None, mmap: bool = False) -> Tuple[np.ndarray, float]:
    """Read an image stack (``.mrcs`` particle stack, or any MRC file).

    Returns ``(images, pixel_size_A)`` with ``images`` float32 ``[n, y, x]`` (a single image
    gives ``n = 1``).  Every section is taken as one image, whatever ``ispg`` says.  A zero
    header pixel size needs the ``pixel_size`` override.  ``mmap`` as in :func:`read_map`.
    """
    raw = _open_raw(path, mmap=mmap)
    ps = _pixel_size_2d(raw, pixel_size)
    zyx = _to_zyx(raw)
    _check_finite(raw.data, raw.path)
    return _as_float32(zyx, keep_mmap=mmap), ps


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------
def _compression_for(path: str) -> Optional[str]:
    low = path.lower()
    if low.endswith(".gz"):
        return "gzip"
    if low.endswith(".bz2"):
        return "bzip2"
    return None


def _write_mrc(path: PathLike, data: np.ndarray, voxel_size: np.ndarray, origin: np.ndarray, ispg: int) -> None:
    """Write float32 ``data`` [z, y, x] as mode 2 with the deepqs header conventions (internal)."""
    p = os.fspath(path)
    arr = np.ascontiguousarray(data, dtype=np.float32)
    if arr.ndim != 3 or min(arr.shape) == 0:
        raise ValueError(f"cannot write an array of shape {arr.shape} as a map (need non-empty [z, y, x])")
    if not np.isfinite(arr).all():
        raise ValueError(f"refusing to write {p}: the data contain NaN or Inf values")
    vs = as_triple(voxel_size, "voxel_size")
    if not (np.all(np.isfinite(vs)) and np.all(vs > 0)):
        raise ValueError(f"voxel size must be positive, got {tuple(vs)}")
    org = as_triple(origin, "origin")
    if not np.all(np.isfinite(org)):
        raise ValueError(f"origin must be finite, got {tuple(org)}")
    compression = _compression_for(p)
    with atomic_output(p) as tmp:
        if compression is not None:
            os.remove(tmp)  # mrcfile.new refuses an existing compressed target
        with mrcfile.new(tmp, overwrite=True, compression=compression) as mrc:
            mrc.header.ispg = ispg
            mrc.set_data(arr)
            h = mrc.header
            h.ispg = ispg
            nz = arr.shape[0]
            h.mx, h.my = arr.shape[2], arr.shape[1]
            h.mz = nz if ispg != 0 else 1
            h.mapc, h.mapr, h.maps = 1, 2, 3
            h.nxstart = h.nystart = h.nzstart = 0
            h.cella.x = vs[0] * h.mx
            h.cella.y = vs[1] * h.my
            h.cella.z = vs[2] * h.mz
            h.origin.x, h.origin.y, h.origin.z = (float(v) for v in org)
            mrc.update_header_stats()
            h.nlabl = 0
            mrc.add_label("deepqs: written by the deepqs engine")


def write_map(
    path: PathLike,
    data: Union[np.ndarray, MapData],
    voxel_size: VoxelSizeArg = None,
    origin: Optional[Triple] = None,
) -> None:
    """Write a map as MRC mode 2 (float32), atomically.

    ``data`` is a :class:`MapData` (its voxel size and origin are used unless overridden
    here) or a float array ``[z, y, x]`` (then ``voxel_size`` is required; origin defaults to
    0).  The header gets ``mapc/mapr/maps = 1, 2, 3``, ``nstart = 0``, the origin (Å) in the
    ``origin`` field, ``cella = voxel_size * (mx, my, mz)``, ``ispg = 1`` for volumes (``0``
    for a single 2D section) and up-to-date min/max/mean/rms.  A ``.gz`` or ``.bz2`` target is
    compressed.  Round trips through :func:`read_map` preserve the data exactly and the voxel
    size and origin to float32 header precision.

    Raises ValueError for an unusable array (not 3D, empty, NaN/Inf) or a non-positive voxel size.
    """
    if isinstance(data, MapData):
        vs = data.voxel_size if voxel_size is None else voxel_size
        org = data.origin if origin is None else origin
        arr = data.data
    else:
        if voxel_size is None:
            raise ValueError("write_map needs voxel_size when given a plain array")
        vs = voxel_size
        org = (0.0, 0.0, 0.0) if origin is None else origin
        arr = np.asarray(data)
        if arr.ndim == 2:
            arr = arr[np.newaxis]
    arr = np.asarray(arr)
    ispg = 0 if arr.ndim == 3 and arr.shape[0] == 1 else 1
    _write_mrc(path, arr, as_triple(vs, "voxel_size"), as_triple(org, "origin"), ispg)


def write_micrograph(path: PathLike, image: np.ndarray, pixel_size: float) -> None:
    """Write a 2D micrograph ``[y, x]`` as an MRC mode-2 single image (ispg 0), atomically.

    ``pixel_size`` in Å/pixel (also stored as the z voxel size).
    """
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"a micrograph must be a 2D [y, x] array, got shape {arr.shape}")
    _write_mrc(path, arr[np.newaxis], as_triple(float(pixel_size)), np.zeros(3), ispg=0)


def write_stack(path: PathLike, images: np.ndarray, pixel_size: float) -> None:
    """Write an image stack ``[n, y, x]`` as MRC mode 2 with ``ispg = 0``, ``mz = 1`` (``.mrcs``), atomically."""
    arr = np.asarray(images)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise ValueError(f"an image stack must be a [n, y, x] array, got shape {arr.shape}")
    _write_mrc(path, arr, as_triple(float(pixel_size)), np.zeros(3), ispg=0)
