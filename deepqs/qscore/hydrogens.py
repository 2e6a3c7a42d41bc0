"""Which heavy atom each hydrogen is bonded to (hydrogens take that atom's Q-score)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from deepqs.io.atoms import Atoms

#: Longest X-H bond considered (Å): C-H 1.09, N-H 1.01, O-H 0.96, S-H 1.34, Se-H 1.47 allowed for.
MAX_BOND = 1.5
#: Heavy atoms examined per hydrogen, nearest first.
CANDIDATES = 4


def hydrogen_parents(atoms: Atoms, max_bond: float = MAX_BOND) -> np.ndarray:
    """Row of the bonded heavy atom for every hydrogen (-1 for heavy atoms and orphan hydrogens).

    The parent is the nearest non-hydrogen atom within ``max_bond`` Å that belongs to the same
    residue (chain, residue number, insertion code, name) and has a compatible altloc (the same
    one, or either blank).  No bond table is needed, and the rule holds for ligands too.
    """
    n = len(atoms)
    parent = np.full(n, -1, dtype=np.int64)
    h = np.flatnonzero(atoms.is_hydrogen)
    heavy = np.flatnonzero(~atoms.is_hydrogen)
    if h.size == 0 or heavy.size == 0:
        return parent
    from deepqs.qscore.aggregate import residue_index
    rid = residue_index(atoms)
    k = min(CANDIDATES, heavy.size)
    dist, idx = cKDTree(atoms.xyz[heavy]).query(atoms.xyz[h], k=k, distance_upper_bound=max_bond)
    if k == 1:
        dist, idx = dist[:, None], idx[:, None]
    found = idx < heavy.size
    cand = heavy[np.where(found, idx, 0)]
    alt_h = atoms.altloc[h][:, None]
    alt_c = atoms.altloc[cand]
    ok = (found & (rid[cand] == rid[h][:, None])
          & ((alt_c == alt_h) | (alt_c == "") | (alt_h == "")))
    has = ok.any(axis=1)
    first = ok.argmax(axis=1)
    parent[h[has]] = cand[has, first[has]]
    return parent
