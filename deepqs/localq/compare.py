"""Predicted local Q against the true Q-scores of an atomic model (when one exists).

A DeepQs map predicts, for every voxel inside the molecule, the Q-score an atom there would
get.  With a model at hand the prediction can be checked: each atom's *predicted* Q is the
local-Q map sampled (trilinear) at the atom's position, its *true* Q comes from the exact
Q-score engine (:func:`deepqs.qscore.compute_qscores`, σ = 0.6 Å by default) on the map the
prediction was made from.  Residue figures are means over a residue's non-hydrogen atoms, as in
:func:`deepqs.qscore.residue_table`.

Atoms where the local-Q map has no prediction (outside the molecular mask; more precisely where
fewer than half of the trilinear weight falls on predicted voxels) get NaN and are left out of
the figures; their number is reported.  Zeros outside the mask never leak into an atom's value:
the map and its mask are interpolated separately and divided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

import numpy as np

from deepqs.errors import InputError
from deepqs.io.atoms import Atoms
from deepqs.io.mapdata import MapData

__all__ = ["LocalQComparison", "sample_at_atoms", "predicted_atom_q", "compare_localq"]


def sample_at_atoms(mapdata: MapData, xyz: np.ndarray) -> np.ndarray:
    """Trilinear values of ``mapdata`` at atom positions ``xyz`` (n, 3; x, y, z in Å); 0 outside the box."""
    from scipy.ndimage import map_coordinates

    idx = mapdata.xyz_to_index(np.asarray(xyz, dtype=np.float64).reshape(-1, 3))[:, ::-1].T  # z, y, x rows
    return map_coordinates(np.asarray(mapdata.data, dtype=np.float32), idx, order=1, mode="constant", cval=0.0)


def predicted_atom_q(localq: MapData, xyz: np.ndarray, mask: np.ndarray = None) -> np.ndarray:
    """Predicted Q at each atom: local-Q sampled at the atom, NaN where there is no prediction.

    ``mask`` (bool, the local-Q grid) marks predicted voxels; default: voxels that are non-zero.
    """
    mask = (np.asarray(localq.data) != 0) if mask is None else np.asarray(mask, dtype=bool)
    weighted = sample_at_atoms(localq.with_data(np.where(mask, localq.data, 0.0).astype(np.float32)), xyz)
    cover = sample_at_atoms(localq.with_data(mask.astype(np.float32)), xyz)
    out = np.full(cover.shape, np.nan)
    ok = cover >= 0.5
    out[ok] = weighted[ok] / cover[ok]
    return out


@dataclass
class LocalQComparison:
    """Predicted vs true Q of one model.

    Per atom: ``q_true``, ``q_pred`` (NaN = not scored / no prediction).  Per residue (non-H
    atoms where both exist): ``residues`` (a dict of equal-length arrays: chain, resseq, icode,
    resname, n_atoms, q_true, q_pred).  ``summary``: JSON-able figures (Pearson r per residue and
    per atom, medians over atoms, |median difference|, counts).
    """

    q_true: np.ndarray
    q_pred: np.ndarray
    residues: Dict[str, np.ndarray]
    summary: Dict[str, Any]

    def write_residues_csv(self, path) -> None:
        """Write the per-residue table as CSV (chain,resseq,icode,resname,n_atoms,q_true,q_pred)."""
        from deepqs.io.atomic import atomic_output

        cols = ["chain", "resseq", "icode", "resname", "n_atoms", "q_true", "q_pred"]
        lines = [",".join(cols)]
        r = self.residues
        for i in range(len(r["chain"])):
            lines.append(",".join([str(r["chain"][i]), str(int(r["resseq"][i])), str(r["icode"][i]),
                                   str(r["resname"][i]), str(int(r["n_atoms"][i])),
                                   f"{r['q_true'][i]:.6f}", f"{r['q_pred'][i]:.6f}"]))
        with atomic_output(path) as tmp:
            with open(tmp, "w") as fh:
                fh.write("\n".join(lines) + "\n")


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def compare_localq(mapdata: MapData, localq: MapData, atoms: Atoms, sigma: float = 0.6,
                   mask: np.ndarray = None) -> LocalQComparison:
    """Compare a local-Q map (on ``mapdata``'s grid or any grid) with the model's true Q-scores.

    Raises :class:`InputError` when no atom has both a true and a predicted Q (model outside the
    map or outside the predicted region).
    """
    from deepqs.qscore import compute_qscores, residue_table

    true = compute_qscores(mapdata, atoms, sigma=sigma).q.astype(np.float64)
    pred = predicted_atom_q(localq, atoms.xyz, mask)
    heavy = ~atoms.is_hydrogen
    both = heavy & np.isfinite(true) & np.isfinite(pred)
    if not both.any():
        raise InputError(getattr(localq, "path", None),
                         "no atom of the model lies inside the predicted region of the local-Q map "
                         "(model outside the map or on another grid?)")
    t_both = np.where(both, true, np.nan)
    p_both = np.where(both, pred, np.nan)
    rt, rp = residue_table(atoms, t_both), residue_table(atoms, p_both)
    keep = np.isfinite(rt.q_residue) & np.isfinite(rp.q_residue)
    residues = {"chain": rt.chain[keep], "resseq": rt.resseq[keep], "icode": rt.icode[keep],
                "resname": rt.resname[keep], "n_atoms": rt.n_atoms[keep],
                "q_true": rt.q_residue[keep], "q_pred": rp.q_residue[keep]}
    med_t, med_p = float(np.median(true[both])), float(np.median(pred[both]))
    summary = {
        "pearson_residue": _pearson(residues["q_true"], residues["q_pred"]),
        "pearson_atom": _pearson(true[both], pred[both]),
        "median_true_q": med_t, "median_pred_q": med_p, "abs_median_diff": abs(med_p - med_t),
        "mean_true_q": float(true[both].mean()), "mean_pred_q": float(pred[both].mean()),
        "atoms": int(len(atoms)), "atoms_compared": int(both.sum()),
        "atoms_without_prediction": int((heavy & np.isfinite(true) & ~np.isfinite(pred)).sum()),
        "residues_compared": int(keep.sum()), "sigma_A": float(sigma),
    }
    return LocalQComparison(q_true=true, q_pred=pred, residues=residues, summary=summary)
