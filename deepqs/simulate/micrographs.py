"""Simulated cryo-EM micrographs with ground truth (particles, ice contamination, carbon, aggregates).

Conventions (``CONVENTIONS.md``): a micrograph is a float32 array ``[y, x]`` (x = column,
y = row, pixel centres at integers); coordinates are particle centres in pixels as (x, y);
pixel size in Å/pixel; defocus in µm (positive = underfocus); angles in degrees.

Image formation (weak-phase approximation, all particles at once, no 3D volume is rotated):

1. Every particle gets a uniformly random orientation, given as RELION/XMIPP Euler angles
   (rot, tilt, psi) in degrees: the matrix is ``A = Rz(psi) · Ry(tilt) · Rz(rot)`` (RELION's
   ``Euler_angles2matrix``) and an atom at model position ``r`` (Å, relative to the particle's
   weighted centre of mass) lands at ``(x, y) = centre_px + (A r)[:2] / pixel_size``.
2. The atoms of all particles are rotated in one batched product and splatted onto the
   micrograph grid with bilinear weights (``np.bincount``), weighted by atomic number: the
   projected potential.
3. In Fourier space, in one go: a Gaussian envelope ``exp(-B k² / 4)`` (``b_factor`` Å²: atom
   size, B-factors, drift) times the CTF

       CTF(k) = -[sqrt(1 - A²) sin χ(k) + A cos χ(k)],
       χ(k) = π λ Δf k² - (π/2) Cs λ³ k⁴,

   with λ the relativistic electron wavelength, Δf > 0 underfocus, A the amplitude contrast.
   With this sign the CTF is negative at low frequency, so **protein is darker than the
   background**, as in raw micrographs.
4. The particle image is scaled so that its variance over ``particle_mask`` is ``snr``, and
   white Gaussian noise of variance 1 is added: the image is in units of the noise standard
   deviation, background mean ≈ 0.  ``noise=False`` gives the same image without the noise.

Junk for pruning tests (``junk``): ``ice_blobs`` (dark, sometimes bright, soft-edged disks of
various sizes: contamination, added as amplitude contrast), ``carbon_edge`` (one side of a
straight or curved edge covered by carbon film: thicker and darker, with its own texture, passed
through the same CTF so the edge shows fringes; ``carbon_mask``), ``aggregates`` (clusters of
3-7 overlapping particles).  Good particles avoid all junk; every junk object is returned with its
kind, centre (x, y) in pixels and size, so boxes can be labelled.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.fft

from deepqs.errors import InputError
from deepqs.io.atoms import Atoms
from deepqs.simulate.density import AtomsLike, _as_atoms, element_weights

__all__ = [
    "SimulatedMicrograph",
    "simulate_micrographs",
    "particle_stack",
    "euler_matrix",
    "electron_wavelength_A",
    "ctf",
    "default_particle",
    "JUNK_KINDS",
]

#: Junk kinds and how many of each a plain list asks for.
JUNK_KINDS = {"ice_blobs": 3, "carbon_edge": 1, "aggregates": 2}


@dataclass
class SimulatedMicrograph:
    """One simulated micrograph and its ground truth.

    Attributes
    ----------
    image : ndarray float32 [y, x]
        The micrograph, in units of the noise standard deviation (protein dark).
    pixel_size_A : float
        Pixel size in Å/pixel.
    coordinates : ndarray (n, 2) float64
        Good-particle centres (x, y) in pixels (x = column), sub-pixel.
    angles_deg : ndarray (n, 3)
        Euler angles (rot, tilt, psi) in degrees per particle (see module doc).
    defocus_um : float
        Defocus in µm (positive = underfocus).
    particle_diameter_A : float
        Diameter of the particle (twice its largest atom distance from the centre), Å.
    junk : list of dict
        Ground truth of every junk object: ``kind`` ('ice_blob', 'carbon_edge', 'aggregate'),
        ``center_xy`` (pixels) and size/geometry keys (see :func:`simulate_micrographs`).
    particle_mask : ndarray bool [y, x]
        Disks of the particle radius around the good particles.
    carbon_mask : ndarray bool [y, x]
        Pixels covered by carbon film (all False without a carbon edge).
    junk_mask : ndarray bool [y, x]
        Pixels covered by any junk (carbon, blob disks, aggregate disks).
    snr : float
        Particle signal variance over ``particle_mask`` / noise variance.
    voltage_kV, cs_mm, amplitude_contrast, b_factor : float
        Imaging parameters.
    """

    image: np.ndarray
    pixel_size_A: float
    coordinates: np.ndarray
    angles_deg: np.ndarray
    defocus_um: float
    particle_diameter_A: float
    junk: List[Dict] = field(default_factory=list)
    particle_mask: Optional[np.ndarray] = None
    carbon_mask: Optional[np.ndarray] = None
    junk_mask: Optional[np.ndarray] = None
    snr: float = 0.0
    voltage_kV: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    b_factor: float = 0.0

    @property
    def particle_diameter_px(self) -> float:
        """Particle diameter in pixels."""
        return self.particle_diameter_A / self.pixel_size_A

    @property
    def shape(self) -> Tuple[int, int]:
        """(ny, nx)."""
        return tuple(self.image.shape)


# --- physics -----------------------------------------------------------------------------------
def electron_wavelength_A(voltage_kV: float) -> float:
    """Relativistic electron wavelength in Å for an acceleration voltage in kV (0.0197 Å at 300 kV)."""
    v = float(voltage_kV) * 1e3
    return float(12.2642584 / np.sqrt(v * (1.0 + 0.97845e-6 * v)))


def ctf(k2: np.ndarray, defocus_um: float, voltage_kV: float = 300.0, cs_mm: float = 2.7,
        amplitude_contrast: float = 0.1) -> np.ndarray:
    """CTF at squared spatial frequencies ``k2`` (1/Å²), sign convention of the module doc.

    ``-[sqrt(1 - A²) sin χ + A cos χ]``, χ = π λ Δf k² - π/2 Cs λ³ k⁴; negative at k = 0.
    """
    lam = electron_wavelength_A(voltage_kV)
    dz = float(defocus_um) * 1e4
    cs = float(cs_mm) * 1e7
    chi = np.pi * lam * dz * k2 - 0.5 * np.pi * cs * lam ** 3 * k2 * k2
    a = float(amplitude_contrast)
    return -(np.sqrt(1.0 - a * a) * np.sin(chi) + a * np.cos(chi))


def euler_matrix(rot: np.ndarray, tilt: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """RELION/XMIPP rotation matrices (..., 3, 3) from Euler angles in degrees.

    ``A = Rz(psi) Ry(tilt) Rz(rot)`` with ``Rz(a) = [[c, s, 0], [-s, c, 0], [0, 0, 1]]`` and
    ``Ry(a) = [[c, 0, -s], [0, 1, 0], [s, 0, c]]``; image coordinates are ``A @ r``.
    """
    a, b, g = (np.radians(np.asarray(v, dtype=np.float64)) for v in (rot, tilt, psi))
    ca, sa, cb, sb, cg, sg = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(g), np.sin(g)
    cc, cs, sc, ss = cb * ca, cb * sa, sb * ca, sb * sa
    m = np.empty(np.broadcast(a, b, g).shape + (3, 3))
    m[..., 0, 0] = cg * cc - sg * sa
    m[..., 0, 1] = cg * cs + sg * ca
    m[..., 0, 2] = -cg * sb
    m[..., 1, 0] = -sg * cc - cg * sa
    m[..., 1, 1] = -sg * cs + cg * ca
    m[..., 1, 2] = sg * sb
    m[..., 2, 0] = sc
    m[..., 2, 1] = ss
    m[..., 2, 2] = cb
    return m


def _random_angles(rng: np.random.Generator, n: int) -> np.ndarray:
    """Uniform random orientations as (rot, tilt, psi) degrees (tilt from arccos of U(-1, 1))."""
    rot = rng.uniform(-180.0, 180.0, n)
    tilt = np.degrees(np.arccos(rng.uniform(-1.0, 1.0, n)))
    psi = rng.uniform(-180.0, 180.0, n)
    return np.stack([rot, tilt, psi], axis=1)


# --- default particle ----------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _default_particle_cached(n_copies: int) -> Atoms:
    from deepqs.io.models import atoms_from_structure
    from deepqs.simulate.protein import _cached_model, build_assembly, protein_atoms

    if n_copies <= 1:
        return protein_atoms(120, 0)
    return atoms_from_structure(build_assembly(_cached_model(120, 0), n_copies=n_copies, seed=0))


def default_particle(n_copies: int = 4) -> Atoms:
    """The default particle: a C4 tetramer of ``build_protein_model(seed=0)`` (about 80 Å across).

    Cached (built once per process); the arrays are shared, do not modify them.
    """
    return _default_particle_cached(int(n_copies))


# --- layout helpers ---------------------------------------------------------------------------------
def _parse_junk(junk: Union[None, Sequence[str], Mapping[str, int]]) -> Dict[str, int]:
    if junk is None:
        return {}
    if isinstance(junk, str):
        junk = [junk]
    if isinstance(junk, Mapping):
        counts = {str(k): int(v) for k, v in junk.items()}
    else:
        counts = {str(k): JUNK_KINDS.get(str(k), 0) for k in junk}
    unknown = sorted(set(counts) - set(JUNK_KINDS))
    if unknown:
        raise InputError(None, f"unknown junk kind(s) {unknown}; known: {sorted(JUNK_KINDS)}")
    if any(v < 0 for v in counts.values()):
        raise InputError(None, f"junk counts must not be negative, got {counts}")
    counts["carbon_edge"] = min(counts.get("carbon_edge", 0), 1)
    return counts


def _disk_mask(shape: Tuple[int, int], centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Union of disks (centres (n, 2) as x, y; radii (n,)) on a [y, x] grid; per-disk bounding boxes."""
    mask = np.zeros(shape, dtype=bool)
    ny, nx = shape
    for (cx, cy), r in zip(np.asarray(centres, dtype=float).reshape(-1, 2), np.asarray(radii, dtype=float).ravel()):
        x0, x1 = max(int(np.floor(cx - r)), 0), min(int(np.ceil(cx + r)) + 1, nx)
        y0, y1 = max(int(np.floor(cy - r)), 0), min(int(np.ceil(cy + r)) + 1, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        mask[y0:y1, x0:x1] |= (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    return mask


def _place_disks(rng: np.random.Generator, n: int, shape: Tuple[int, int], radius: np.ndarray,
                 margin: np.ndarray, min_sep: float, obstacles: List[Tuple[np.ndarray, np.ndarray]],
                 free_fn=None, max_candidates: int = 200) -> np.ndarray:
    """Random sequential placement of up to ``n`` disk centres (x, y).

    Disk ``i`` has radius ``radius[i]`` and keeps ``margin[i]`` pixels from the image edges;
    two placed disks keep ``radius_i + radius_j + min_sep`` apart; ``obstacles`` are
    (centres, radii) that must not be overlapped; ``free_fn(xy) -> bool`` may veto positions.
    Candidates are drawn in vectorised batches; acceptance is sequential (one pass per
    candidate among those that survive the vectorised checks).
    """
    ny, nx = shape
    placed: List[np.ndarray] = []
    placed_r: List[float] = []
    i = 0
    tries = 0
    while i < n and tries < max_candidates * max(n, 1):
        batch = 64
        tries += batch
        lo = np.array([margin[i], margin[i]])
        hi = np.array([nx - 1 - margin[i], ny - 1 - margin[i]])
        if np.any(hi < lo):
            break
        cand = rng.uniform(lo, hi, size=(batch, 2))
        ok = np.ones(batch, dtype=bool)
        for oc, orad in obstacles:
            if len(oc):
                d = np.linalg.norm(cand[:, None, :] - oc[None], axis=-1)
                ok &= np.all(d >= orad[None] + radius[i], axis=1)
        if free_fn is not None:
            ok &= free_fn(cand, radius[i])
        for c in cand[ok]:
            if placed:
                d = np.linalg.norm(np.array(placed) - c, axis=1)
                if np.any(d < np.array(placed_r) + radius[i] + min_sep):
                    continue
            placed.append(c)
            placed_r.append(float(radius[i]))
            i += 1
            if i >= n:
                break
            if margin[i] != margin[i - 1]:
                break   # the next disk needs other bounds: draw a new batch
    return np.array(placed).reshape(-1, 2)


def _splat(shape: Tuple[int, int], xy: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Bilinear splat of points (m, 2) as (x, y) pixels with ``weights`` onto a [y, x] grid (bincount)."""
    ny, nx = shape
    x0 = np.floor(xy[:, 0]).astype(np.int64)
    y0 = np.floor(xy[:, 1]).astype(np.int64)
    fx = xy[:, 0] - x0
    fy = xy[:, 1] - y0
    idx = []
    val = []
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < nx) & (yi >= 0) & (yi < ny)
        idx.append((yi * nx + xi)[ok])
        val.append((w * weights)[ok])
    flat = np.bincount(np.concatenate(idx), weights=np.concatenate(val), minlength=ny * nx)
    return flat.reshape(ny, nx)


def _smooth_noise(rng: np.random.Generator, shape: Tuple[int, int], corr_px: float) -> np.ndarray:
    """Gaussian-correlated noise (unit variance) with correlation length ``corr_px`` pixels."""
    white = rng.standard_normal(shape, dtype=np.float32)
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    filt = np.exp(-2.0 * (np.pi * corr_px) ** 2 * (ky ** 2 + kx ** 2)).astype(np.float32)
    out = scipy.fft.irfft2(scipy.fft.rfft2(white, workers=-1) * filt, s=shape, workers=-1)
    return out / max(float(out.std()), 1e-12)


# --- the simulator ------------------------------------------------------------------------------------
def simulate_micrographs(n: int = 1, shape: Tuple[int, int] = (1024, 1024), pixel_size: float = 1.5,
                         n_particles: int = 50, atoms: Optional[AtomsLike] = None,
                         defocus_um: Union[float, Tuple[float, float]] = (1.0, 2.5), voltage_kV: float = 300.0,
                         cs_mm: float = 2.7, amplitude_contrast: float = 0.1, b_factor: float = 80.0,
                         snr: float = 0.1, noise: bool = True, min_distance: Optional[float] = None,
                         seed: int = 0, junk: Union[None, Sequence[str], Mapping[str, int]] = None,
                         carbon_darkness: float = 1.0) -> List[SimulatedMicrograph]:
    """Simulate ``n`` micrographs with particles of ``atoms`` and optional junk (see module doc).

    Parameters
    ----------
    n : int
        Number of micrographs; micrograph ``i`` depends only on ``seed`` and ``i``
        (``np.random.SeedSequence(seed).spawn``), not on ``n``.
    shape : (ny, nx)
        Micrograph size in pixels.
    pixel_size : float
        Å/pixel (kept exactly).
    n_particles : int
        Good particles per micrograph; fewer are placed if they do not fit (``len(coordinates)``).
    atoms : Atoms or gemmi.Structure, optional
        The particle (default: :func:`default_particle`, a C4 tetramer of the procedural protein).
    defocus_um : float or (min, max)
        Defocus (µm, underfocus positive), fixed or drawn uniformly per micrograph.
    voltage_kV, cs_mm, amplitude_contrast : float
        Microscope: 300 kV, Cs 2.7 mm, amplitude contrast 0.1 by default.
    b_factor : float
        Gaussian envelope B (Å²) applied to the projected potential.
    snr : float
        Variance of the particle signal over the particle disks / variance of the noise.
    noise : bool
        Add the noise (False: the same micrograph without noise).
    min_distance : float, optional
        Smallest centre-to-centre distance (pixels) between good particles; default one particle
        diameter (no overlap).  Particle centres also keep half a diameter from the edges.
    seed : int
        Seed of everything random.
    junk : list of kinds or {kind: count}, optional
        'ice_blobs' (default 3), 'carbon_edge' (0 or 1), 'aggregates' (default 2).
        Ground truth dicts: ice_blob: ``center_xy``, ``radius_px``, ``contrast`` (noise-std
        units, negative = dark); carbon_edge: ``shape`` ('line' or 'arc'), ``area_fraction``,
        ``center_xy`` (a point on the edge, pixels), and for a line ``normal_xy`` (unit vector
        pointing into the carbon) or for an arc ``circle_center_xy`` and ``radius_px`` (carbon
        outside the circle); aggregate: ``center_xy``, ``radius_px``, ``n_particles``,
        ``member_xy`` (list of (x, y)), ``angles_deg``.
    carbon_darkness : float
        How much darker (noise-std units) the carbon is on average.

    Returns
    -------
    list of SimulatedMicrograph
    """
    ny, nx = (int(v) for v in shape)
    if ny < 16 or nx < 16:
        raise InputError(None, f"micrograph shape must be at least 16 × 16, got {shape}")
    if not pixel_size > 0:
        raise InputError(None, f"pixel size must be positive, got {pixel_size}")
    if n < 0 or n_particles < 0:
        raise InputError(None, "n and n_particles must not be negative")
    if not snr > 0:
        raise InputError(None, f"snr must be positive, got {snr}")
    if not 0.0 <= amplitude_contrast < 1.0:
        raise InputError(None, f"amplitude contrast must be in [0, 1), got {amplitude_contrast}")
    dz_range = (float(defocus_um), float(defocus_um)) if np.isscalar(defocus_um) else tuple(map(float, defocus_um))
    if len(dz_range) != 2 or min(dz_range) <= 0:
        raise InputError(None, f"defocus must be positive (µm, underfocus), got {defocus_um}")
    counts = _parse_junk(junk)

    at = default_particle() if atoms is None else _as_atoms(atoms)
    w = element_weights(at.element) * np.asarray(at.occupancy, dtype=np.float64)
    keep = w > 0
    xyz = np.asarray(at.xyz, dtype=np.float64)[keep]
    w = w[keep]
    if len(xyz) == 0:
        raise InputError(None, "the particle has no atoms")
    centred = xyz - np.average(xyz, axis=0, weights=w)
    radius_A = float(np.linalg.norm(centred, axis=1).max())
    radius_px = radius_A / pixel_size
    min_dist = 2.0 * radius_px if min_distance is None else float(min_distance)
    grid = (ny, nx)

    out = []
    for child in np.random.SeedSequence(seed).spawn(n):        # per micrograph
        rng = np.random.default_rng(child)
        out.append(_simulate_one(rng, grid, float(pixel_size), int(n_particles), centred, w, radius_A, radius_px,
                                 min_dist, dz_range, float(voltage_kV), float(cs_mm), float(amplitude_contrast),
                                 float(b_factor), float(snr), bool(noise), counts, float(carbon_darkness)))
    return out


def _simulate_one(rng, grid, pixel_size, n_particles, centred, w, radius_A, radius_px, min_dist, dz_range,
                  voltage_kV, cs_mm, amplitude_contrast, b_factor, snr, noise, counts, carbon_darkness
                  ) -> SimulatedMicrograph:
    ny, nx = grid
    defocus = float(rng.uniform(*dz_range))
    junk: List[Dict] = []
    yy = np.arange(ny, dtype=np.float32)[:, None]
    xx = np.arange(nx, dtype=np.float32)[None, :]

    # --- carbon edge: a line or a large circle (hole edge); carbon on one side ---
    carbon_mask = np.zeros(grid, dtype=bool)
    carbon_soft = None
    edge_dist = None       # signed distance (px) into the carbon, as a function of (x, y) arrays
    if counts.get("carbon_edge", 0):
        fraction = float(rng.uniform(0.15, 0.35))
        theta = float(rng.uniform(0.0, 2.0 * np.pi))
        normal = np.array([np.cos(theta), np.sin(theta)])
        centre = np.array([(nx - 1) / 2.0, (ny - 1) / 2.0])
        if rng.random() < 0.5:
            def signed(x, y):
                return (x - centre[0]) * normal[0] + (y - centre[1]) * normal[1]
            d = signed(xx, yy)
            offset = float(np.quantile(d, 1.0 - fraction))
            edge_dist = lambda x, y: signed(x, y) - offset          # noqa: E731
            geom = {"shape": "line", "normal_xy": normal.tolist(),
                    "center_xy": (centre + offset * normal).tolist()}
        else:
            big = float(rng.uniform(1.5, 3.0)) * max(nx, ny)
            circ = centre - normal * big                             # circle centre far away, hole inside
            dist = np.sqrt((xx - circ[0]) ** 2 + (yy - circ[1]) ** 2)
            rad = float(np.quantile(dist, 1.0 - fraction))
            edge_dist = lambda x, y: np.sqrt((x - circ[0]) ** 2 + (y - circ[1]) ** 2) - rad   # noqa: E731
            geom = {"shape": "arc", "circle_center_xy": circ.tolist(), "radius_px": rad,
                    "center_xy": (circ + rad * normal).tolist()}
        sd = edge_dist(xx, yy)
        carbon_mask = sd > 0
        carbon_soft = (0.5 * (1.0 + np.tanh(sd / 1.5))).astype(np.float32)
        junk.append({"kind": "carbon_edge", "area_fraction": float(carbon_mask.mean()), **geom})

    def outside_carbon(xy: np.ndarray, r: float) -> np.ndarray:
        if edge_dist is None:
            return np.ones(len(xy), dtype=bool)
        return edge_dist(xy[:, 0], xy[:, 1]) <= -r

    # --- ice blobs (anywhere outside the carbon) ---
    n_blobs = counts.get("ice_blobs", 0)
    blob_r = rng.uniform(0.4, 2.5, n_blobs) * 2.0 * radius_px
    blob_xy = _place_disks(rng, n_blobs, grid, blob_r, np.zeros(n_blobs), 4.0, [], outside_carbon)
    blob_r = blob_r[:len(blob_xy)]
    bright = rng.random(len(blob_xy)) < 0.2
    blob_c = np.where(bright, rng.uniform(1.0, 2.5, len(blob_xy)), -rng.uniform(2.0, 5.0, len(blob_xy)))
    for c, r, k in zip(blob_xy, blob_r, blob_c):
        junk.append({"kind": "ice_blob", "center_xy": c.tolist(), "radius_px": float(r), "contrast": float(k)})

    # --- aggregates: clusters of overlapping particles ---
    n_agg = counts.get("aggregates", 0)
    agg_members: List[np.ndarray] = []
    agg_centres, agg_radii = [], []
    for _ in range(n_agg):                                        # per aggregate
        k = int(rng.integers(3, 8))
        members = [np.zeros(2)]
        while len(members) < k:
            base = members[int(rng.integers(len(members)))]
            ang = rng.uniform(0, 2 * np.pi)
            members.append(base + rng.uniform(0.4, 0.8) * 2 * radius_px * np.array([np.cos(ang), np.sin(ang)]))
        members = np.array(members)
        members -= members.mean(axis=0)
        r_c = float(np.linalg.norm(members, axis=1).max() + radius_px)
        c = _place_disks(rng, 1, grid, np.array([r_c]), np.array([r_c]), 4.0,
                         [(blob_xy, blob_r), (np.array(agg_centres).reshape(-1, 2), np.array(agg_radii))],
                         outside_carbon)
        if len(c) == 0:
            continue
        agg_centres.append(c[0])
        agg_radii.append(r_c)
        agg_members.append(members + c[0])
    agg_angles = [_random_angles(rng, len(m)) for m in agg_members]
    for c, r, m, a in zip(agg_centres, agg_radii, agg_members, agg_angles):
        junk.append({"kind": "aggregate", "center_xy": c.tolist(), "radius_px": float(r), "n_particles": len(m),
                     "member_xy": m.tolist(), "angles_deg": a.tolist()})

    # --- good particles ---
    obstacles = [(blob_xy, blob_r), (np.array(agg_centres).reshape(-1, 2), np.array(agg_radii))]
    coords = _place_disks(rng, n_particles, grid, np.full(n_particles, radius_px),
                          np.full(n_particles, np.ceil(radius_px)), min_dist - 2.0 * radius_px, obstacles,
                          outside_carbon)
    angles = _random_angles(rng, len(coords))

    # --- projected potential of particles and aggregates: one batched rotation, one splat ---
    all_xy = np.concatenate([coords] + agg_members, axis=0)
    all_ang = np.concatenate([angles] + agg_angles, axis=0)
    potential = np.zeros(grid)
    if len(all_xy):
        rot = euler_matrix(all_ang[:, 0], all_ang[:, 1], all_ang[:, 2])[:, :2, :]    # (p, 2, 3)
        proj = np.einsum("pij,aj->pai", rot, centred) / pixel_size + all_xy[:, None, :]
        potential = _splat(grid, proj.reshape(-1, 2), np.tile(w, len(all_xy)))

    # --- Fourier space: envelope × CTF ---
    ky = np.fft.fftfreq(ny, d=pixel_size).astype(np.float32)[:, None]
    kx = np.fft.rfftfreq(nx, d=pixel_size).astype(np.float32)[None, :]
    k2 = ky * ky + kx * kx
    transfer = (ctf(k2, defocus, voltage_kV, cs_mm, amplitude_contrast)
                * np.exp(-0.25 * b_factor * k2)).astype(np.float32)
    signal = scipy.fft.irfft2(scipy.fft.rfft2(potential.astype(np.float32), workers=-1) * transfer,
                              s=grid, workers=-1)
    particle_mask = _disk_mask(grid, coords, np.full(len(coords), radius_px))
    ref_mask = particle_mask if particle_mask.any() else _disk_mask(grid, np.array(agg_centres).reshape(-1, 2),
                                                                    np.array(agg_radii))
    var = float(signal[ref_mask].var()) if ref_mask.any() else 0.0
    scale = np.sqrt(snr / var) if var > 0 else 0.0
    image = (signal * scale).astype(np.float32)

    # --- carbon film: thicker (darker) with its own texture, through the same CTF ---
    if carbon_soft is not None:
        texture = _smooth_noise(rng, grid, corr_px=max(2.0, 10.0 / pixel_size))
        film = carbon_soft * (1.0 + 0.15 * texture)
        # mirror-pad so that the film's edge at the image border does not wrap around in the FFT
        pad = int(min(max(ny, nx) // 2, 128))
        padded = np.pad(film, pad, mode="reflect")
        kyp = np.fft.fftfreq(padded.shape[0], d=pixel_size).astype(np.float32)[:, None]
        kxp = np.fft.rfftfreq(padded.shape[1], d=pixel_size).astype(np.float32)[None, :]
        k2p = kyp * kyp + kxp * kxp
        transfer_p = (ctf(k2p, defocus, voltage_kV, cs_mm, amplitude_contrast)
                      * np.exp(-0.25 * b_factor * k2p)).astype(np.float32)
        film_img = scipy.fft.irfft2(scipy.fft.rfft2(padded, workers=-1) * transfer_p, s=padded.shape,
                                    workers=-1)[pad:pad + ny, pad:pad + nx]
        inside = float(film_img[carbon_mask].mean())
        outside = float(film_img[~carbon_mask].mean()) if (~carbon_mask).any() else 0.0
        if outside != inside:
            image += (film_img * (carbon_darkness / (outside - inside))).astype(np.float32)

    # --- ice blobs: soft disks, amplitude contrast ---
    for (cx, cy), r, k in zip(blob_xy, blob_r, blob_c):          # per blob, on its bounding box
        pad = r + 4.0 * (0.1 * r + 1.0)
        x0, x1 = max(int(cx - pad), 0), min(int(cx + pad) + 1, nx)
        y0, y1 = max(int(cy - pad), 0), min(int(cy + pad) + 1, ny)
        by, bx = np.ogrid[y0:y1, x0:x1]
        dist = np.sqrt((bx - cx) ** 2 + (by - cy) ** 2)
        image[y0:y1, x0:x1] += (k * 0.5 * (1.0 - np.tanh((dist - r) / (0.1 * r + 1.0)))).astype(np.float32)

    junk_mask = carbon_mask.copy()
    junk_mask |= _disk_mask(grid, blob_xy, blob_r)
    junk_mask |= _disk_mask(grid, np.array(agg_centres).reshape(-1, 2), np.array(agg_radii))

    if noise:
        image += rng.standard_normal(grid, dtype=np.float32)

    return SimulatedMicrograph(image=image, pixel_size_A=pixel_size, coordinates=coords.astype(np.float64),
                               angles_deg=angles, defocus_um=defocus, particle_diameter_A=2.0 * radius_A,
                               junk=junk, particle_mask=particle_mask, carbon_mask=carbon_mask,
                               junk_mask=junk_mask, snr=snr, voltage_kV=voltage_kV, cs_mm=cs_mm,
                               amplitude_contrast=amplitude_contrast, b_factor=b_factor)


def particle_stack(micrograph: Union[SimulatedMicrograph, np.ndarray], coordinates: np.ndarray,
                   box_size: int) -> np.ndarray:
    """Extract ``box_size`` × ``box_size`` boxes centred on ``coordinates`` (n, 2) as (x, y) pixels.

    Box pixel ``[box_size // 2, box_size // 2]`` is the micrograph pixel nearest the centre;
    parts of a box outside the micrograph are zero.  Returns float32 ``(n, box, box)`` [y, x].
    """
    img = micrograph.image if isinstance(micrograph, SimulatedMicrograph) else np.asarray(micrograph)
    if img.ndim != 2:
        raise InputError(None, f"a micrograph must be 2D [y, x], got shape {img.shape}")
    box = int(box_size)
    if box < 1:
        raise InputError(None, f"box size must be positive, got {box_size}")
    xy = np.asarray(coordinates, dtype=np.float64).reshape(-1, 2)
    ny, nx = img.shape
    off = np.arange(box) - box // 2
    cx = np.rint(xy[:, 0]).astype(np.int64)
    cy = np.rint(xy[:, 1]).astype(np.int64)
    ix = cx[:, None] + off[None, :]
    iy = cy[:, None] + off[None, :]
    okx = (ix >= 0) & (ix < nx)
    oky = (iy >= 0) & (iy < ny)
    vals = img[np.clip(iy, 0, ny - 1)[:, :, None], np.clip(ix, 0, nx - 1)[:, None, :]]
    return np.where(oky[:, :, None] & okx[:, None, :], vals, 0).astype(np.float32)
