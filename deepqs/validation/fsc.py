"""Fourier shell correlation (FSC) between two maps on the same cubic grid.

Conventions
-----------
* Maps are ``[z, y, x]`` arrays (or :class:`~deepqs.io.mapdata.MapData`) on the same cubic
  grid (N × N × N voxels) with cubic voxels of ``voxel_size`` Å.
* Shell ``s`` holds the Fourier coefficients whose frequency radius, in Fourier-grid voxels
  (``sqrt(kx² + ky² + kz²)`` with integer ``k``), rounds to ``s``; shells run from 0 (the DC
  term) to N // 2 (Nyquist); the corners of the Fourier cube beyond Nyquist are left out.
  Shell ``s`` sits at spatial frequency ``s / (N · voxel_size)`` 1/Å.
* Sums run over the half-space stored by ``rfftn`` (each coefficient once), the usual practice.
  ``FSC = Re Σ F1 F2* / sqrt(Σ|F1|² Σ|F2|²)`` per shell; a shell where either map has no
  power reads 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from deepqs.errors import InputError
from deepqs.io.mapdata import MapData

__all__ = ["FSCCurve", "fsc", "resolution_at", "shell_index", "shell_sums"]

MapLike = Union[np.ndarray, MapData]


@dataclass
class FSCCurve:
    """An FSC curve.

    Attributes
    ----------
    frequency_invA : ndarray, (n_shells,)
        Shell centre frequencies in 1/Å (shell 0 = DC, last = Nyquist ``1 / (2 voxel)``).
    fsc : ndarray, (n_shells,)
        Correlation per shell, in [-1, 1].
    n_voxels : ndarray of int, (n_shells,)
        Number of ``rfftn`` coefficients in each shell.
    """

    frequency_invA: np.ndarray
    fsc: np.ndarray
    n_voxels: np.ndarray

    @property
    def resolution_A(self) -> np.ndarray:
        """``1 / frequency`` per shell in Å (``inf`` for the DC shell)."""
        with np.errstate(divide="ignore"):
            return 1.0 / self.frequency_invA


def shell_index(n: int) -> np.ndarray:
    """Integer shell number of every coefficient of ``rfftn`` of an ``n × n × n`` array.

    Returns an int array of shape ``(n, n, n // 2 + 1)``: the frequency radius in Fourier-grid
    voxels, rounded.  Values run up to ``round(sqrt(3) · n / 2)`` in the corners.
    """
    kz = np.fft.fftfreq(n) * n
    kx = np.fft.rfftfreq(n) * n
    r2 = kz[:, None, None] ** 2 + kz[None, :, None] ** 2 + kx[None, None, :] ** 2
    return np.rint(np.sqrt(r2)).astype(np.int64)


def shell_sums(values: np.ndarray, shells: np.ndarray, n_shells: int) -> np.ndarray:
    """Sum ``values`` (real, same shape as ``shells``) per shell 0..n_shells-1 (np.bincount)."""
    flat = shells.ravel()
    keep = flat < n_shells
    return np.bincount(flat[keep], weights=values.ravel()[keep], minlength=n_shells)[:n_shells]


def _as_array(m: MapLike, name: str) -> np.ndarray:
    data = m.data if isinstance(m, MapData) else np.asarray(m)
    if data.ndim != 3:
        raise InputError(None, f"{name} must be a 3D map, got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise InputError(getattr(m, "path", None), f"{name} contains NaN or infinite voxels")
    return data


def fsc(map1: MapLike, map2: MapLike, voxel_size: float) -> FSCCurve:
    """FSC between two maps on the same cubic grid (see module doc for the shell convention).

    Parameters
    ----------
    map1, map2 : ndarray [z, y, x] or MapData
        Same shape, cubic box (N × N × N).
    voxel_size : float
        Voxel size in Å (cubic voxels).

    Raises
    ------
    InputError
        Shapes differ, the box is not cubic, a map holds NaN/inf, or the voxel size is not
        positive.
    """
    a = _as_array(map1, "map1")
    b = _as_array(map2, "map2")
    if a.shape != b.shape:
        raise InputError(None, f"maps differ in shape: {a.shape} and {b.shape}")
    if len(set(a.shape)) != 1:
        raise InputError(None, f"FSC needs a cubic box, got shape {a.shape} (z, y, x)")
    voxel_size = float(np.asarray(voxel_size, dtype=np.float64).reshape(-1)[0])
    if not voxel_size > 0:
        raise InputError(None, f"voxel size must be positive, got {voxel_size}")
    n = a.shape[0]
    fa = np.fft.rfftn(np.asarray(a, dtype=np.float64))
    fb = np.fft.rfftn(np.asarray(b, dtype=np.float64))
    shells = shell_index(n)
    n_shells = n // 2 + 1
    num = shell_sums(np.real(fa * np.conj(fb)), shells, n_shells)
    pa = shell_sums(np.abs(fa) ** 2, shells, n_shells)
    pb = shell_sums(np.abs(fb) ** 2, shells, n_shells)
    counts = np.bincount(shells.ravel(), minlength=n_shells)[:n_shells]
    denom = np.sqrt(pa * pb)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), 0.0)
    freq = np.arange(n_shells) / (n * voxel_size)
    return FSCCurve(frequency_invA=freq, fsc=np.clip(curve, -1.0, 1.0), n_voxels=counts.astype(np.int64))


def resolution_at(curve: FSCCurve, threshold: float = 0.143) -> float:
    """Resolution (Å) where the FSC first falls below ``threshold``.

    The search starts at shell 1 (the DC shell is skipped).  The crossing frequency is
    interpolated linearly between the last shell at or above the threshold and the first
    below it, and returned as ``1 / frequency``.  If shell 1 is already below, the answer is
    ``1 / frequency(shell 1)`` (the box size: nothing better can be claimed); if the curve never
    falls below, the answer is the Nyquist limit ``1 / frequency(last shell)`` = 2 × voxel size.
    """
    f = np.asarray(curve.frequency_invA, dtype=np.float64)
    c = np.asarray(curve.fsc, dtype=np.float64)
    if len(f) < 2:
        raise InputError(None, "an FSC curve needs at least two shells")
    below = np.flatnonzero(c[1:] < threshold)
    if len(below) == 0:
        return float(1.0 / f[-1])
    i = int(below[0]) + 1
    if i == 1:
        return float(1.0 / f[1])
    f0, f1, c0, c1 = f[i - 1], f[i], c[i - 1], c[i]
    freq = f0 + (threshold - c0) * (f1 - f0) / (c1 - c0)
    return float(1.0 / freq)
