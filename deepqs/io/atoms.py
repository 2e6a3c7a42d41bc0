"""Flat per-atom arrays of an atomic model, for vectorised work."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass
class Atoms:
    """One row per atom of an atomic model (first model of the file, every altloc kept).

    Coordinates are in Å, B-factors in Å².  Atom identity for tables and comparisons is
    ``(chain, resseq, icode, name, altloc)`` (auth chain and residue numbers).
    """

    xyz: np.ndarray          # (n, 3) float64, Å
    element: np.ndarray      # (n,) str, upper-case element symbol ("C", "FE")
    b_iso: np.ndarray        # (n,) float64, Å²
    occupancy: np.ndarray    # (n,) float64
    chain: np.ndarray        # (n,) str, auth chain id
    resseq: np.ndarray       # (n,) int64, auth residue number
    icode: np.ndarray        # (n,) str, insertion code ('' for none)
    resname: np.ndarray      # (n,) str
    name: np.ndarray         # (n,) str, atom name
    altloc: np.ndarray       # (n,) str ('' for none)
    is_hetero: np.ndarray    # (n,) bool, HETATM record
    is_water: np.ndarray     # (n,) bool
    is_hydrogen: np.ndarray  # (n,) bool (H or D)

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def select(self, mask: np.ndarray) -> "Atoms":
        """A new ``Atoms`` with the rows where ``mask`` (bool or index array) selects."""
        return Atoms(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})
