"""Data sets of the picking benchmark and of the shipped model's training (seeded, reproducible).

* Simulated: micrographs of 512 x 512 pixels from :func:`deepqs.simulate.micrographs.simulate_micrographs`
  with several particles (C1-C6 oligomers of procedural proteins), particle diameters of about
  20-64 px, SNR 0.05-0.3, defocus 0.8-3 µm and junk (ice blobs, aggregates, sometimes a carbon
  edge).  ``split`` picks disjoint seeds: "train", "val" or "test".
* Real: ``../shared/data/picking/cryoppp_dev/<EMPIAR>/<split>/images/*.png`` with ``coords/*.csv``
  (8-bit, 1024 x 1024, no pixel size; particle diameter = twice the label disc radius).
"""

from __future__ import annotations

import functools
import glob
import os
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CRYOPPP = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data", "picking", "cryoppp_dev"))
#: Particle diameter (px of the PNGs) per EMPIAR id: twice the label disc radius (README).
CRYOPPP_DIAMETER_PX = {"10028": 56.0, "10059": 35.6, "10947": 59.8}
SEED_BASE = {"train": 1000, "val": 5000, "test": 9000}


@dataclass
class LabelledMicrograph:
    """One micrograph with its true centres (original pixels, x = column) and diameter (px)."""

    name: str
    image: np.ndarray
    coordinates: np.ndarray
    diameter_px: float
    source: str
    junk_mask: Optional[np.ndarray] = None      # simulated only: pixels covered by junk
    junk: Optional[list] = None                 # simulated only: the simulator's junk objects


@functools.lru_cache(maxsize=8)
def _particle(kind: int):
    from deepqs.io.models import atoms_from_structure
    from deepqs.simulate.micrographs import default_particle
    from deepqs.simulate.protein import build_assembly, build_protein_model, protein_atoms

    if kind <= 4:
        return default_particle(n_copies=(1, 2, 3, 4, 6)[kind])
    if kind == 5:
        return protein_atoms(200, 3)
    return atoms_from_structure(build_assembly(build_protein_model(90, 7), n_copies=5, seed=7))


N_KINDS = 7


def simulated(split: str, n: int, shape=(512, 512)) -> List[LabelledMicrograph]:
    """``n`` simulated micrographs of ``split`` (deterministic)."""
    from deepqs.simulate.micrographs import simulate_micrographs

    out = []
    for i in range(n):
        seed = SEED_BASE[split] + i
        rng = np.random.default_rng(seed)
        kind = int(rng.integers(0, N_KINDS))
        atoms = _particle(kind)
        xyz = np.asarray(atoms.xyz, float)
        diam_A = 2 * np.linalg.norm(xyz - xyz.mean(0), axis=1).max()
        d_px = float(rng.uniform(20, 64))
        ps = diam_A / d_px
        area = shape[0] * shape[1]
        n_part = int(rng.uniform(0.15, 0.45) * area / (np.pi * (d_px / 2) ** 2))
        junk = {"ice_blobs": int(rng.integers(0, 4)), "aggregates": int(rng.integers(0, 3)),
                "carbon_edge": int(rng.random() < 0.25)}
        m = simulate_micrographs(1, shape, pixel_size=ps, n_particles=max(n_part, 3), atoms=atoms, seed=seed,
                                 snr=float(rng.uniform(0.05, 0.3)), junk=junk,
                                 defocus_um=(0.8, 3.0))[0]
        out.append(LabelledMicrograph(f"sim_{split}_{i:03d}", m.image, m.coordinates, m.particle_diameter_px,
                                      "simulated", m.junk_mask, m.junk))
    return out


def cryoppp(split: str, empiar: Optional[str] = None) -> List[LabelledMicrograph]:
    """The cryoppp_dev micrographs of ``split`` ("train", "valid", "test"); empty when absent."""
    from deepqs.io import read_coordinates
    from deepqs.picking.preprocess import read_image

    out = []
    for eid in sorted(CRYOPPP_DIAMETER_PX):
        if empiar is not None and eid != empiar:
            continue
        for png in sorted(glob.glob(os.path.join(CRYOPPP, eid, split, "images", "*.png"))):
            stem = os.path.splitext(os.path.basename(png))[0]
            csv = os.path.join(CRYOPPP, eid, split, "coords", stem + ".csv")
            if not os.path.exists(csv):
                continue
            img, _ = read_image(png)
            c = read_coordinates(csv)
            out.append(LabelledMicrograph(stem, img, c.xy, CRYOPPP_DIAMETER_PX[eid], f"cryoppp_{eid}"))
    return out
