"""Tell what kind of file a path is: a map, an atomic model, coordinates or network weights.

Used by ``deepqs info``.  The extension decides when it is known (``.gz``/``.bz2`` are looked
through); otherwise the first bytes are sniffed.
"""

from __future__ import annotations

import bz2
import gzip
import os
import struct
import zipfile

from deepqs.errors import InputError, PathLike, check_input_file

__all__ = ["KINDS", "detect_kind"]

#: The kinds :func:`detect_kind` returns.
KINDS = ("map", "model", "coordinates", "weights")

_EXT_KIND = {
    ".mrc": "map",
    ".map": "map",
    ".ccp4": "map",
    ".mrcs": "map",
    ".rec": "map",
    ".st": "map",
    ".pdb": "model",
    ".ent": "model",
    ".cif": "model",
    ".mmcif": "model",
    ".box": "coordinates",
    ".star": "coordinates",
    ".cs": "coordinates",
    ".csv": "coordinates",
    ".tsv": "coordinates",
    ".pt": "weights",
    ".pth": "weights",
    ".ckpt": "weights",
}

_PDB_RECORDS = (b"ATOM  ", b"HETATM", b"HEADER", b"CRYST1", b"MODEL ", b"REMARK", b"TITLE ", b"COMPND", b"SEQRES")


def _head(path: str, n: int = 8192) -> bytes:
    with open(path, "rb") as fh:
        head = fh.read(n)
    try:
        if head.startswith(b"\x1f\x8b"):
            with gzip.open(path, "rb") as fh:
                return fh.read(n)
        if head.startswith(b"BZh"):
            with bz2.open(path, "rb") as fh:
                return fh.read(n)
    except (OSError, EOFError):
        return head
    return head


def _looks_like_mrc(head: bytes) -> bool:
    if len(head) < 1024:
        return False
    if head[208:212] == b"MAP ":
        return True
    for order in "<>":
        mapc, mapr, maps = struct.unpack(order + "3i", head[64:76])
        nx, ny, nz, mode = struct.unpack(order + "4i", head[0:16])
        if sorted((mapc, mapr, maps)) == [1, 2, 3] and min(nx, ny, nz) > 0 and 0 <= mode <= 12:
            return True
    return False


def _sniff(path: str) -> str | None:
    head = _head(path)
    if not head:
        return None
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                if any(n.endswith("data.pkl") for n in zf.namelist()):
                    return "weights"
        except zipfile.BadZipFile:
            return None
        return None
    if head.startswith(b"\x93NUMPY"):
        return "coordinates"
    if _looks_like_mrc(head):
        return "map"
    if b"\x00" in head:
        return None
    text = head.decode("latin-1")
    if "_atom_site." in text:
        return "model"
    if "_rln" in text and "data_" in text:
        return "coordinates"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if any(ln.encode("latin-1")[:6] in (b"ATOM  ", b"HETATM") for ln in lines):
        return "model"
    if lines:
        first = lines[0].lower()
        if "image_name" in first and "x_coord" in first:
            return "coordinates"
        if "," in first and {"x", "y"} <= {c.strip() for c in first.split(",")}:
            return "coordinates"
        try:
            if len([float(v) for v in lines[0].split()]) in (4, 5):
                return "coordinates"
        except ValueError:
            pass
    if any(ln.encode("latin-1")[:6] in _PDB_RECORDS for ln in lines[:5]):
        return "model"
    return None


def detect_kind(path: PathLike) -> str:
    """Return ``"map"``, ``"model"``, ``"coordinates"`` or ``"weights"`` for ``path``.

    By extension first (``.mrc/.map/.ccp4/.mrcs``, ``.pdb/.ent/.cif/.mmcif``,
    ``.box/.star/.cs/.csv/.txt``, ``.pt/.pth/.ckpt``; compression suffixes ignored), by
    content otherwise (MRC header, mmCIF ``_atom_site``, PDB ATOM records, STAR ``_rln``,
    numpy/.cs magic, Topaz header, torch zip archive).

    Raises InputError for a missing file or an unknown format.
    """
    p = check_input_file(path)
    name = p.lower()
    for ext in (".gz", ".bz2"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    ext = os.path.splitext(name)[1]
    if ext in _EXT_KIND:
        return _EXT_KIND[ext]
    kind = _sniff(p)
    if kind is None and ext == ".txt":
        head = _head(p).decode("latin-1").lower()
        kind = "coordinates" if "x_coord" in head or not head.strip() else None
    if kind is None:
        raise InputError(p, "unknown format (not a map, model, coordinate or weights file deepqs can read)")
    return kind
