"""Maps from atomic models: model maps and simulated cryo-EM reconstructions with half maps.

Units and conventions (``CONVENTIONS.md``): maps are ``[z, y, x]`` float32 arrays in
:class:`~deepqs.io.mapdata.MapData` with ``voxel_size`` and ``origin`` as (x, y, z) in Å;
coordinates in Å, B-factors in Å², resolution in Å, frequencies in 1/Å.

Model map
---------
Every atom is a normalised 3D Gaussian whose integral is the atom's weight (its atomic number,
times occupancy): H 1, C 6, N 7, O 8, P 15, S 16, metals by Z.  The map value is in weight per
Å³.  An atom's width is

    σ² = b_factor_scale · B / (8π²) + extra_B / (8π²) + (0.225 · R)²

(``B/(8π²)`` is the mean-square displacement along one axis; ``0.225 · R`` is the Chimera
``molmap`` Gaussian for resolution ``R``; terms add in quadrature), and σ is at least half a
voxel so that the Gaussian is sampled well.  Each atom is evaluated on a small cube of voxels
(±3σ) -- all atoms of a chunk at once, separably -- and accumulated with ``np.bincount``.

Simulated map (``simulate_map``)
-------------------------------
``noise_free`` is the model map with the atoms' B-factors, extra blurring of the surface
(``local_blur``) and an overall ``global_B`` but *no* resolution blur: the resolution comes from
the noise.  ``global_B`` defaults to ``8π² (0.225 R)²`` ≈ 4 R² Å² (the B of the molmap Gaussian:
about 50 Å² at 3.5 Å, 140 Å² at 6 Å -- typical overall B-factors of real maps there).  Two half
maps add independent coloured Gaussian noise to it, shaped per Fourier shell k so that the
half-map signal-to-noise ratio is

    SNR(k) = S(k) / N(k) = exp(-a · ((k·R)² - 1)) / 6

with ``a = snr_falloff`` (default 6) for k ≤ 1/R and ``a = snr_falloff_beyond`` (default 2)
beyond, where S(k) is the signal's mean power in shell k.  At k = 1/R the SNR is 1/6 and the
half-map FSC ``SNR / (1 + SNR)`` is exactly 1/7 = 0.143; below, it rises (FSC ≈ 0.94 at
k = 1/(2R), 0.985 at the lowest frequencies), beyond it falls.  Two bounds keep the noise
physical: beyond 1/R the noise power is capped at its value at 1/R, N(1/R) = 6 S(1/R) (the
FSC there stays below 0.143 wherever the signal is weaker than at 1/R), and everywhere it is at
least ``noise_floor`` × N(1/R) (default 1 %), so there is noise up to Nyquist even where the
signal has vanished.  The DC term gets no noise.  ``expected_fsc`` holds the resulting design
curve ``S / (S + N)``.  The full map is ``(half1 + half2) / 2``; its FSC against the noise-free
map is ``sqrt(2·FSC/(1+FSC))`` = 0.5 at 1/R (Rosenthal & Henderson).

With ``exact_fsc`` (the default) the noise of each half is made exactly orthogonal, shell by
shell, to the signal and to the other half's noise (a Gram-Schmidt step on the Fourier
coefficients, then rescaled to N(k)), so the FSC measured by :func:`deepqs.validation.fsc`
*equals* the design curve in every shell; without it the measured FSC fluctuates around the
design by about ``1/sqrt(number of coefficients in the shell)``.

Local blurring: atoms far from the centre of mass and atoms with high B get extra B,

    extra_B = local_blur_B · max(((r - r50) / (r_max - r50))₊², ((B - B50) / (B_max - B50))₊)

(``r``: distance from the weighted centre of mass, ``r50``/``B50`` medians, ``₊``: clipped to
[0, 1]), so termini and surface are worse than the core.  ``global_B`` is added to every atom
(negative values sharpen; the total B of an atom never goes below 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import gemmi
import numpy as np

from deepqs.errors import InputError
from deepqs.io.atoms import Atoms
from deepqs.io.mapdata import MapData, as_triple
from deepqs.validation.fsc import FSCCurve, shell_index, shell_sums

__all__ = ["element_weights", "model_map", "simulate_map", "SimulatedMap", "MOLMAP_SIGMA_FACTOR"]

#: σ of the resolution Gaussian as a fraction of the resolution (Chimera ``molmap``).
MOLMAP_SIGMA_FACTOR = 0.225

_CHUNK_VALUES = 4_000_000   # voxels evaluated per chunk (bounds memory: ~100 MB of temporaries)

AtomsLike = Union[Atoms, gemmi.Structure]


def _as_atoms(atoms: AtomsLike) -> Atoms:
    if isinstance(atoms, gemmi.Structure):
        from deepqs.io.models import atoms_from_structure
        return atoms_from_structure(atoms)
    if not isinstance(atoms, Atoms):
        raise InputError(None, f"expected Atoms or gemmi.Structure, got {type(atoms).__name__}")
    return atoms


def element_weights(elements: Sequence[str]) -> np.ndarray:
    """Scattering weight per atom: the atomic number of its element (H and D 1, unknown 6).

    Vectorised over unique element names.
    """
    el = np.char.upper(np.char.strip(np.asarray(elements, dtype=str)))
    if el.size == 0:
        return np.zeros(0)
    uniq, inv = np.unique(el, return_inverse=True)
    z = np.array([1 if u == "D" else gemmi.Element(u).atomic_number if u else 0 for u in uniq], dtype=np.float64)
    z[z <= 0] = 6.0
    return z[inv].reshape(el.shape)


def _default_grid(xyz: np.ndarray, voxel: np.ndarray, padding_A: float,
                  shape: Optional[Sequence[int]], origin: Optional[Sequence[float]]):
    """Grid holding the model plus padding: cubic (same Å extent on every axis), even sizes."""
    lo, hi = xyz.min(axis=0), xyz.max(axis=0)
    centre = 0.5 * (lo + hi)
    if shape is None:
        extent = float((hi - lo).max()) + 2.0 * padding_A
        n_xyz = np.ceil(extent / voxel).astype(np.int64)
        n_xyz += n_xyz % 2
        if origin is not None:
            o = as_triple(origin, "origin")
            need = np.ceil((hi + padding_A - o) / voxel).astype(np.int64)
            n_xyz = np.maximum(n_xyz, need + need % 2)
        shape = tuple(int(v) for v in n_xyz[::-1])
    shape = tuple(int(v) for v in shape)
    if len(shape) != 3 or min(shape) < 2:
        raise InputError(None, f"shape must be three sizes (nz, ny, nx) of at least 2, got {shape}")
    if origin is None:
        # the model's bounding-box centre on voxel index n // 2 (the Fourier centre)
        origin = centre - (np.array(shape[::-1]) // 2) * voxel
    return shape, as_triple(origin, "origin")


def model_map(atoms: AtomsLike, voxel_size: Union[float, Sequence[float]], resolution: Optional[float] = None,
              shape: Optional[Sequence[int]] = None, origin: Optional[Sequence[float]] = None,
              padding_A: float = 10.0, b_factor_scale: float = 1.0,
              extra_b: Optional[np.ndarray] = None) -> MapData:
    """Map of an atomic model as a sum of per-atom Gaussians (see module doc).

    Parameters
    ----------
    atoms : Atoms or gemmi.Structure
        Coordinates (Å), elements, B-factors (Å²), occupancies.
    voxel_size : float or (x, y, z)
        Voxel size in Å; the map has exactly this voxel size.
    resolution : float, optional
        Resolution R (Å): adds a Gaussian of σ = 0.225 R in quadrature.  ``None``: B-factors only.
    shape : (nz, ny, nx), optional
        Grid size.  Default: a box with the same extent in Å on every axis holding the model
        plus ``padding_A`` on each side, even sizes.
    origin : (x, y, z) Å, optional
        Position of voxel [0, 0, 0].  Default: the model's bounding-box centre falls on voxel
        index ``n // 2`` on every axis.
    padding_A : float
        Margin (Å) around the model for the default grid.
    b_factor_scale : float
        Multiplies every atom's B-factor.
    extra_b : ndarray (n_atoms,), optional
        Extra B (Å²) per atom, added after scaling.

    Returns
    -------
    MapData
        float32 ``[z, y, x]`` values in (atomic number) per Å³.
    """
    grid, voxel, origin = _model_grid(atoms, voxel_size, resolution, shape, origin, padding_A, b_factor_scale, extra_b)
    return MapData(grid.astype(np.float32), voxel, origin)


def _model_grid(atoms: AtomsLike, voxel_size, resolution, shape, origin, padding_A, b_factor_scale, extra_b):
    """:func:`model_map` in float64: (grid [z, y, x], voxel (x, y, z), origin (x, y, z))."""
    at = _as_atoms(atoms)
    voxel = as_triple(voxel_size, "voxel_size")
    if not np.all(voxel > 0):
        raise InputError(None, f"voxel size must be positive, got {voxel_size}")
    if resolution is not None and not resolution > 0:
        raise InputError(None, f"resolution must be positive, got {resolution}")
    if len(at) == 0:
        raise InputError(None, "the model has no atoms")
    xyz = np.asarray(at.xyz, dtype=np.float64)
    if not np.all(np.isfinite(xyz)):
        raise InputError(None, "the model has non-finite coordinates")
    shape, origin = _default_grid(xyz, voxel, padding_A, shape, origin)
    nz, ny, nx = shape

    b = np.maximum(b_factor_scale * np.asarray(at.b_iso, dtype=np.float64)
                   + (0.0 if extra_b is None else np.asarray(extra_b, dtype=np.float64)), 0.0)
    sigma2 = b / (8.0 * np.pi ** 2)
    if resolution is not None:
        sigma2 = sigma2 + (MOLMAP_SIGMA_FACTOR * float(resolution)) ** 2
    sigma = np.maximum(np.sqrt(sigma2), 0.5 * float(voxel.min()))
    weight = element_weights(at.element) * np.asarray(at.occupancy, dtype=np.float64)
    amp = weight / ((2.0 * np.pi) ** 1.5 * sigma ** 3)

    frac = (xyz - origin) / voxel                                   # (n, 3) as x, y, z
    half = np.ceil(3.0 * sigma[:, None] / voxel[None, :]).astype(np.int64)   # cube half-size per axis
    # drop atoms whose cube misses the grid entirely
    dims = np.array([nx, ny, nz])
    inside = np.all((frac + half > -1) & (frac - half < dims), axis=1) & (weight > 0)
    out = np.zeros(nz * ny * nx, dtype=np.float64)
    groups, inverse = np.unique(half[inside], axis=0, return_inverse=True)
    idx_inside = np.flatnonzero(inside)
    for g, (hx, hy, hz) in enumerate(groups):                       # per cube size
        members = idx_inside[inverse.ravel() == g]
        members = members[np.argsort(frac[members, 2], kind="stable")]  # z-sorted: compact chunks
        cube = (2 * hx + 1) * (2 * hy + 1) * (2 * hz + 1)
        step = max(1, _CHUNK_VALUES // cube)
        ox, oy, oz = (np.arange(-h, h + 1) for h in (hx, hy, hz))
        for s in range(0, len(members), step):                     # per chunk of atoms
            m = members[s:s + step]
            base = np.rint(frac[m]).astype(np.int64)                # nearest voxel (x, y, z)
            ix = base[:, 0:1] + ox
            iy = base[:, 1:2] + oy
            iz = base[:, 2:3] + oz
            sg = sigma[m, None]
            gx = np.exp(-((ix * voxel[0] + origin[0] - xyz[m, 0:1]) ** 2) / (2 * sg ** 2))
            gy = np.exp(-((iy * voxel[1] + origin[1] - xyz[m, 1:2]) ** 2) / (2 * sg ** 2))
            gz = np.exp(-((iz * voxel[2] + origin[2] - xyz[m, 2:3]) ** 2) / (2 * sg ** 2))
            gx = np.where((ix >= 0) & (ix < nx), gx, 0.0)
            gy = np.where((iy >= 0) & (iy < ny), gy, 0.0)
            gz = np.where((iz >= 0) & (iz < nz), gz, 0.0)
            vals = (amp[m, None, None, None] * gz[:, :, None, None] * gy[:, None, :, None]
                    * gx[:, None, None, :])
            flat = ((np.clip(iz, 0, nz - 1)[:, :, None, None] * ny + np.clip(iy, 0, ny - 1)[:, None, :, None]) * nx
                    + np.clip(ix, 0, nx - 1)[:, None, None, :])
            flat = flat.ravel()
            lo_i, hi_i = int(flat.min()), int(flat.max())
            out[lo_i:hi_i + 1] += np.bincount(flat - lo_i, weights=vals.ravel(), minlength=hi_i - lo_i + 1)
    return out.reshape(nz, ny, nx), voxel, origin


@dataclass
class SimulatedMap:
    """A simulated reconstruction (all maps on one grid; see :func:`simulate_map`).

    Attributes
    ----------
    map : MapData
        Full map, ``(half1 + half2) / 2``.
    half1, half2 : MapData
        Half maps: the noise-free map plus independent coloured noise.
    noise_free : MapData
        The signal: model map with B-factors, local blurring and ``global_B`` (no resolution blur).
    model_map : MapData
        Map of the model at the requested resolution (atoms' own B, σ = 0.225 R), for map-model FSC.
    resolution_A : float
        Requested resolution: the half-map FSC crosses 0.143 there.
    voxel_size_A : float
        Voxel size (Å), exactly as requested.
    seed : int
        Seed of the noise.
    noise, exact_fsc : bool
        Whether noise was added, and made exactly orthogonal per shell.
    snr_falloff, snr_falloff_beyond, noise_floor : float
        Parameters of the SNR design (below and beyond 1/R, least noise).
    local_blur_B, global_B : float
        Blurring parameters (Å²).
    extra_b : ndarray
        Extra B (Å²) given to each atom (local blurring + ``global_B``).
    expected_fsc : FSCCurve
        The design half-map FSC, ``S / (S + N)`` per shell (0 where there is no signal).
    """

    map: MapData
    half1: MapData
    half2: MapData
    noise_free: MapData
    model_map: MapData
    resolution_A: float
    voxel_size_A: float
    seed: int
    noise: bool
    exact_fsc: bool
    snr_falloff: float
    snr_falloff_beyond: float
    noise_floor: float
    local_blur_B: float
    global_B: float
    extra_b: np.ndarray
    expected_fsc: FSCCurve


def default_global_b(resolution: float) -> float:
    """Default overall B (Å²) of a simulated map at ``resolution`` Å: ``8π² (0.225 R)²`` ≈ 4 R².

    The B of the Chimera ``molmap`` Gaussian for R -- about 50 Å² at 3.5 Å and 140 Å² at 6 Å,
    the range of overall B-factors of real reconstructions at those resolutions.
    """
    return float(8.0 * np.pi ** 2 * (MOLMAP_SIGMA_FACTOR * resolution) ** 2)


def local_blur_b(atoms: Atoms, local_blur_B: float) -> np.ndarray:
    """Extra B (Å²) per atom for surface/high-B blurring (rule in the module doc)."""
    if local_blur_B == 0 or len(atoms) < 2:
        return np.zeros(len(atoms))
    w = element_weights(atoms.element) * np.asarray(atoms.occupancy, dtype=np.float64)
    com = np.average(atoms.xyz, axis=0, weights=np.where(w > 0, w, 1.0))
    r = np.linalg.norm(atoms.xyz - com, axis=1)
    b = np.asarray(atoms.b_iso, dtype=np.float64)

    def ramp(v: np.ndarray) -> np.ndarray:
        mid, top = np.median(v), v.max()
        return np.clip((v - mid) / (top - mid), 0.0, 1.0) if top > mid else np.zeros_like(v)

    return float(local_blur_B) * np.maximum(ramp(r) ** 2, ramp(b))


def simulate_map(atoms: AtomsLike, voxel_size: float = 1.0, resolution: float = 4.0, seed: int = 0,
                 noise: bool = True, local_blur: bool = True, local_blur_B: float = 60.0,
                 global_B: Optional[float] = None, snr_falloff: float = 6.0, snr_falloff_beyond: float = 2.0,
                 noise_floor: float = 0.01, exact_fsc: bool = True,
                 shape: Optional[Sequence[int]] = None, origin: Optional[Sequence[float]] = None,
                 padding_A: float = 10.0, b_factor_scale: float = 1.0) -> SimulatedMap:
    """Simulate a reconstruction of ``atoms`` with half maps at a measurable resolution.

    See the module doc for the noise design (half-map FSC = 0.143 exactly at ``resolution``),
    the local blurring rule and the units.

    Parameters
    ----------
    atoms : Atoms or gemmi.Structure
    voxel_size : float
        Cubic voxel size in Å (exactly kept).
    resolution : float
        Target resolution R in Å; must be at least 2 × voxel size (Nyquist) and below the box size.
    seed : int
        Seed for the noise (``np.random.default_rng``); same seed, same maps.
    noise : bool
        False: half maps and full map equal the noise-free map.
    local_blur, local_blur_B : bool, float
        Extra blurring of surface / high-B atoms, up to ``local_blur_B`` Å².
    global_B : float, optional
        B (Å²) added to every atom (negative sharpens); default ``8π² (0.225 R)²``.
    snr_falloff, snr_falloff_beyond : float
        ``a`` in SNR(k) = exp(-a((kR)² - 1)) / 6 below and beyond 1/R; larger is steeper.
    noise_floor : float
        Least noise power in any shell but DC, as a fraction of the noise power at 1/R.
    exact_fsc : bool
        Make the measured FSC equal the design (see module doc).
    shape, origin, padding_A, b_factor_scale
        As for :func:`model_map`; the box must be cubic.
    """
    at = _as_atoms(atoms)
    voxel_size = float(voxel_size)
    resolution = float(resolution)
    if not voxel_size > 0:
        raise InputError(None, f"voxel size must be positive, got {voxel_size}")
    if resolution < 2.0 * voxel_size:
        raise InputError(None, f"resolution {resolution} Å is finer than Nyquist (2 × {voxel_size} Å)")
    if not (snr_falloff > 0 and snr_falloff_beyond > 0):
        raise InputError(None, f"snr_falloff values must be positive, got {snr_falloff}, {snr_falloff_beyond}")
    if not noise_floor >= 0:
        raise InputError(None, f"noise_floor must not be negative, got {noise_floor}")
    if shape is not None and len(set(int(v) for v in shape)) != 1:
        raise InputError(None, f"simulate_map needs a cubic box, got shape {tuple(shape)}")

    if global_B is None:
        global_B = default_global_b(resolution)
    extra = local_blur_b(at, local_blur_B) if local_blur else np.zeros(len(at))
    extra = extra + float(global_B)
    grid, _, grid_origin = _model_grid(at, voxel_size, None, shape, origin, padding_A, b_factor_scale, extra)
    signal = MapData(grid, voxel_size, grid_origin)                  # float64 until the end
    n = signal.shape[0]
    if resolution >= n * voxel_size:
        raise InputError(None, f"resolution {resolution} Å is not below the box size {n * voxel_size} Å")
    reference = model_map(at, voxel_size, resolution, signal.shape, signal.origin, padding_A, b_factor_scale)

    s_ft = np.fft.rfftn(signal.data)
    shells = shell_index(n)
    n_all = int(shells.max()) + 1
    counts = np.bincount(shells.ravel(), minlength=n_all).astype(np.float64)
    s_pow = shell_sums(np.abs(s_ft) ** 2, shells, n_all) / np.maximum(counts, 1)
    k = np.arange(n_all) / (n * voxel_size)
    x = (k * resolution) ** 2 - 1.0                                  # 0 at k = 1/R
    snr = np.exp(-np.where(x <= 0, snr_falloff, snr_falloff_beyond) * x) / 6.0
    k_res = n * voxel_size / resolution                              # 1/R in shell units
    pow_at_res = np.interp(k_res, np.arange(n_all), s_pow) * 6.0     # N(1/R) = 6 S(1/R)
    beyond = k > 1.0 / resolution
    noise_pow = s_pow / snr
    noise_pow[beyond] = np.minimum(noise_pow[beyond], pow_at_res)      # never above N(1/R) beyond R
    noise_pow = np.maximum(noise_pow, noise_floor * pow_at_res)
    noise_pow[0] = 0.0
    half_n = n // 2 + 1
    with np.errstate(invalid="ignore", divide="ignore"):
        design = np.where(s_pow + noise_pow > 0, s_pow / (s_pow + noise_pow), 0.0)
    expected = FSCCurve(k[:half_n], design[:half_n], counts[:half_n].astype(np.int64))

    if noise:
        rng = np.random.default_rng(seed)
        w1 = np.fft.rfftn(rng.standard_normal(signal.shape))
        w2 = np.fft.rfftn(rng.standard_normal(signal.shape))

        def inner(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return shell_sums(np.real(a * np.conj(b)), shells, n_all)

        if exact_fsc:   # Gram-Schmidt per shell: noise ⟂ signal, noise2 ⟂ noise1
            ss = inner(s_ft, s_ft)
            safe = np.where(ss > 0, ss, 1.0)
            w1 -= np.where(ss > 0, inner(w1, s_ft) / safe, 0.0)[shells] * s_ft
            w2 -= np.where(ss > 0, inner(w2, s_ft) / safe, 0.0)[shells] * s_ft
            n11 = inner(w1, w1)
            w2 -= np.where(n11 > 0, inner(w2, w1) / np.where(n11 > 0, n11, 1.0), 0.0)[shells] * w1
        for w in (w1, w2):
            p = shell_sums(np.abs(w) ** 2, shells, n_all) / np.maximum(counts, 1)
            w *= np.sqrt(np.where(p > 0, noise_pow / np.where(p > 0, p, 1.0), 0.0))[shells]
        h1 = np.fft.irfftn(s_ft + w1, s=signal.shape)
        h2 = np.fft.irfftn(s_ft + w2, s=signal.shape)
        half1, half2 = signal.with_data(h1), signal.with_data(h2)
        full = signal.with_data(0.5 * (h1 + h2))
    else:
        half1, half2, full = signal.with_data(signal.data), signal.with_data(signal.data), signal.with_data(signal.data)
    signal = signal.with_data(signal.data)          # float32 like every other map

    return SimulatedMap(map=full, half1=half1, half2=half2, noise_free=signal, model_map=reference,
                        resolution_A=resolution, voxel_size_A=voxel_size, seed=int(seed), noise=bool(noise),
                        exact_fsc=bool(exact_fsc), snr_falloff=float(snr_falloff),
                        snr_falloff_beyond=float(snr_falloff_beyond), noise_floor=float(noise_floor),
                        local_blur_B=float(local_blur_B if local_blur else 0.0), global_B=float(global_B),
                        extra_b=extra, expected_fsc=expected)
