"""Training examples: experimental-looking maps from real atomic models, labelled with exact Q.

Sources
-------
Protein models from ``../shared/data/structures`` (its ``index.csv``): single protein (no
nucleic acid) entries with 300-30 000 non-H atoms; **PDB 7CEC is never used** (EMD-30342 /
7CEC chain A is the real-map check).  Without that folder the procedural
:func:`deepqs.simulate.build_protein_model` is used.  Waters, ligands and hydrogens are removed.

One example (:func:`simulate_example`)
---------------------------------------
Atoms within a cube of ``crop + 2·16`` Å around a random atom are kept (so big models stay cheap).
At a resolution ``R`` drawn uniformly from [2, 8] Å:

* signal = sum of Gaussians (:func:`deepqs.simulate.model_map`, 1 Å/voxel) with the model's
  B-factors rescaled to a median of U(25, 90) Å² (relative values kept, clipped to 0.3-4 × the
  median; models deposited with constant or zero B get a uniform B), plus *local blurring*: extra B up to ``U(0, 1.5)·R²·8`` Å² growing with
  the distance from the centre of the crop and for the 30 % of atoms with the highest B
  (surface, loops, termini), plus a global B = ``global_b(R)`` Å² (see :data:`CALIBRATION`);
* *partial / missing density*: with probability 0.5, one to three stretches of 4-15 residues get
  occupancy U(0, 0.6) in the map (the atoms stay in the model, so their Q is low);
* *coloured noise*: white Gaussian noise shaped in Fourier space by ``exp(-B_n k² / 4)``,
  ``B_n = U(0.3, 1)·global_b(R)``, scaled to ``nsr(R)·U(0.7, 1.4)`` times the r.m.s. signal
  inside the molecule (voxels above 10 % of the signal maximum);
* *sharpened / blurred variants*: the sum is multiplied by ``exp(-B_s k² / 4)`` with
  ``B_s = U(-0.3, 0.3)·global_b(R)`` and low-passed at R (raised-cosine edge, as FSC-filtered
  maps are), each with probability 0.5;
* *masked* (probability 0.4): multiplied by a soft molecular mask (signal above 2 % of its
  maximum, dilated 3 Å, cosine edge 3 Å).

Global B and noise-to-signal ratio were calibrated (``calibrate`` below, numbers in
:data:`CALIBRATION`) so that the mean Q-score of the simulated maps follows MapQ's published
relation for real maps, ``Q = -0.1775 R + 1.1192`` (σ = 0.6), over 2-8 Å.

The label rule is :mod:`deepqs.localq.labels` (Q of the nearest atom within 1.5 Å, weight 0
elsewhere).  The crop (``crop``³ voxels) is taken from the centre of the map and randomly
flipped / axis-permuted.  Everything is seeded: example ``i`` of a data set with ``seed`` uses
``np.random.default_rng([seed, i])``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from deepqs.io.atoms import Atoms
from deepqs.io.mapdata import MapData
from deepqs.localq.labels import label_map
from deepqs.localq.normalise import normalise_map
from deepqs.localq.resample import lowpass

__all__ = ["CALIBRATION", "global_b", "noise_to_signal", "SimulatedExample", "simulate_example",
           "list_structures", "load_structure_atoms", "LocalQDataset", "EXCLUDED_PDB_IDS",
           "default_structures_dir"]

#: Models never used for training (the real-map check).
EXCLUDED_PDB_IDS = ("7CEC",)

#: Resolution (Å) -> (global B factor per R² [Å² / Å²], noise r.m.s. / signal r.m.s.).
#: The noise column comes from :func:`calibrate` (8 models of ``list_structures()[3::16]`` + one
#: procedural model, 7 bisection steps)
#: so that mean Q(σ = 0.6) ≈ max(-0.1775 R + 1.1192, Q_FLOOR) for the nominal maps.
CALIBRATION = {
    2.0: (4.0, 0.25),
    2.5: (4.0, 0.40),
    3.0: (4.0, 0.52),
    3.5: (4.0, 0.62),
    4.0: (4.0, 0.65),
    5.0: (4.0, 0.95),
    6.0: (4.0, 3.86),
    7.0: (4.0, 5.6),
    8.0: (4.0, 6.0),
}

_PAD_A = 16.0
#: Median atomic B (Å²) of the nominal maps; model B-factors are rescaled to it (relative values kept).
NOMINAL_MEDIAN_B = 50.0


def _calib(resolution: float) -> Tuple[float, float]:
    rs = np.array(sorted(CALIBRATION))
    bf = np.array([CALIBRATION[r][0] for r in rs])
    ns = np.array([CALIBRATION[r][1] for r in rs])
    r = float(resolution)
    return float(np.interp(r, rs, bf)), float(np.exp(np.interp(r, rs, np.log(ns))))


def global_b(resolution: float) -> float:
    """Global B (Å²) added to every atom of a simulated map at ``resolution`` Å."""
    return _calib(resolution)[0] * float(resolution) ** 2


def noise_to_signal(resolution: float) -> float:
    """Noise r.m.s. over signal r.m.s. (inside the molecule) at ``resolution`` Å."""
    return _calib(resolution)[1]


def default_structures_dir() -> Path:
    """``../shared/data/structures`` next to the repository (may not exist)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "structures"


def list_structures(folder: Optional[os.PathLike] = None, min_atoms: int = 300, max_atoms: int = 30000,
                    exclude: Sequence[str] = ()) -> List[str]:
    """Paths of usable protein models in ``folder`` (its ``index.csv``); [] when absent."""
    folder = Path(folder) if folder is not None else default_structures_dir()
    index = folder / "index.csv"
    if not index.is_file():
        return []
    out = []
    skip = {s.upper() for s in EXCLUDED_PDB_IDS} | {s.upper() for s in exclude}
    with open(index, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                n = int(row.get("n_atoms_nonH") or 0)
            except ValueError:
                continue
            pdb = (row.get("pdb_id") or "").upper()
            if pdb in skip or any(s in row["file"].upper() for s in skip):
                continue
            if row.get("has_protein") != "1" or row.get("has_nucleic") == "1":
                continue
            if not (min_atoms <= n <= max_atoms):
                continue
            if (folder / row["file"]).is_file():
                out.append(str(folder / row["file"]))
    return sorted(out)


def load_structure_atoms(path_or_seed) -> Atoms:
    """Protein atoms (no H, waters or ligands) of a model file, or of the procedural model for an int seed."""
    from deepqs.io.models import atoms_from_structure, read_model
    if isinstance(path_or_seed, (int, np.integer)):
        from deepqs.simulate import build_protein_model
        st = build_protein_model(n_residues=80 + int(path_or_seed) % 5 * 30, seed=int(path_or_seed))
    else:
        st = read_model(path_or_seed)
    st.remove_hydrogens()
    st.remove_ligands_and_waters()
    st.remove_empty_chains()
    at = atoms_from_structure(st)
    keep = ~at.is_hydrogen & ~at.is_water & ~at.is_hetero
    return at.select(keep)


@dataclass
class SimulatedExample:
    """One simulated map with its labels (all arrays [z, y, x] on ``map``'s 1 Å grid).

    ``q``: per-atom Q-scores of ``atoms`` in ``map``; ``labels``/``weights``: label rule of
    :mod:`deepqs.localq.labels`; ``resolution_A``: the nominal resolution.
    """

    map: MapData
    atoms: Atoms
    q: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    resolution_A: float
    masked: bool


def _fourier_b(data: np.ndarray, b: float) -> np.ndarray:
    """Multiply by exp(-B k² / 4) in Fourier space (1 Å voxels; B in Å², negative sharpens)."""
    nz, ny, nx = data.shape
    k2 = (np.fft.fftfreq(nz)[:, None, None] ** 2 + np.fft.fftfreq(ny)[None, :, None] ** 2
          + np.fft.rfftfreq(nx)[None, None, :] ** 2)
    ft = np.fft.rfftn(data) * np.exp(-b * k2 / 4.0)
    return np.fft.irfftn(ft, s=data.shape)


def _soft_mask(signal: np.ndarray, rng_free_threshold: float = 0.02, dilate: float = 3.0, edge: float = 3.0) -> np.ndarray:
    from scipy import ndimage
    core = signal > rng_free_threshold * signal.max()
    dist = ndimage.distance_transform_edt(~core)
    t = np.clip((dist - dilate) / edge, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * t))


def simulate_example(atoms: Atoms, rng: np.random.Generator, resolution: Optional[float] = None,
                     crop: int = 48, variants: bool = True, compute_labels: bool = True,
                     nsr: Optional[float] = None) -> SimulatedExample:
    """One experimental-looking 1 Å/voxel map of (a cube of) ``atoms`` with labels; see module doc.

    ``variants=False`` gives the nominal map (no random B scaling, no missing density, no
    sharpening/blurring, no mask, noise exactly ``noise_to_signal(R)``): used by the realism check.
    ``nsr`` overrides ``noise_to_signal(R)`` (calibration).
    """
    from deepqs.qscore import compute_qscores
    from deepqs.simulate import model_map

    R = float(rng.uniform(2.0, 8.0)) if resolution is None else float(resolution)
    xyz = atoms.xyz
    centre = xyz[rng.integers(len(atoms))]
    half = crop / 2.0 + _PAD_A
    sel = np.all(np.abs(xyz - centre) <= half, axis=1)
    at = atoms.select(sel)
    n = len(at)
    b_raw = np.asarray(at.b_iso, dtype=np.float64)
    med_b = float(np.median(b_raw)) if n else 0.0
    b_rel = np.clip(b_raw / med_b, 0.3, 4.0) if med_b > 0 else np.ones(n)
    b_atoms = b_rel * (rng.uniform(25.0, 90.0) if variants else NOMINAL_MEDIAN_B)
    # local blurring: distance from the centre of mass of the crop, and high-B atoms
    com = at.xyz.mean(axis=0)
    r = np.linalg.norm(at.xyz - com, axis=1)
    ramp_r = np.clip((r - np.median(r)) / max(r.max() - np.median(r), 1e-6), 0, 1) ** 2
    ramp_b = np.clip((b_atoms - np.percentile(b_atoms, 70)) / max(b_atoms.max() - np.percentile(b_atoms, 70), 1e-6), 0, 1)
    local_max = (rng.uniform(0.0, 1.5) if variants else 0.75) * 8.0 * R ** 2 / 4.0
    extra = local_max * np.maximum(ramp_r, ramp_b) + global_b(R)
    occ = np.asarray(at.occupancy, dtype=np.float64).copy()
    if variants and rng.random() < 0.5:
        res_id = np.unique(np.char.add(at.chain.astype(str), at.resseq.astype(str)), return_inverse=True)[1].ravel()
        n_res = int(res_id.max()) + 1
        for _ in range(int(rng.integers(1, 4))):
            length = int(rng.integers(4, 16))
            start = int(rng.integers(0, max(n_res - length, 1)))
            occ[(res_id >= start) & (res_id < start + length)] = rng.uniform(0.0, 0.6)
    box = int(crop + 2 * _PAD_A)
    box += box % 2
    origin = np.round(centre) - box // 2
    at_map = at.select(np.arange(n))
    at_map.occupancy = occ
    at_map.b_iso = b_atoms
    signal = model_map(at_map, 1.0, None, shape=(box, box, box), origin=origin, extra_b=extra).data.astype(np.float64)

    smax = float(signal.max()) if signal.size else 0.0
    inside = signal > 0.1 * smax
    s_rms = float(np.sqrt(np.mean(signal[inside] ** 2))) if inside.any() else 1.0
    white = rng.standard_normal(signal.shape)
    b_n = (rng.uniform(0.3, 1.0) if variants else 0.6) * global_b(R)
    noise = _fourier_b(white, b_n)
    noise *= ((noise_to_signal(R) if nsr is None else float(nsr)) * (rng.uniform(0.7, 1.4) if variants else 1.0) * s_rms
              / max(float(noise.std()), 1e-12))
    data = signal + noise
    if variants and rng.random() < 0.5:
        data = _fourier_b(data, rng.uniform(-0.3, 0.3) * global_b(R))
    if not variants or rng.random() < 0.5:
        data = lowpass(data, (1.0, 1.0, 1.0), R).astype(np.float64)
    masked = bool(variants and rng.random() < 0.4)
    if masked:
        data = data * _soft_mask(signal)
    m = MapData(data.astype(np.float32), 1.0, origin)
    if compute_labels:
        q = compute_qscores(m, at, sigma=0.6, threads=1).q
        labels, weights = label_map(m, at.xyz, q)
    else:
        q = np.full(n, np.nan)
        labels = weights = np.zeros(m.shape, dtype=np.float32)
    return SimulatedExample(m, at, q, labels, weights, R, masked)


def central_crop(arr: np.ndarray, crop: int) -> np.ndarray:
    """The central ``crop``³ block of a cubic array."""
    s = (arr.shape[0] - crop) // 2
    return arr[s:s + crop, s:s + crop, s:s + crop]


class LocalQDataset:
    """A map-style torch data set of simulated training crops (see module doc).

    ``dataset[i]`` -> ``(input (1, c, c, c), labels (1, c, c, c), weights (1, c, c, c))`` float32
    tensors, deterministic for ``(seed, offset + i)``.  ``sources`` are model paths or int seeds of
    the procedural model; example ``i`` uses ``sources[(offset + i) % len(sources)]``.  ``offset``
    (default 0) may be changed between epochs so that every epoch draws new examples
    (``TrainConfig.fresh``).
    """

    def __init__(self, sources: Sequence, n_examples: int, seed: int = 0, crop: int = 48,
                 resolution_range: Tuple[float, float] = (2.0, 8.0)):
        self.sources = list(sources)
        if not self.sources:
            raise ValueError("no training structures")
        self.n = int(n_examples)
        self.seed = int(seed)
        self.crop = int(crop)
        self.resolution_range = resolution_range
        self.offset = 0
        self._cache = {}

    def __len__(self) -> int:
        return self.n

    def _atoms(self, src) -> Atoms:
        key = src if isinstance(src, str) else int(src)
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = load_structure_atoms(src)
        return self._cache[key]

    def __getitem__(self, i: int):
        import torch
        k = int(self.offset) + int(i)
        rng = np.random.default_rng([self.seed, k])
        src = self.sources[k % len(self.sources)]
        R = float(rng.uniform(*self.resolution_range))
        ex = simulate_example(self._atoms(src), rng, resolution=R, crop=self.crop)
        x = central_crop(normalise_map(ex.map.data), self.crop)
        y = central_crop(ex.labels, self.crop)
        w = central_crop(ex.weights, self.crop)
        if rng.random() < 0.5:
            perm = rng.permutation(3)
            x, y, w = (np.transpose(a, perm) for a in (x, y, w))
        for ax in range(3):
            if rng.random() < 0.5:
                x, y, w = (np.flip(a, ax) for a in (x, y, w))
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)[None])
        return t(x), t(y), t(w)


def mean_q_nominal(atoms_list: Sequence[Atoms], resolution: float, seed: int = 0, crop: int = 40,
                   nsr: Optional[float] = None) -> float:
    """Mean over ``atoms_list`` of the mean per-atom Q of nominal maps (``variants=False``)."""
    qs = []
    for j, at in enumerate(atoms_list):
        ex = simulate_example(at, np.random.default_rng([seed, j]), resolution=resolution, crop=crop,
                              variants=False, nsr=nsr)
        qs.append(float(np.nanmean(ex.q)))
    return float(np.mean(qs))


def mapq_relation(resolution: float) -> float:
    """MapQ's expected mean Q (σ = 0.6, protein) at ``resolution`` Å: ``-0.1775 R + 1.1192``."""
    return -0.1775 * float(resolution) + 1.1192


#: Below this the relation cannot be reached by simulation: as the signal vanishes in noise the
#: mean Q tends to 0 from above, never to the relation's negative values (7-8 Å).
Q_FLOOR = 0.03


def calibrate(atoms_list: Sequence[Atoms], resolutions: Sequence[float] = tuple(CALIBRATION),
              iterations: int = 8, seed: int = 0) -> dict:
    """Noise-to-signal ratio per resolution giving mean Q = ``max(mapq_relation(R), Q_FLOOR)``.

    Bisection on log(nsr) in [0.02, 20]; returns ``{R: nsr}`` (the table :data:`CALIBRATION` holds).
    """
    out = {}
    for R in resolutions:
        target = max(mapq_relation(R), Q_FLOOR)
        lo, hi = np.log(0.02), np.log(20.0)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            q = mean_q_nominal(atoms_list, R, seed=seed, nsr=float(np.exp(mid)))
            if q > target:
                lo = mid
            else:
                hi = mid
        out[float(R)] = float(np.exp(0.5 * (lo + hi)))
    return out
