"""The project's own labelled classification set for pruning, generated with :mod:`deepqs.simulate`.

Nothing is downloaded.  Each micrograph gets a particle drawn from a pool of procedural shapes
(:func:`deepqs.simulate.build_protein_model` monomers of 40-150 residues and
:func:`deepqs.simulate.build_assembly` C2-C6 oligomers of them), a pixel size that puts the particle
diameter between ``diameter_px_range`` pixels, a random SNR, defocus and junk
(``ice_blobs``, ``carbon_edge``, ``aggregates``), plus "crystalline ice" patches added here
(a soft disk of hexagonal lattice fringes, period 3-8 px).

Class rule (labels index :data:`deepqs.pruning.network.CLASSES`):

* **particle (0)**: a box centred (± 8 % of a diameter) on a good particle.
* **ice (1)**: a box centred on an ice/contamination blob, an aggregate (its centre or one of its
  members), a crystalline-ice patch, or on *empty ice*: a random point farther than 0.75 diameters
  from every particle and outside all junk (the "bad pick between particles" case).
* **carbon (2)**: a box centred on the carbon film (inside ``carbon_mask``) or on the carbon/hole
  edge (within a third of a box of the edge, on either side), farther than 0.75 diameters from
  every particle.

The box is ``box_ratio`` (drawn in ``box_ratio_range``) times the particle diameter and is
resampled to ``out_size`` pixels, as at prediction time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import scipy.ndimage as ndi

from deepqs.pruning.boxes import extract_boxes

__all__ = ["LabelledBoxes", "particle_pool", "simulated_set", "add_crystalline_ice", "concat"]


@dataclass
class LabelledBoxes:
    """Boxes with class labels.

    Attributes
    ----------
    boxes : ndarray float32 (n, S, S)
        Resampled boxes (not normalised).
    labels : ndarray int64 (n,)
        Class index (0 particle, 1 ice/contamination, 2 carbon).
    group : ndarray int64 (n,)
        Source micrograph index (keeps validation splits free of shared micrographs).
    """

    boxes: np.ndarray
    labels: np.ndarray
    group: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.size)

    def select(self, idx: np.ndarray) -> "LabelledBoxes":
        return LabelledBoxes(self.boxes[idx], self.labels[idx], self.group[idx])

    def counts(self) -> List[int]:
        """Number of boxes per class (3 classes)."""
        return [int(v) for v in np.bincount(self.labels, minlength=3)[:3]]


def concat(sets: Sequence[LabelledBoxes]) -> LabelledBoxes:
    """One LabelledBoxes from several (groups are offset to stay distinct)."""
    boxes, labels, groups, off = [], [], [], 0
    for s in sets:
        boxes.append(s.boxes)
        labels.append(s.labels)
        groups.append(s.group + off)
        off += int(s.group.max()) + 1 if len(s) else 0
    if not boxes:
        return LabelledBoxes(np.zeros((0, 64, 64), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return LabelledBoxes(np.concatenate(boxes), np.concatenate(labels), np.concatenate(groups))


def particle_pool(n_shapes: int = 12, seed: int = 0, sizes: Sequence[int] = (40, 70, 100, 150),
                  copies: Sequence[int] = (1, 2, 3, 4, 6)):
    """``n_shapes`` particle shapes (deepqs ``Atoms``): monomers of ``sizes`` residues and C_n oligomers.

    Monomer ``i`` has ``sizes[i % len(sizes)]`` residues and seed ``seed + i``; shape ``j`` uses
    monomer ``j % n_monomers`` with ``copies[j % len(copies)]`` copies.  Side chains are left out
    (invisible at the resolutions of micrographs; 3× faster to build).
    """
    from deepqs.io.models import atoms_from_structure
    from deepqs.simulate import build_assembly, build_protein_model

    n_mono = min(len(sizes), n_shapes)
    monomers = [build_protein_model(int(sizes[i % len(sizes)]), seed=seed + i, side_chains=False)
                for i in range(n_mono)]
    pool = []
    for j in range(n_shapes):
        k = int(copies[j % len(copies)])
        st = monomers[j % n_mono] if k == 1 else build_assembly(monomers[j % n_mono], n_copies=k, seed=seed + j)
        pool.append(atoms_from_structure(st))
    return pool


def add_crystalline_ice(image: np.ndarray, rng: np.random.Generator, n: int, radius_range: Tuple[float, float]
                        ) -> np.ndarray:
    """Add ``n`` soft disks of hexagonal lattice fringes (crystalline-ice-like) to ``image`` in place.

    Each patch: the sum of three cosines 60° apart, period 3-8 px, amplitude 0.6-1.5 (noise-std
    units), in a soft disk of a radius drawn from ``radius_range`` (px).  Returns centres (n, 2) as (x, y).
    """
    ny, nx = image.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    centres = np.zeros((n, 2))
    for i in range(n):                                  # a few patches per micrograph
        r = float(rng.uniform(*radius_range))
        cx, cy = rng.uniform(r, nx - 1 - r), rng.uniform(r, ny - 1 - r)
        period = float(rng.uniform(3.0, 8.0))
        th = float(rng.uniform(0, np.pi / 3))
        k = 2 * np.pi / period
        pattern = sum(np.cos(k * (np.cos(th + a) * xx + np.sin(th + a) * yy)) for a in (0.0, np.pi / 3, 2 * np.pi / 3))
        d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        env = 0.5 * (1 - np.tanh((d - r) / (0.15 * r + 1)))
        image += (float(rng.uniform(0.6, 1.5)) / 1.5 * pattern * env).astype(np.float32)
        centres[i] = (cx, cy)
    return centres


def _far_from(points: np.ndarray, refs: np.ndarray, dist: float) -> np.ndarray:
    if len(refs) == 0 or len(points) == 0:
        return np.ones(len(points), bool)
    d = np.linalg.norm(points[:, None, :] - refs[None, :, :], axis=-1)
    return d.min(axis=1) > dist


def simulated_set(n_micrographs: int, seed: int = 0, out_size: int = 64, shape: Tuple[int, int] = (640, 640),
                  pool: Optional[list] = None, diameter_px_range: Tuple[float, float] = (22.0, 60.0),
                  box_ratio_range: Tuple[float, float] = (1.5, 2.2), snr_range: Tuple[float, float] = (0.05, 0.4),
                  n_particles: int = 30, progress: Optional[Callable[[int, int], None]] = None) -> LabelledBoxes:
    """Simulate ``n_micrographs`` micrographs and cut labelled boxes (class rule in the module doc).

    Deterministic for ``seed``; micrograph ``i`` depends on ``seed`` and ``i`` only.  ``pool``: particle
    shapes (default :func:`particle_pool` with 6 shapes).  About 30 particle, 20 ice and 10 carbon
    boxes per micrograph.
    """
    from deepqs.simulate import simulate_micrographs

    pool = particle_pool(6, seed=0) if pool is None else pool
    boxes, labels, groups = [], [], []
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(n_micrographs)):   # per micrograph
        rng = np.random.default_rng(child)
        atoms = pool[int(rng.integers(len(pool)))]
        xyz = np.asarray(atoms.xyz)
        diam_A = 2.0 * float(np.linalg.norm(xyz - xyz.mean(axis=0), axis=1).max())
        pixel = diam_A / float(rng.uniform(*diameter_px_range))
        junk = {"ice_blobs": int(rng.integers(2, 7)), "carbon_edge": int(rng.random() < 0.7),
                "aggregates": int(rng.integers(1, 4))}
        m = simulate_micrographs(1, shape=shape, pixel_size=pixel, n_particles=n_particles, atoms=atoms,
                                 defocus_um=(0.8, 3.0), snr=float(np.exp(rng.uniform(*np.log(snr_range)))),
                                 b_factor=float(rng.uniform(40, 150)), seed=int(rng.integers(2**31)), junk=junk,
                                 carbon_darkness=float(rng.uniform(0.5, 2.0)))[0]
        img = m.image
        d = m.particle_diameter_px
        box = max(8, int(round(d * rng.uniform(*box_ratio_range))))
        parts = m.coordinates
        n_cryst = int(rng.integers(0, 3))
        cryst = add_crystalline_ice(img, rng, n_cryst, (0.6 * d, 1.5 * d)) if n_cryst else np.zeros((0, 2))
        cryst = cryst[_far_from(cryst, parts, 2.0 * d)]
        pts, labs = [], []
        # particles (0)
        if len(parts):
            pts.append(parts + rng.uniform(-0.08, 0.08, parts.shape) * d)
            labs.append(np.zeros(len(parts), np.int64))
        # ice / contamination (1): blobs, aggregates, crystalline patches, empty ice
        ice = []
        for j in m.junk:
            if j["kind"] == "ice_blob":
                ice.append(np.asarray(j["center_xy"]) + rng.uniform(-0.4, 0.4, 2) * j["radius_px"])
            elif j["kind"] == "aggregate":
                ice.append(np.asarray(j["center_xy"]))
                mem = np.asarray(j["member_xy"])
                ice.append(mem[int(rng.integers(len(mem)))])
        ice.extend(list(cryst))
        ny, nx = img.shape
        cand = rng.uniform([0, 0], [nx - 1, ny - 1], size=(200, 2))
        ci = np.rint(cand).astype(int)
        free = ~m.junk_mask[ci[:, 1], ci[:, 0]] & _far_from(cand, parts, 0.75 * d)
        empty = cand[free][:8]
        ice = np.concatenate([np.asarray(ice).reshape(-1, 2), empty])
        ice = ice[_far_from(ice, parts, 0.75 * d)]
        pts.append(ice)
        labs.append(np.ones(len(ice), np.int64))
        # carbon (2): on the film and along the edge
        if m.carbon_mask is not None and m.carbon_mask.any():
            inside = ndi.distance_transform_edt(m.carbon_mask)
            outside = ndi.distance_transform_edt(~m.carbon_mask)
            signed = np.where(m.carbon_mask, inside, -outside)
            cand = rng.uniform([0, 0], [nx - 1, ny - 1], size=(600, 2))
            ci = np.rint(cand).astype(int)
            sd = signed[ci[:, 1], ci[:, 0]]
            ok = (sd > -box / 3.0) & _far_from(cand, parts, 0.75 * d)
            near = ok & (np.abs(sd) <= box / 3.0)
            film = ok & (sd > box / 3.0)
            carbon = np.concatenate([cand[near][:6], cand[film][:4]])
            pts.append(carbon)
            labs.append(np.full(len(carbon), 2, np.int64))
        xy = np.concatenate(pts)
        b, _ = extract_boxes(img, xy, box, out_size, pad="reflect")
        boxes.append(b)
        labels.append(np.concatenate(labs))
        groups.append(np.full(len(xy), i, np.int64))
        if progress is not None:
            progress(i + 1, n_micrographs)
    return LabelledBoxes(np.concatenate(boxes), np.concatenate(labels), np.concatenate(groups))
