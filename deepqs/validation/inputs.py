"""What a validation run is given, read and checked once (every problem is an InputError).

:class:`ValidationInputs` holds the map, its contour threshold and reported resolution, and the
optional evidence of the higher levels: half maps (level 1), 2D class averages (level 2),
particles with class assignment (level 3), micrographs with coordinates (level 5) and an atomic
model (level A).  :func:`load_inputs` reads files; tests build the object directly from arrays.
``cache`` carries results one check computes for another (components, mask, local-Q map).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import numpy as np

from deepqs.errors import InputError
from deepqs.io.atoms import Atoms
from deepqs.io.mapdata import MapData


@dataclass
class ValidationInputs:
    """The inputs of one validation run (see module doc).

    ``classes``: float32 ``[n, y, x]`` class averages with ``classes_pixel_size`` Å;
    ``particles``: float32 ``[n, y, x]`` images, ``particle_classes`` their class index
    (0-based, into ``classes``) and ``particles_pixel_size``; ``micrographs``: list of paths and
    ``coords`` coordinate files (a path or a list; ``box_px``: box size in micrograph pixels, default from the map);
    ``files``: input role -> path (for the checksum table).
    """

    map: MapData
    threshold: float
    resolution: float
    half1: Optional[MapData] = None
    half2: Optional[MapData] = None
    classes: Optional[np.ndarray] = None
    classes_pixel_size: Optional[float] = None
    particles: Optional[np.ndarray] = None
    particle_classes: Optional[np.ndarray] = None
    particles_pixel_size: Optional[float] = None
    micrographs: List[str] = field(default_factory=list)
    coords: Optional[Union[str, List[str]]] = None
    box_px: Optional[int] = None
    atoms: Optional[Atoms] = None
    files: Dict[str, str] = field(default_factory=dict)
    cache: Dict[str, Any] = field(default_factory=dict, repr=False)
    device: str = "cpu"   # torch device of the DeepQs prediction (0.e, A.c): cpu, cuda[:N], auto

    def __post_init__(self) -> None:
        where = self.map.path
        if self.threshold is None or not np.isfinite(float(self.threshold)):
            raise InputError(where, "a contour threshold is required (--threshold, map units)")
        if self.resolution is None or not float(self.resolution) > 0:
            raise InputError(where, "a positive reported resolution in Å is required (--resolution)")
        self.threshold = float(self.threshold)
        self.resolution = float(self.resolution)
        d = self.map.data
        if d.ndim != 3 or min(d.shape) < 8:
            raise InputError(where, f"validation needs a 3D map of at least 8 voxels per edge, got {d.shape}")
        if not np.all(np.isfinite(d)):
            raise InputError(where, "the map contains NaN or infinite voxels")
        if not self.map.is_cubic_voxel:
            raise InputError(where, f"validation needs cubic voxels, got {tuple(self.map.voxel_size)}")
        if not np.any(d >= self.threshold):
            raise InputError(where, f"no voxel reaches the threshold {self.threshold:g} "
                                    f"(map range {float(d.min()):.4g} .. {float(d.max()):.4g})")
        if np.all(d >= self.threshold):
            raise InputError(where, f"every voxel reaches the threshold {self.threshold:g}: "
                                    "nothing is background")
        if (self.half1 is None) != (self.half2 is None):
            raise InputError(where, "give both half maps or none")
        for h in (self.half1, self.half2):
            if h is None:
                continue
            if h.data.shape != d.shape:
                raise InputError(h.path, f"half map shape {h.data.shape} differs from the map's {d.shape}")
            if not np.allclose(h.voxel_size, self.map.voxel_size, rtol=1e-3):
                raise InputError(h.path, f"half map voxel size {tuple(h.voxel_size)} differs from the map's "
                                         f"{tuple(self.map.voxel_size)}")
            if not np.all(np.isfinite(h.data)):
                raise InputError(h.path, "the half map contains NaN or infinite voxels")
        if self.particles is not None:
            if self.classes is None:
                raise InputError(self.files.get("particles"), "particles (level 3) need the class averages (--classes)")
            pc = np.asarray(self.particle_classes)
            if pc.shape != (self.particles.shape[0],) or pc.min() < 0 or pc.max() >= self.classes.shape[0]:
                raise InputError(self.files.get("particles"), "particle class numbers do not match the class averages")
        if self.atoms is not None:
            from deepqs.io.models import check_model_in_map
            heavy = self.atoms.xyz[~np.asarray(self.atoms.is_hydrogen, dtype=bool)]
            check_model_in_map(heavy, self.map, path=self.files.get("model"), min_fraction=0.5)

    @property
    def voxel_size(self) -> float:
        return float(self.map.voxel_size[0])

    @property
    def has_halves(self) -> bool:
        return self.half1 is not None


def sha256(path: str) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_particles_star(path: str, n_classes: int):
    """Read a RELION particles STAR: images (``index@stack``) and ``_rlnClassNumber`` (1-based).

    Returns ``(images [n, y, x] float32, class index 0-based, pixel size Å)``.  Stacks are
    resolved relative to the STAR file's folder.
    """
    import pandas as pd

    from deepqs.io.coords import _star_blocks
    from deepqs.io.maps import read_stack

    blocks = _star_blocks(path)
    cand = [b for b in blocks.values() if "rlnImageName" in b.columns]
    if not cand:
        raise InputError(path, "no _rlnImageName column in any block")
    df = cand[0]
    if "rlnClassNumber" not in df.columns:
        raise InputError(path, "no _rlnClassNumber column: level 3 needs each particle's class")
    cls = pd.to_numeric(df["rlnClassNumber"], errors="coerce").to_numpy()
    if not np.all(np.isfinite(cls)):
        raise InputError(path, "_rlnClassNumber holds values that are not numbers")
    cls = cls.astype(np.int64) - 1
    if cls.min() < 0 or cls.max() >= n_classes:
        raise InputError(path, f"_rlnClassNumber runs {cls.min() + 1}..{cls.max() + 1}, "
                               f"but there are {n_classes} class averages")
    folder = os.path.dirname(os.path.abspath(path))
    stacks: Dict[str, np.ndarray] = {}
    images = []
    ps = None
    for name in df["rlnImageName"].astype(str):
        if "@" not in name:
            raise InputError(path, f"_rlnImageName {name!r} is not index@stack")
        idx, stack = name.split("@", 1)
        sp = stack if os.path.isabs(stack) else os.path.join(folder, stack)
        if sp not in stacks:
            stacks[sp], ps = read_stack(sp)
        try:
            images.append(stacks[sp][int(idx) - 1])
        except (ValueError, IndexError):
            raise InputError(path, f"_rlnImageName {name!r}: no such image in {stack}") from None
    return np.stack(images).astype(np.float32), cls, float(ps)


def load_inputs(map_path: str, threshold: Optional[float], resolution: Optional[float],
                half1: Optional[str] = None, half2: Optional[str] = None, classes: Optional[str] = None,
                particles: Optional[str] = None, micrographs: Optional[List[str]] = None,
                coords: Optional[Union[str, List[str]]] = None, model: Optional[str] = None,
                voxel_size=None, box_px: Optional[int] = None) -> ValidationInputs:
    """Read every input file and build :class:`ValidationInputs` (InputError on bad input)."""
    from deepqs.io import atoms_from_structure, read_map, read_model, read_stack

    files: Dict[str, str] = {"map": map_path}
    m = read_map(map_path, voxel_size=voxel_size)
    if threshold is None:
        raise InputError(map_path, "a contour threshold is required (--threshold, map units)")
    h1 = h2 = None
    if (half1 is None) != (half2 is None):
        raise InputError(half1 or half2, "give both half maps (--half1 and --half2) or none")
    if half1 is not None:
        h1, h2 = read_map(half1, voxel_size=voxel_size), read_map(half2, voxel_size=voxel_size)
        files["half1"], files["half2"] = half1, half2
    cl = cl_ps = None
    if classes is not None:
        cl, cl_ps = read_stack(classes)
        files["classes"] = classes
    parts = pcls = p_ps = None
    if particles is not None:
        if cl is None:
            raise InputError(particles, "particles (level 3) need the class averages (--classes)")
        parts, pcls, p_ps = read_particles_star(particles, cl.shape[0])
        files["particles"] = particles
    mics = list(micrographs or [])
    for i, p in enumerate(mics):
        files[f"micrograph_{i + 1}"] = p
    if coords is not None:
        coords = [coords] if isinstance(coords, (str, os.PathLike)) else list(coords)
        for i, c in enumerate(coords):
            files["coords" if len(coords) == 1 else f"coords_{i + 1}"] = os.fspath(c)
    atoms = None
    if model is not None:
        atoms = atoms_from_structure(read_model(model))
        files["model"] = model
    return ValidationInputs(map=m, threshold=threshold, resolution=resolution, half1=h1, half2=h2,
                            classes=cl, classes_pixel_size=cl_ps, particles=parts, particle_classes=pcls,
                            particles_pixel_size=p_ps, micrographs=mics, coords=coords, box_px=box_px, atoms=atoms,
                            files=files)
