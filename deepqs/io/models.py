"""Atomic models (PDB and mmCIF) through gemmi.

Conventions (see ``CONVENTIONS.md``):

* Coordinates in Å, B-factors in Å².
* Atom identity: (auth chain, auth residue number, insertion code, atom name, altloc).
* :func:`atoms_from_structure` lists the atoms of one model in gemmi's order
  (chain -> residue -> atom); every per-atom array handed to :func:`write_model` follows that order.
* Per-atom scores go into mmCIF as extra ``_atom_site`` items (``_atom_site.Q-score``,
  ``%.6f``) and into PDB output as the B-factor column.
"""

from __future__ import annotations

import gzip
import math
import os
from typing import Dict, Iterable, Mapping, Optional, Union

import gemmi
import numpy as np

from deepqs.errors import InputError, PathLike, check_input_file
from deepqs.io.atomic import atomic_output
from deepqs.io.atoms import Atoms
from deepqs.io.mapdata import MapData

__all__ = [
    "WATER_NAMES",
    "read_model",
    "read_atoms",
    "atoms_from_structure",
    "write_model",
    "read_atom_site_column",
    "check_model_in_map",
]

#: Residue names flagged as water.
WATER_NAMES = frozenset({"HOH", "WAT", "DOD", "H2O"})

_MMCIF_EXTS = (".cif", ".mmcif")
_PDB_EXTS = (".pdb", ".ent")


def _strip_gz(path: str) -> str:
    return path[:-3] if path.lower().endswith(".gz") else path


def _sniff_model_format(path: str) -> gemmi.CoorFormat:
    """PDB or mmCIF, by content (first meaningful line), falling back on the extension.

    A file whose first non-blank, non-comment line starts with ``data_`` is mmCIF;
    anything else is read as PDB (the PDB reader ignores records it does not know).
    """
    opener = gzip.open if path.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:  # type: ignore[operator]
            head = fh.read(65536)
    except (OSError, EOFError) as exc:
        raise InputError(path, f"cannot read the file ({exc})") from None
    if b"\x00" in head:
        raise InputError(path, "not a PDB or mmCIF file (binary content)")
    for line in head.splitlines():
        text = line.strip()
        if not text or text.startswith(b"#"):
            continue
        if text.lower().startswith(b"data_"):
            return gemmi.CoorFormat.Mmcif
        break
    if _strip_gz(path).lower().endswith(_MMCIF_EXTS) and not head.strip():
        return gemmi.CoorFormat.Mmcif
    return gemmi.CoorFormat.Pdb


def read_model(path: PathLike) -> gemmi.Structure:
    """Read a PDB or mmCIF file (optionally gzipped) into a ``gemmi.Structure``.

    The format is chosen from the content (an mmCIF file named ``.pdb`` still reads).
    ``setup_entities()`` is called and empty chains are removed.

    Raises
    ------
    InputError
        Missing file, unparseable content, or no atoms (an empty model).
    """
    p = check_input_file(path, "model file")
    if os.path.getsize(p) == 0:
        raise InputError(p, "empty file: no atoms")
    fmt = _sniff_model_format(p)
    kind = "mmCIF" if fmt == gemmi.CoorFormat.Mmcif else "PDB"
    try:
        st = gemmi.read_structure(p, merge_chain_parts=True, format=fmt)
    except Exception as exc:  # gemmi raises ValueError/RuntimeError with a line number
        msg = str(exc).replace(p, "").lstrip(":")
        raise InputError(p, f"cannot parse as {kind}: {msg}") from None
    st.setup_entities()
    st.remove_empty_chains()
    if len(st) == 0 or st[0].count_atom_sites() == 0:
        raise InputError(p, f"no atoms found (empty model, or not a {kind} coordinate file)")
    return st


def atoms_from_structure(st: gemmi.Structure, model_index: int = 0) -> Atoms:
    """Flat per-atom arrays of one model of ``st`` (see :class:`~deepqs.io.atoms.Atoms`).

    Every atom is kept, including all altlocs and hydrogens, in gemmi's order
    (chain -> residue -> atom).  ``is_hydrogen`` is element H or D, ``is_water`` residue
    names HOH/WAT/DOD/H2O, ``is_hetero`` the residue het flag ``'H'`` (HETATM).
    ``icode`` and ``altloc`` are '' when absent.
    """
    if not 0 <= model_index < len(st):
        raise IndexError(f"model index {model_index} out of range (structure has {len(st)} models)")
    model = st[model_index]
    n = model.count_atom_sites()
    xyz = np.empty((n, 3), dtype=np.float64)
    b_iso = np.empty(n, dtype=np.float64)
    occ = np.empty(n, dtype=np.float64)
    resseq = np.empty(n, dtype=np.int64)
    element, chain, icode, resname, name, altloc = ([""] * n for _ in range(6))
    res_het = np.zeros(n, dtype=bool)
    i = 0
    for ch in model:
        cname = ch.name
        for res in ch:
            j0 = i
            rname = res.name
            num = res.seqid.num
            ic = res.seqid.icode.strip()
            for atom in res:
                pos = atom.pos
                xyz[i, 0] = pos.x
                xyz[i, 1] = pos.y
                xyz[i, 2] = pos.z
                b_iso[i] = atom.b_iso
                occ[i] = atom.occ
                element[i] = atom.element.name.upper()
                name[i] = atom.name
                alt = atom.altloc
                altloc[i] = "" if alt == "\0" else alt.strip()
                i += 1
            chain[j0:i] = [cname] * (i - j0)
            resname[j0:i] = [rname] * (i - j0)
            icode[j0:i] = [ic] * (i - j0)
            resseq[j0:i] = num
            res_het[j0:i] = res.het_flag == "H"
    assert i == n
    element_arr = np.array(element, dtype=str) if n else np.zeros(0, dtype="<U1")
    resname_arr = np.array(resname, dtype=str) if n else np.zeros(0, dtype="<U1")
    return Atoms(
        xyz=xyz,
        element=element_arr,
        b_iso=b_iso,
        occupancy=occ,
        chain=np.array(chain, dtype=str) if n else np.zeros(0, dtype="<U1"),
        resseq=resseq,
        icode=np.array(icode, dtype=str) if n else np.zeros(0, dtype="<U1"),
        resname=resname_arr,
        name=np.array(name, dtype=str) if n else np.zeros(0, dtype="<U1"),
        altloc=np.array(altloc, dtype=str) if n else np.zeros(0, dtype="<U1"),
        is_hetero=res_het,
        is_water=np.isin(resname_arr, list(WATER_NAMES)),
        is_hydrogen=np.isin(element_arr, ["H", "D"]),
    )


def read_atoms(path: PathLike, model_index: int = 0) -> Atoms:
    """:func:`read_model` then :func:`atoms_from_structure` (first model by default)."""
    return atoms_from_structure(read_model(path), model_index=model_index)


def _format_values(values: np.ndarray) -> list:
    """``%.6f`` strings; NaN (e.g. unscored hydrogens) becomes None, written as the CIF unknown '?'."""
    return [None if not math.isfinite(v) else "%.6f" % v for v in values.tolist()]


def _check_columns(
    st: gemmi.Structure, per_atom_columns: Optional[Mapping[str, Iterable[float]]]
) -> Dict[str, np.ndarray]:
    cols: Dict[str, np.ndarray] = {}
    if not per_atom_columns:
        return cols
    n = st[0].count_atom_sites()
    for key, vals in per_atom_columns.items():
        if not key or any(c.isspace() for c in key) or key.startswith("_"):
            raise ValueError(f"bad _atom_site item name {key!r} (give e.g. 'Q-score')")
        arr = np.asarray(vals, dtype=np.float64).reshape(-1)
        if arr.size != n:
            raise ValueError(f"column {key!r} has {arr.size} values but the first model has {n} atoms")
        cols[key] = arr
    return cols


def write_model(
    path: PathLike,
    st: gemmi.Structure,
    per_atom_columns: Optional[Mapping[str, Iterable[float]]] = None,
    fmt: Optional[str] = None,
    bfactor_column: Optional[str] = None,
) -> None:
    """Write ``st`` as mmCIF or PDB, atomically, optionally with per-atom score columns.

    Parameters
    ----------
    path
        Output file; the format comes from ``fmt`` ("mmcif"/"cif" or "pdb") or else the
        extension (``.cif``/``.mmcif`` -> mmCIF, ``.pdb``/``.ent`` -> PDB; default mmCIF).
    st
        The structure (not modified).
    per_atom_columns
        ``{item name: values}``, one value per atom of the **first model**, in the order of
        :func:`atoms_from_structure`.  mmCIF: each becomes an extra ``_atom_site.<name>``
        item (e.g. ``_atom_site.Q-score``) formatted ``%.6f``; NaN is written as ``?``; atoms
        of later models get ``?``.  PDB: one column (``bfactor_column``, or the only one)
        replaces the B-factor (PDB keeps 2 decimals, NaN -> 0.00).
    bfactor_column
        Which column goes into the PDB B-factor field when there are several.
    """
    p = os.fspath(path)
    if fmt is None:
        low = _strip_gz(p).lower()
        fmt = "pdb" if low.endswith(_PDB_EXTS) else "mmcif"
    fmt = fmt.lower()
    if fmt in ("cif", "mmcif"):
        fmt = "mmcif"
    elif fmt != "pdb":
        raise ValueError(f"unknown model format {fmt!r} (use 'mmcif' or 'pdb')")
    cols = _check_columns(st, per_atom_columns)

    if fmt == "pdb":
        out = st.clone()
        if cols:
            if bfactor_column is None:
                if len(cols) != 1:
                    raise ValueError(f"several columns {sorted(cols)}: choose one with bfactor_column=")
                bfactor_column = next(iter(cols))
            if bfactor_column not in cols:
                raise ValueError(f"bfactor_column {bfactor_column!r} is not among {sorted(cols)}")
            vals = np.nan_to_num(cols[bfactor_column], nan=0.0, posinf=0.0, neginf=0.0).tolist()
            i = 0
            for ch in out[0]:
                for res in ch:
                    for atom in res:
                        atom.b_iso = vals[i]
                        i += 1
        text = out.make_pdb_string()
        with atomic_output(p) as tmp:
            _write_text(tmp, text)
        return

    doc = st.make_mmcif_document()
    block = doc.sole_block()
    if cols:
        table = block.get_mmcif_category("_atom_site.")
        if not table:
            raise ValueError("the structure has no atoms to annotate")
        n_rows = len(next(iter(table.values())))
        n0 = st[0].count_atom_sites()
        for key, arr in cols.items():
            table[key] = _format_values(arr) + [None] * (n_rows - n0)
        block.set_mmcif_category("_atom_site.", table, raw=False)
    with atomic_output(p) as tmp:
        text = doc.as_string()
        _write_text(tmp, text)


def _write_text(tmp: str, text: str) -> None:
    if tmp.lower().endswith(".gz"):
        with gzip.open(tmp, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)


def read_atom_site_column(path: PathLike, name: str) -> np.ndarray:
    """Read one ``_atom_site.<name>`` item of an mmCIF file as float64 (``?``/``.`` -> NaN).

    Useful for score columns that gemmi's ``Structure`` drops (``Q-score``, MapQ's ``Q_score``).
    Rows are in file order (all models).  Raises InputError when the file or the item is missing.
    """
    p = check_input_file(path, "model file")
    try:
        doc = gemmi.cif.read(p)
        block = doc.sole_block()
    except Exception as exc:
        raise InputError(p, f"cannot parse as mmCIF: {exc}") from None
    col = block.find_values("_atom_site." + name)
    if col is None or len(col) == 0:
        raise InputError(p, f"no _atom_site.{name} item")
    out = np.empty(len(col), dtype=np.float64)
    for i in range(len(col)):
        v = col[i]
        if v in ("?", "."):
            out[i] = np.nan
        else:
            try:
                out[i] = float(gemmi.cif.as_string(v))
            except ValueError:
                raise InputError(p, f"_atom_site.{name} row {i + 1}: {v!r} is not a number") from None
    return out


def check_model_in_map(
    atoms: Union[Atoms, np.ndarray],
    mapdata: MapData,
    path: Optional[PathLike] = None,
    min_fraction: float = 0.0,
) -> float:
    """Fraction of atoms that lie inside the map box, refusing a model that misses the map.

    An atom is inside when its fractional voxel index ``(xyz - origin) / voxel_size`` lies in
    ``[0, n - 1]`` along x, y and z (the region where trilinear interpolation is defined).

    Parameters
    ----------
    atoms
        :class:`Atoms` or an ``(n, 3)`` array of positions (x, y, z) in Å.
    mapdata
        The map.
    path
        File named in the error (the model file); defaults to the map's path.
    min_fraction
        Raise when the fraction inside is below this (0 = only when no atom is inside).

    Raises
    ------
    InputError
        "model lies entirely outside the map" (with both boxes in Å), or too few atoms inside.
    """
    xyz = atoms.xyz if isinstance(atoms, Atoms) else np.asarray(atoms, dtype=np.float64).reshape(-1, 3)
    where = path if path is not None else mapdata.path
    if xyz.shape[0] == 0:
        raise InputError(where, "model has no atoms")
    idx = mapdata.xyz_to_index(xyz)
    upper = mapdata.grid_size - 1
    inside = np.all((idx >= 0) & (idx <= upper), axis=1)
    fraction = float(np.count_nonzero(inside)) / xyz.shape[0]
    if fraction == 0.0 or fraction < min_fraction:
        lo = mapdata.origin
        hi = mapdata.index_to_xyz(upper)
        box = "map box x %.1f..%.1f, y %.1f..%.1f, z %.1f..%.1f A" % (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])
        mlo, mhi = xyz.min(axis=0), xyz.max(axis=0)
        mbox = "model x %.1f..%.1f, y %.1f..%.1f, z %.1f..%.1f A" % (mlo[0], mhi[0], mlo[1], mhi[1], mlo[2], mhi[2])
        map_name = f" {os.path.basename(mapdata.path)}" if mapdata.path else ""
        if fraction == 0.0:
            reason = f"model lies entirely outside the map{map_name} ({mbox}; {box}); check the map origin or the model"
        else:
            reason = (
                f"only {100 * fraction:.1f}% of the atoms lie inside the map{map_name} "
                f"(at least {100 * min_fraction:.1f}% needed; {mbox}; {box})"
            )
        raise InputError(where, reason)
    return fraction
