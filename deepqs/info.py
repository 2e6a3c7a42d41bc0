"""What a file holds: summaries of maps, models, coordinates and weights for ``deepqs info``."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from deepqs.errors import InputError, PathLike
from deepqs.io.mapdata import MapData, Triple

#: Slab size (z sections) for statistics of memory-mapped maps, so big maps never load at once.
_SLAB_VOXELS = 16_000_000


def map_summary(m: MapData, bins: int = 100) -> dict:
    """Grid and value statistics of a map, computed slab by slab (works on memory-mapped data).

    Returns a JSON-able dict: ``grid_size_xyz`` (voxels), ``voxel_size_A`` (Å/voxel),
    ``origin_A`` and ``box_size_A`` (Å), ``min``/``max``/``mean``/``std``, ``fraction_zero`` and
    ``histogram`` (``edges``, ``counts``) with ``bins`` equal bins between min and max.
    """
    if bins < 1:
        raise InputError(None, f"the number of histogram bins must be positive, got {bins}")
    nz = m.data.shape[0]
    slab = max(1, _SLAB_VOXELS // max(1, m.data.shape[1] * m.data.shape[2]))
    n = 0
    total = 0.0
    lo, hi = np.inf, -np.inf
    zeros = 0
    for z0 in range(0, nz, slab):
        block = np.asarray(m.data[z0:z0 + slab], dtype=np.float64)
        n += block.size
        total += block.sum()
        lo = min(lo, block.min())
        hi = max(hi, block.max())
        zeros += int(np.count_nonzero(block == 0))
    mean = total / n
    sq = 0.0
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    counts = np.zeros(bins, dtype=np.int64)
    for z0 in range(0, nz, slab):
        block = np.asarray(m.data[z0:z0 + slab], dtype=np.float64)
        sq += np.square(block - mean).sum()
        counts += np.histogram(block, bins=edges)[0]
    return {
        "grid_size_xyz": [int(v) for v in m.grid_size],
        "voxel_size_A": [float(v) for v in m.voxel_size],
        "origin_A": [float(v) for v in m.origin],
        "box_size_A": [float(v) for v in m.box_size_A],
        "min": float(lo),
        "max": float(hi),
        "mean": float(mean),
        "std": float(np.sqrt(sq / n)),
        "fraction_zero": zeros / n,
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def model_summary(path: PathLike) -> dict:
    """Counts of an atomic model: atoms, hydrogens, waters, ligands, chains, residues, altlocs."""
    from deepqs.io.models import atoms_from_structure, read_model

    st = read_model(path)
    atoms = atoms_from_structure(st)
    polymer = ~atoms.is_hetero & ~atoms.is_water
    residue_key = np.char.add(np.char.add(atoms.chain.astype(str), "|"),
                              np.char.add(atoms.resseq.astype(str), np.char.add("|", atoms.icode.astype(str))))
    nucleic = np.isin(atoms.resname, ["A", "C", "G", "U", "DA", "DC", "DG", "DT", "DU"])
    ligand = atoms.is_hetero & ~atoms.is_water
    lo = atoms.xyz.min(axis=0)
    hi = atoms.xyz.max(axis=0)
    return {
        "n_models": len(st),
        "n_atoms": len(atoms),
        "n_hydrogens": int(atoms.is_hydrogen.sum()),
        "n_waters": int(np.unique(residue_key[atoms.is_water]).size),
        "ligands": sorted(str(n) for n in np.unique(atoms.resname[ligand])),
        "chains": sorted(str(c) for c in np.unique(atoms.chain)),
        "n_residues": int(np.unique(residue_key).size),
        "n_nucleic_acid_residues": int(np.unique(residue_key[nucleic]).size),
        "n_polymer_atoms": int(polymer.sum()),
        "n_altloc_atoms": int(np.count_nonzero(atoms.altloc != "")),
        "bounding_box_A": {"min": [float(v) for v in lo], "max": [float(v) for v in hi]},
        "mean_b_iso_A2": float(atoms.b_iso.mean()) if len(atoms) else 0.0,
    }


def coordinates_summary(path: PathLike) -> dict:
    """Number of particle coordinates per micrograph of a coordinate file (.box/.star/.txt/.cs)."""
    from deepqs.io.coords import read_coordinates

    coords = read_coordinates(path)
    per_mic = coords if isinstance(coords, dict) else {coords.micrograph or os.path.basename(os.fspath(path)): coords}
    counts = {str(k): len(v) for k, v in per_mic.items()}
    return {"n_micrographs": len(counts), "n_coordinates": int(sum(counts.values())), "per_micrograph": counts}


def weights_summary(path: PathLike) -> dict:
    """Header of a weights file and the number of parameters it holds."""
    from deepqs.io.weights import load_weights

    state, header = load_weights(path)
    return {"header": header, "n_tensors": len(state), "n_parameters": int(sum(int(t.numel()) for t in state.values()))}


def describe_file(path: PathLike, voxel_size: Optional[Triple] = None, origin: Optional[Triple] = None,
                  bins: int = 100) -> dict:
    """Summarise any file the engine reads; the ``kind`` key says which reader was used.

    For maps ``voxel_size`` (Å/voxel) overrides a wrong header and ``origin`` (x, y, z in Å)
    replaces the header origin (e.g. the one a Scipion object carries).
    """
    from deepqs.io.detect import detect_kind
    from deepqs.io.maps import map_header_info, read_map

    kind = detect_kind(path)
    out = {"path": os.fspath(path), "kind": kind}
    if kind == "map":
        m = read_map(path, voxel_size=voxel_size, mmap=True)
        if origin is not None:
            m.origin = np.asarray(origin, dtype=np.float64).reshape(3)
        header = map_header_info(path)
        out["header"] = {k: v for k, v in header.items() if k not in ("min", "max", "mean", "std")}
        out.update(map_summary(m, bins=bins))
    elif kind == "model":
        out.update(model_summary(path))
    elif kind == "coordinates":
        out.update(coordinates_summary(path))
    elif kind == "weights":
        out.update(weights_summary(path))
    return out
