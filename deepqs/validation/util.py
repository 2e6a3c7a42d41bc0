"""Small numerical helpers the validation checks share: components, masks, radial profiles, figures.

Maps are ``[z, y, x]`` arrays with cubic or non-cubic voxels (x, y, z) in Å; spatial frequency
in 1/Å.  Everything is vectorised (``scipy.ndimage``, ``np.bincount``); no per-voxel loops.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
from scipy import ndimage

#: 26-connectivity (faces, edges and corners) for 3D components.
STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)


@dataclass
class Components:
    """26-connected components of ``map >= threshold``.

    ``labels``: int array on the map grid (0 = below threshold); ``mass``: mass per label
    (index 0 unused), the sum of the positive map values in each component (voxel count when the
    map is not positive there); ``order``: labels by decreasing mass; ``largest``: bool mask of
    the heaviest component.
    """

    labels: np.ndarray
    n: int
    mass: np.ndarray
    order: np.ndarray
    largest: np.ndarray
    above: np.ndarray


def components(data: np.ndarray, threshold: float) -> Components:
    """Label the 26-connected components of ``data >= threshold`` and weigh them."""
    above = data >= threshold
    labels, n = ndimage.label(above, structure=STRUCTURE_26)
    w = np.clip(data, 0.0, None).astype(np.float64)
    mass = np.bincount(labels.ravel(), weights=w.ravel(), minlength=n + 1)
    if n and not np.any(mass[1:] > 0):      # a map negative above its threshold: count voxels
        mass = np.bincount(labels.ravel(), minlength=n + 1).astype(np.float64)
    mass[0] = 0.0
    order = (np.argsort(-mass[1:], kind="stable") + 1) if n else np.zeros(0, dtype=np.int64)
    largest = labels == order[0] if n else np.zeros_like(above)
    return Components(labels=labels, n=int(n), mass=mass, order=order, largest=largest, above=above)


def ball(radius_vox: np.ndarray) -> np.ndarray:
    """Ellipsoidal structuring element with semi-axes ``radius_vox`` (z, y, x) in voxels."""
    r = np.maximum(np.asarray(radius_vox, dtype=np.float64), 1.0)
    h = np.floor(r).astype(int)
    z, y, x = np.ogrid[-h[0]:h[0] + 1, -h[1]:h[1] + 1, -h[2]:h[2] + 1]
    return (z / r[0]) ** 2 + (y / r[1]) ** 2 + (x / r[2]) ** 2 <= 1.0 + 1e-9


def dilate(mask: np.ndarray, radius_A: float, voxel_size_xyz: np.ndarray) -> np.ndarray:
    """Dilate ``mask`` by ``radius_A`` Å (at least one voxel) with a distance transform."""
    vs = np.asarray(voxel_size_xyz, dtype=np.float64)[::-1]
    if not mask.any():
        return mask.copy()
    radius_A = max(float(radius_A), float(vs.max()))
    dist = ndimage.distance_transform_edt(~mask, sampling=vs)
    return dist <= radius_A + 1e-6


def soft_edge(mask: np.ndarray, width_vox: float) -> np.ndarray:
    """A float mask: 1 inside ``mask``, a raised-cosine fall-off over ``width_vox`` voxels outside."""
    if width_vox <= 0:
        return mask.astype(np.float64)
    dist = ndimage.distance_transform_edt(~mask)
    return np.where(dist <= 0, 1.0, np.where(dist < width_vox, 0.5 * (1 + np.cos(np.pi * dist / width_vox)), 0.0))


def pad_to_cube(data: np.ndarray) -> np.ndarray:
    """Zero-pad ``data`` (centred) to a cube of its largest edge; cubes pass through."""
    n = max(data.shape)
    if all(s == n for s in data.shape):
        return data
    out = np.zeros((n, n, n), dtype=data.dtype)
    lo = [(n - s) // 2 for s in data.shape]
    out[lo[0]:lo[0] + data.shape[0], lo[1]:lo[1] + data.shape[1], lo[2]:lo[2] + data.shape[2]] = data
    return out


def radial_power(data: np.ndarray, voxel_size: float) -> Tuple[np.ndarray, np.ndarray]:
    """Mean |F|² per Fourier shell of a cubic map: ``(frequency 1/Å, power)`` for shells 0..N/2."""
    from deepqs.validation.fsc import shell_index, shell_sums

    cube = pad_to_cube(np.asarray(data, dtype=np.float64))
    n = cube.shape[0]
    ft = np.fft.rfftn(cube)
    shells = shell_index(n)
    n_shells = n // 2 + 1
    p = shell_sums(np.abs(ft) ** 2, shells, n_shells)
    c = np.bincount(shells.ravel(), minlength=n_shells)[:n_shells]
    return np.arange(n_shells) / (n * voxel_size), p / np.maximum(c, 1)


def guinier_fit(freq: np.ndarray, power: np.ndarray, low_A: float, high_A: float):
    """Fit ``ln|F| = a + b · s²`` (s = frequency, 1/Å) between ``low_A`` and ``high_A`` Å.

    Returns ``(B, intercept, slope, mask)`` with ``B = 4 · slope`` Å²: |F| ∝ exp(B s² / 4), so a
    blurred map has negative B and a sharpened one positive B (the sign the report uses).
    ``None`` for B when fewer than 3 shells fall in the range.
    """
    s2 = freq ** 2
    sel = (freq >= 1.0 / low_A) & (freq <= 1.0 / high_A) & (power > 0)
    if sel.sum() < 3:
        return None, None, None, sel
    lnf = 0.5 * np.log(power[sel])
    slope, intercept = np.polyfit(s2[sel], lnf, 1)
    return float(4.0 * slope), float(intercept), float(slope), sel


def effective_sample_size(data: np.ndarray, mask: np.ndarray) -> float:
    """Number of independent values among ``data[mask]`` allowing for voxel-to-voxel correlation.

    Uses the lag-1 correlation ρ along each axis (pairs of neighbouring voxels both in ``mask``)
    and the AR(1) factor ``(1 - ρ) / (1 + ρ)`` per axis: ``n_eff = n · Π (1 - ρ) / (1 + ρ)``.
    Neighbouring voxels of a band-limited map are strongly correlated; a t-test over all voxels
    would call any tiny offset significant.
    """
    n = int(mask.sum())
    if n < 3:
        return float(n)
    v = data - data[mask].mean()
    factor = 1.0
    for ax in range(3):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[ax] = slice(0, -1)
        b[ax] = slice(1, None)
        both = mask[tuple(a)] & mask[tuple(b)]
        if both.sum() < 3:
            continue
        x, y = v[tuple(a)][both], v[tuple(b)][both]
        den = np.sqrt((x * x).sum() * (y * y).sum())
        rho = float((x * y).sum() / den) if den > 0 else 0.0
        rho = min(max(rho, 0.0), 0.999)
        factor *= (1 - rho) / (1 + rho)
    return max(2.0, n * factor)


def fibonacci_hemisphere(n: int) -> np.ndarray:
    """``n`` unit vectors (x, y, z) spread evenly over the hemisphere z >= 0 (a Fibonacci spiral)."""
    i = np.arange(n) + 0.5
    z = 1.0 - i / n                        # uniform in z over (0, 1] -> uniform in area
    r = np.sqrt(np.clip(1 - z * z, 0, None))
    phi = np.pi * (3.0 - np.sqrt(5.0)) * np.arange(n)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


# ---------------------------------------------------------------- figures
def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def fig_png(fig) -> bytes:
    """PNG bytes of a matplotlib figure (the figure is closed)."""
    plt = pyplot()
    buf = io.BytesIO()
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig.tight_layout()
        fig.savefig(buf, format="png", dpi=80)
    finally:
        plt.close(fig)
    return buf.getvalue()


def central_slices_png(data: np.ndarray, threshold: Optional[float] = None, title: str = "",
                       overlay: Optional[np.ndarray] = None, cmap: str = "gray",
                       overlay_label: str = "") -> bytes:
    """Three central orthogonal slices (z, y, x) of a map, with the threshold contour."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    nz, ny, nx = data.shape
    cuts = [(data[nz // 2], "z = centre (x→, y↑)"), (data[:, ny // 2], "y = centre (x→, z↑)"),
            (data[:, :, nx // 2], "x = centre (y→, z↑)")]
    ov = None if overlay is None else [overlay[nz // 2], overlay[:, ny // 2], overlay[:, :, nx // 2]]
    im = None
    for k, (ax, (sl, lab)) in enumerate(zip(axes, cuts)):
        ax.imshow(sl, cmap=cmap, origin="lower")
        if threshold is not None and np.nanmin(sl) < threshold < np.nanmax(sl):
            ax.contour(sl, levels=[threshold], colors="orange", linewidths=0.8)
        if ov is not None:
            m = np.ma.masked_where(~np.isfinite(ov[k]) | (ov[k] <= 0), ov[k])
            im = ax.imshow(m, cmap="jet", origin="lower", alpha=0.8,
                           vmin=np.nanmin(overlay[overlay > 0]) if np.any(overlay > 0) else 0,
                           vmax=np.nanmax(overlay) if np.any(overlay > 0) else 1)
        ax.set_title(lab, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label=overlay_label)
    fig.suptitle(title, fontsize=9)
    return fig_png(fig)
