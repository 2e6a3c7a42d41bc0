"""Per-residue, per-chain and overall Q-score summaries (MapQ's groupings).

* Residue: consecutive atoms with the same (chain, residue number, insertion code, name), in
  model order.  Its Q is the mean over its non-hydrogen atoms.
* Protein residues (gemmi's table of amino acids, plus HSD/HSE): backbone = N, CA, C, O (and the
  terminal OT1/OT2 MapQ also counts); side chain = every other non-H atom, CB included (so an
  ``OXT`` counts as side chain, as in MapQ 1.7).
* Nucleic-acid residues: phosphate = P, OP1, OP2, OP3 (O1P, O2P, O3P), O5', C5', O3' (MapQ's
  backbone without the sugar); sugar = C1', C2', C3', C4', O4', O2'; base = the other non-H atoms.
  MapQ's nucleic "Q_backBone" is phosphate + sugar, reported here as ``q_backbone``.
* Types: protein, nucleic, water (HOH, WAT, DOD, H2O), ion (a residue of one non-H atom that is
  neither), ligand (anything else).
* Chains and the whole model: mean and median over their non-H atoms; the EMDB-style overall
  value leaves waters out.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional

import numpy as np

from deepqs.io.atoms import Atoms

PROTEIN_BACKBONE = frozenset({"N", "CA", "C", "O", "OT1", "OT2"})
NA_PHOSPHATE = frozenset({"P", "OP1", "OP2", "OP3", "O1P", "O2P", "O3P", "O5'", "C5'", "O3'"})
NA_SUGAR = frozenset({"C1'", "C2'", "C3'", "C4'", "O4'", "O2'"})

#: Columns of the residue table, in order.
RESIDUE_COLUMNS = ("chain", "resseq", "icode", "resname", "type", "n_atoms", "q_residue",
                   "q_backbone", "q_sidechain", "q_phosphate", "q_sugar", "q_base")


@lru_cache(maxsize=None)
def residue_type(resname: str, n_heavy: int = 2) -> str:
    """``protein``, ``nucleic``, ``water``, ``ion`` or ``ligand`` for a residue name."""
    import gemmi
    name = resname.strip().upper()
    if name in ("HOH", "WAT", "DOD", "H2O"):
        return "water"
    if name in ("HSD", "HSE", "HSP"):
        return "protein"
    info = gemmi.find_tabulated_residue(name)
    if info is not None:
        if info.is_water():
            return "water"
        if info.is_amino_acid():
            return "protein"
        if info.is_nucleic_acid():
            return "nucleic"
    return "ion" if n_heavy == 1 else "ligand"


@dataclass
class ResidueTable:
    """One row per residue (arrays of equal length); Q columns are NaN where they do not apply."""

    chain: np.ndarray
    resseq: np.ndarray
    icode: np.ndarray
    resname: np.ndarray
    type: np.ndarray
    n_atoms: np.ndarray          # non-H atoms
    q_residue: np.ndarray
    q_backbone: np.ndarray
    q_sidechain: np.ndarray
    q_phosphate: np.ndarray
    q_sugar: np.ndarray
    q_base: np.ndarray
    first_atom: np.ndarray       # row of the residue's first atom in the Atoms arrays

    def __len__(self) -> int:
        return int(self.chain.shape[0])

    def rows(self) -> List[Dict[str, object]]:
        """The table as a list of dicts (NaN kept)."""
        return [{c: _plain(getattr(self, c)[i]) for c in RESIDUE_COLUMNS} for i in range(len(self))]

    def write_tsv(self, path) -> None:
        """Write the table as TSV with a header line; empty cells where a column does not apply."""
        from deepqs.io.atomic import atomic_output
        with atomic_output(path) as tmp:
            with open(tmp, "w", newline="") as fh:
                w = csv.writer(fh, delimiter="\t", lineterminator="\n")
                w.writerow(RESIDUE_COLUMNS)
                for i in range(len(self)):
                    row = []
                    for c in RESIDUE_COLUMNS:
                        v = getattr(self, c)[i]
                        if c.startswith("q_"):
                            row.append("" if not np.isfinite(v) else "%.6f" % v)
                        else:
                            row.append(str(v))
                    w.writerow(row)


def residue_index(atoms: Atoms) -> np.ndarray:
    """Residue number (0, 1, ...) of every atom: a new residue starts where the key changes."""
    n = len(atoms)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for arr in (atoms.chain, atoms.resseq, atoms.icode, atoms.resname):
        change[1:] |= arr[1:] != arr[:-1]
    return np.cumsum(change) - 1


def residue_table(atoms: Atoms, q: np.ndarray) -> ResidueTable:
    """Per-residue Q means (non-H atoms) in model order; see the module notes for the groups."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape[0] != len(atoms):
        raise ValueError(f"{q.shape[0]} Q values for {len(atoms)} atoms")
    rid = residue_index(atoms)
    n_res = int(rid[-1]) + 1 if rid.size else 0
    first = np.searchsorted(rid, np.arange(n_res)) if n_res else np.zeros(0, dtype=np.int64)
    heavy = ~atoms.is_hydrogen & np.isfinite(q)
    n_heavy = np.bincount(rid[heavy], minlength=n_res)
    names = atoms.resname[first] if n_res else np.zeros(0, dtype=str)
    rtype = np.array([residue_type(str(nm), int(k)) for nm, k in zip(names, n_heavy)], dtype=object)
    atom_type = rtype[rid] if rid.size else np.zeros(0, dtype=object)
    is_prot = atom_type == "protein"
    is_na = atom_type == "nucleic"
    name = atoms.name
    bb_prot = is_prot & np.isin(name, list(PROTEIN_BACKBONE))
    phos = is_na & np.isin(name, list(NA_PHOSPHATE))
    sugar = is_na & np.isin(name, list(NA_SUGAR))

    def mean_of(mask):
        m = heavy & mask
        s = np.bincount(rid[m], weights=q[m], minlength=n_res)
        c = np.bincount(rid[m], minlength=n_res)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(c > 0, s / np.maximum(c, 1), np.nan)

    all_atoms = np.ones(len(atoms), dtype=bool)
    return ResidueTable(
        chain=atoms.chain[first], resseq=atoms.resseq[first], icode=atoms.icode[first],
        resname=names, type=rtype.astype(str), n_atoms=n_heavy,
        q_residue=mean_of(all_atoms),
        q_backbone=mean_of(bb_prot | phos | sugar),
        q_sidechain=mean_of(is_prot & ~bb_prot),
        q_phosphate=mean_of(phos),
        q_sugar=mean_of(sugar),
        q_base=mean_of(is_na & ~phos & ~sugar),
        first_atom=first,
    )


def chain_stats(atoms: Atoms, q: np.ndarray, include_water: bool = True) -> List[Dict[str, object]]:
    """Per chain (model order): non-H atom count, mean and median Q."""
    q = np.asarray(q, dtype=np.float64)
    heavy = ~atoms.is_hydrogen & np.isfinite(q)
    if not include_water:
        heavy &= ~atoms.is_water
    out = []
    _, first = np.unique(atoms.chain, return_index=True)
    for ch in atoms.chain[np.sort(first)]:
        m = heavy & (atoms.chain == ch)
        vals = q[m]
        out.append({"chain": str(ch), "atoms": int(vals.size),
                    "mean_q": _stat(np.mean, vals), "median_q": _stat(np.median, vals)})
    return out


def overall_stats(atoms: Atoms, q: np.ndarray) -> Dict[str, object]:
    """Mean/median Q over all non-H atoms, and EMDB-style (waters left out)."""
    q = np.asarray(q, dtype=np.float64)
    heavy = ~atoms.is_hydrogen & np.isfinite(q)
    no_water = heavy & ~atoms.is_water
    return {
        "atoms": int(heavy.sum()),
        "mean_q": _stat(np.mean, q[heavy]),
        "median_q": _stat(np.median, q[heavy]),
        "atoms_no_water": int(no_water.sum()),
        "mean_q_no_water": _stat(np.mean, q[no_water]),
        "median_q_no_water": _stat(np.median, q[no_water]),
    }


def dominant_kind(atoms: Atoms) -> str:
    """``nucleic`` when nucleic-acid atoms outnumber protein atoms, else ``protein``."""
    if len(atoms) == 0:
        return "protein"
    rid = residue_index(atoms)
    heavy = ~atoms.is_hydrogen
    first = np.searchsorted(rid, np.arange(int(rid[-1]) + 1))
    counts = np.bincount(rid[heavy], minlength=first.size)
    kinds = np.array([residue_type(str(n), int(c)) for n, c in zip(atoms.resname[first], counts)])
    n_prot = int(counts[kinds == "protein"].sum())
    n_na = int(counts[kinds == "nucleic"].sum())
    return "nucleic" if n_na > n_prot else "protein"


def _stat(fn, vals: np.ndarray) -> Optional[float]:
    return float(fn(vals)) if vals.size else None


def _plain(v):
    if isinstance(v, (np.floating, float)):
        return float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.str_):
        return str(v)
    return v


def nan_to_none(v: Optional[float]) -> Optional[float]:
    """JSON-friendly number: NaN/inf -> None."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None
