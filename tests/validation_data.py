"""Simulated data sets for the validation tests (small: 64³ maps at 2 Å, deterministic seeds)."""

from __future__ import annotations

import functools

import numpy as np

from deepqs.io.mapdata import MapData

N_RESIDUES = 80
VOXEL_A = 2.0
RESOLUTION_A = 6.0
BOX = 64
#: A smaller box for the tests that run DeepQs (its 1 Å resampling costs time).
SMALL_BOX = 48
#: Overall B of the simulated map (Å²): a moderately sharpened map (Guinier B about -190 Å²).
GLOBAL_B = 60.0


@functools.lru_cache(maxsize=None)
def clean(box: int = BOX):
    """(atoms, SimulatedMap, threshold) of a clean simulated reconstruction in a ``box``³ grid."""
    from deepqs.io import atoms_from_structure
    from deepqs.simulate import build_protein_model, simulate_map

    atoms = atoms_from_structure(build_protein_model(N_RESIDUES, seed=3))
    sim = simulate_map(atoms, voxel_size=VOXEL_A, resolution=RESOLUTION_A, seed=11, shape=(box, box, box),
                       global_B=GLOBAL_B)
    return atoms, sim, volume_threshold(sim.map.data, N_RESIDUES)


def volume_threshold(data: np.ndarray, n_residues: int, voxel_A: float = VOXEL_A) -> float:
    """The threshold whose enclosed volume is the protein volume (110 Da/residue, 1.207 Å³/Da)."""
    n_vox = n_residues * 110.0 * 1.207 / voxel_A ** 3
    return float(np.sort(data.ravel())[::-1][int(n_vox)])


def copy_map(m: MapData, data=None) -> MapData:
    return MapData(np.array(m.data if data is None else data, dtype=np.float32), m.voxel_size.copy(), m.origin.copy())


def inputs(box: int = BOX, **kw):
    """ValidationInputs on the clean map (override any field by keyword)."""
    from deepqs.validation.inputs import ValidationInputs

    atoms, sim, thr = clean(box)
    args = dict(map=sim.map, threshold=thr, resolution=RESOLUTION_A)
    args.update(kw)
    return ValidationInputs(**args)


def fourier_filter(data: np.ndarray, fn) -> np.ndarray:
    """Apply ``fn(s)`` (s = spatial frequency in 1/Å) as a Fourier-space multiplier."""
    n = data.shape[0]
    kz = np.fft.fftfreq(n, VOXEL_A)[:, None, None]
    ky = np.fft.fftfreq(n, VOXEL_A)[None, :, None]
    kx = np.fft.rfftfreq(n, VOXEL_A)[None, None, :]
    s = np.sqrt(kz ** 2 + ky ** 2 + kx ** 2)
    return np.fft.irfftn(np.fft.rfftn(data) * fn(s), s=data.shape).astype(np.float32)


def anisotropic_halves(seed: int = 5):
    """Half maps whose Fourier coefficients within ~45° of z carry little signal and much noise
    (what a strong preferred orientation does)."""
    _, sim, _ = clean()
    n = BOX
    kz = np.fft.fftfreq(n)[:, None, None]
    ky = np.fft.fftfreq(n)[None, :, None]
    kx = np.fft.rfftfreq(n)[None, None, :]
    r = np.sqrt(kz ** 2 + ky ** 2 + kx ** 2)
    r[0, 0, 0] = 1.0
    cone = (np.abs(kz) / r > 0.7) & (r > 0.1)
    rng = np.random.default_rng(seed)
    out = []
    for h in (sim.half1, sim.half2):
        f = np.fft.rfftn(h.data)
        noise = np.fft.rfftn(rng.standard_normal((n, n, n)))
        noise *= np.sqrt((np.abs(f) ** 2).mean() / (np.abs(noise) ** 2).mean())
        out.append(copy_map(h, np.fft.irfftn(np.where(cone, 0.3 * f + 3.0 * noise, f), s=(n, n, n))))
    return out
