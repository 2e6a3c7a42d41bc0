"""MapQ-exact Q-scores (Pintilie et al., Nat Methods 2020), vectorised.

``compute_qscores(mapdata, atoms)`` scores every non-hydrogen atom of a model against a map and
reproduces MapQ 1.7's single-process values (EMD-30342 / 7CEC chain A: all 4,308 atoms within
the 3 printed decimals, the per-residue means within their 6 printed decimals).  The sampling
rule is in :mod:`deepqs.qscore.core`, the sphere points in :mod:`deepqs.qscore.sphere`, the
groupings in :mod:`deepqs.qscore.aggregate` and the Q-versus-resolution relations in
:mod:`deepqs.qscore.relations`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import numpy as np

from deepqs.errors import InputError
from deepqs.io.atoms import Atoms
from deepqs.io.mapdata import MapData
from deepqs.qscore import relations
from deepqs.qscore.aggregate import (
    ResidueTable,
    chain_stats,
    dominant_kind,
    nan_to_none,
    overall_stats,
    residue_table,
)
from deepqs.qscore.core import QScorer, default_threads
from deepqs.qscore.hydrogens import hydrogen_parents
from deepqs.qscore.interp import Interpolator

DEVICES = ("cpu", "cuda")


@dataclass
class QScoreResult:
    """Per-atom Q-scores, aligned with the rows of the :class:`~deepqs.io.atoms.Atoms` scored.

    Attributes
    ----------
    q
        (n,) float64.  Non-H atoms: their Q-score.  Hydrogens: the Q of the heavy atom they are
        bonded to (:func:`~deepqs.qscore.hydrogens.hydrogen_parents`), NaN when none is found.
    scored
        (n,) bool: the atom was scored (every non-hydrogen atom).
    outside
        (n,) bool: a scored atom whose centre lies outside the map box (it is still scored; map
        values outside the box count as 0).
    sigma
        Width (Å) of the reference Gaussian.
    hydrogen_parent
        (n,) row of each hydrogen's heavy atom (-1 elsewhere).
    """

    q: np.ndarray
    scored: np.ndarray
    outside: np.ndarray
    sigma: float
    hydrogen_parent: np.ndarray = field(repr=False, default=None)

    @property
    def n_atoms(self) -> int:
        return int(self.q.shape[0])

    @property
    def n_scored(self) -> int:
        return int(self.scored.sum())

    @property
    def n_outside(self) -> int:
        return int(self.outside.sum())

    @property
    def n_hydrogens(self) -> int:
        return int((~self.scored).sum())


def compute_qscores(mapdata: MapData, atoms: Atoms, sigma: float = 0.6,
                    threads: Optional[int] = None, device: str = "cpu",
                    progress: Optional[Callable[[int], None]] = None,
                    model_path: Optional[str] = None) -> QScoreResult:
    """Q-score of every atom of ``atoms`` in ``mapdata`` (MapQ's single-process algorithm).

    Parameters
    ----------
    mapdata
        The map (``deepqs.io.read_map``); its origin and voxel size place the atoms.
    atoms
        The model (``deepqs.io.atoms_from_structure``).  Every non-H atom is scored and every
        non-H atom (all chains, waters, ligands, altlocs) can reject sample points.
    sigma
        Reference Gaussian width in Å (0.6: MapQ's command line; 0.4: EMDB and MapQ's GUI).
    threads
        Worker threads (default: the cores this process may use).
    device
        ``"cpu"`` (numpy) or ``"cuda"`` (torch; the same algorithm on the GPU).
    progress
        Called with the number of atoms finished after each chunk (for a progress bar).
    model_path
        File named in errors about the model (default: the map's path).

    Raises
    ------
    InputError
        No atom inside the map, a map that is not 3D, a bad sigma or an unknown device.
    """
    if not (isinstance(sigma, (int, float)) and np.isfinite(sigma) and sigma > 0):
        raise InputError(None, f"sigma must be a positive number of Å, got {sigma!r}")
    if device != "cpu":
        from deepqs.device import resolve_device

        # one rule for every command: unknown names are an InputError, a GPU that is not
        # visible falls back to the CPU with a warning on stderr
        device = str(resolve_device(device))
    data = mapdata.data
    if data.ndim != 3 or min(data.shape) < 1:
        raise InputError(mapdata.path, f"Q-scores need a 3D map, got an array of shape {data.shape}")
    vs = np.asarray(mapdata.voxel_size, dtype=np.float64)
    if not np.all(np.isfinite(vs) & (vs > 0)):
        raise InputError(mapdata.path, f"voxel size {tuple(vs)} is zero or unknown; give --voxel-size")
    scored = ~np.asarray(atoms.is_hydrogen, dtype=bool)
    heavy_xyz = atoms.xyz[scored]
    n = len(atoms)
    q = np.full(n, np.nan)
    outside = np.zeros(n, dtype=bool)
    if heavy_xyz.shape[0] == 0:
        raise InputError(model_path, "the model has no non-hydrogen atoms to score")
    from deepqs.io.models import check_model_in_map
    check_model_in_map(heavy_xyz, mapdata, path=model_path)
    interp = Interpolator(mapdata)
    outside[scored] = ~interp.inside(heavy_xyz)
    threads = default_threads() if threads is None else max(1, int(threads))
    if device.startswith("cuda"):
        from deepqs.qscore.torch_backend import score_torch
        q[scored] = score_torch(mapdata, heavy_xyz, sigma, device=device, progress=progress)
    else:
        scorer = QScorer(interp, heavy_xyz, sigma=sigma)
        q[scored] = scorer.score(heavy_xyz, threads=threads, progress=progress)
    parent = hydrogen_parents(atoms)
    h = np.flatnonzero(parent >= 0)
    q[h] = q[parent[h]]
    return QScoreResult(q=q, scored=scored, outside=outside, sigma=float(sigma), hydrogen_parent=parent)


def summarise(atoms: Atoms, result: QScoreResult, resolution: Optional[float] = None) -> Dict[str, object]:
    """The JSON summary (snake_case keys, plain numbers).

    Atom counts (total, scored, hydrogens, hydrogens without a parent, scored atoms outside the
    map, waters); mean and median Q per chain and overall, both over all non-H atoms (MapQ's
    convention, ``mean_q``) and without waters (EMDB's, ``mean_q_no_water``); sigma; the
    molecule type that chooses the linear relation (protein unless nucleic-acid atoms are the
    majority); the expected Q at ``resolution`` (linear and cubic ``Q_peak`` relations) and the
    resolution implied by the EMDB-style mean.  Relations and derived values are ``None`` for a
    sigma without a published relation.
    """
    q = result.q
    overall = overall_stats(atoms, q)
    kind = dominant_kind(atoms)
    sigma = result.sigma
    mean_q = overall["mean_q_no_water"] if overall["mean_q_no_water"] is not None else overall["mean_q"]
    out: Dict[str, object] = {
        "sigma_A": sigma,
        "atoms": {
            "total": result.n_atoms,
            "scored": result.n_scored,
            "hydrogens": result.n_hydrogens,
            "hydrogens_without_parent": int(((~result.scored) & ~np.isfinite(q)).sum()),
            "outside_map": result.n_outside,
            "waters": int((atoms.is_water & result.scored).sum()),
        },
        "mean_q": overall["mean_q"],
        "median_q": overall["median_q"],
        "mean_q_no_water": overall["mean_q_no_water"],
        "median_q_no_water": overall["median_q_no_water"],
        "chains": chain_stats(atoms, q),
        "molecule_type": kind,
        "relation": relations.describe(sigma, kind, "linear"),
        "relation_cubic": relations.describe(sigma, kind, "cubic"),
        "resolution_A": None if resolution is None else float(resolution),
        "expected_q": None,
        "expected_q_cubic": None,
        "implied_resolution_from": "mean_q_no_water",
        "implied_resolution_A": nan_to_none(relations.implied_resolution(mean_q, sigma, kind, "linear"))
        if mean_q is not None else None,
        "implied_resolution_cubic_A": nan_to_none(relations.implied_resolution(mean_q, sigma, kind, "cubic"))
        if mean_q is not None else None,
    }
    if resolution is not None:
        out["expected_q"] = nan_to_none(relations.expected_q(resolution, sigma, kind, "linear"))
        out["expected_q_cubic"] = nan_to_none(relations.expected_q(resolution, sigma, kind, "cubic"))
    return out


__all__ = [
    "DEVICES",
    "QScoreResult",
    "QScorer",
    "ResidueTable",
    "compute_qscores",
    "default_threads",
    "hydrogen_parents",
    "relations",
    "residue_table",
    "summarise",
]
