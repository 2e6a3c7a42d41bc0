"""2D images for levels 2 and 3: resampling, a real-space projector and rotation/shift/mirror alignment.

Images are ``[y, x]`` float arrays with pixel centres at integers; a stack is ``[n, y, x]``.
Everything works on a common *working grid*: ``m × m`` pixels (``m`` at most ``WORK_SIZE``) of
``pixel_A`` Å, the map's voxel size times ``n / m``.

* :func:`project`: line integrals of the map along unit directions (x, y, z): the map is sampled
  (trilinear, :func:`scipy.ndimage.map_coordinates`) on an ``m³`` grid rotated so that its third
  axis is the direction, and summed along that axis.  Image axes are ``u`` (columns) and ``v``
  (rows) with ``u × v = d``.
* :func:`align`: every image against every reference over in-plane rotations (``ANGLE_STEP_DEG``),
  optionally mirrored, with the translation found by FFT cross-correlation (within ``MAX_SHIFT``
  of the box); the score is the correlation of the images normalised inside a circular mask.
  Batched FFTs; no per-pixel loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Largest working image edge (pixels).
WORK_SIZE = 48
#: In-plane rotation step of the search (degrees).
ANGLE_STEP_DEG = 6.0
#: Largest translation searched, as a fraction of the box edge.
MAX_SHIFT = 0.25
#: Radius of the circular mask, as a fraction of the box edge.
MASK_RADIUS = 0.45


def working_grid(n: int, voxel_A: float):
    """``(m, pixel_A)``: the working image edge and pixel size for an ``n``-voxel map."""
    m = min(int(n), WORK_SIZE)
    m -= m % 2
    return m, float(voxel_A) * n / m


def downsample_volume(vol: np.ndarray, m: int) -> np.ndarray:
    """Resample a cubic ``n³`` volume to ``m³`` (Fourier cropping: no aliasing)."""
    n = vol.shape[0]
    if m == n:
        return vol.astype(np.float64)
    f = np.fft.fftshift(np.fft.fftn(vol))
    lo = n // 2 - m // 2
    f = f[lo:lo + m, lo:lo + m, lo:lo + m]
    return np.real(np.fft.ifftn(np.fft.ifftshift(f))) * (m / n) ** 3


def resample_images(images: np.ndarray, pixel_A: float, target_pixel_A: float, m: int) -> np.ndarray:
    """Rescale a stack to ``target_pixel_A`` and centre-crop / zero-pad to ``m × m``."""
    images = np.asarray(images, dtype=np.float64)
    z = pixel_A / target_pixel_A
    if abs(z - 1) > 1e-3:
        images = ndimage.zoom(images, (1, z, z), order=1)
    n = images.shape[1]
    out = np.zeros((images.shape[0], m, m))
    if n >= m:
        lo = (n - m) // 2
        out[:] = images[:, lo:lo + m, lo:lo + m]
    else:
        lo = (m - n) // 2
        out[:, lo:lo + n, lo:lo + n] = images
    return out


def _frame(d: np.ndarray):
    d = d / np.linalg.norm(d)
    a = np.array([1.0, 0, 0]) if abs(d[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(a, d)
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    return u, v, d


def project(vol: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Projections ``[D, m, m]`` of a cubic volume ``[z, y, x]`` along unit directions (x, y, z)."""
    m = vol.shape[0]
    c = (m - 1) / 2.0
    t = np.arange(m) - c
    out = np.empty((len(directions), m, m))
    for i, d in enumerate(directions):
        u, v, w = _frame(np.asarray(d, dtype=np.float64))
        # point (row j, column i, depth k) = c + t_i u + t_j v + t_k w   (x, y, z)
        p = (c + t[None, :, None, None] * u + t[:, None, None, None] * v + t[None, None, :, None] * w)
        coords = p[..., ::-1].reshape(-1, 3).T                       # z, y, x rows
        out[i] = ndimage.map_coordinates(vol, coords, order=1, mode="constant").reshape(m, m, m).sum(axis=2)
    return out


def circular_mask(m: int, radius: float = MASK_RADIUS) -> np.ndarray:
    c = (m - 1) / 2.0
    y, x = np.ogrid[:m, :m]
    return (x - c) ** 2 + (y - c) ** 2 <= (radius * m) ** 2


def normalise(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero mean, unit norm inside ``mask``; zero outside."""
    imgs = np.asarray(images, dtype=np.float64)
    v = imgs[:, mask]
    v = v - v.mean(axis=1, keepdims=True)
    nrm = np.linalg.norm(v, axis=1, keepdims=True)
    v = v / np.where(nrm > 0, nrm, 1.0)
    out = np.zeros_like(imgs)
    out[:, mask] = v
    return out


def rotations(image: np.ndarray, mirror: bool, step_deg: float = ANGLE_STEP_DEG) -> tuple:
    """All in-plane rotations (and mirrors) of one image: ``(stack, angles_deg, mirrored)``."""
    angles = np.arange(0.0, 360.0, step_deg)
    imgs, angs, mirs = [], [], []
    for mflag in ((False, True) if mirror else (False,)):
        base = image[:, ::-1] if mflag else image
        for a in angles:
            imgs.append(ndimage.rotate(base, a, reshape=False, order=1, mode="constant"))
            angs.append(a)
            mirs.append(mflag)
    return np.stack(imgs), np.array(angs), np.array(mirs)


def _bin2(images: np.ndarray) -> np.ndarray:
    """2 × 2 binning of a stack (the coarse search level)."""
    n, h, w = images.shape
    return images[:, :h - h % 2, :w - w % 2].reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def _search(image: np.ndarray, references: np.ndarray, mirror: bool, step_deg: float, chunk: int = 32):
    """Best (score, rotation index, reference, dy, dx) per reference and the rotation table."""
    from scipy import fft as sfft

    m = image.shape[0]
    mask = circular_mask(m)
    rots, angs, mirs = rotations(image, mirror, step_deg)
    fr = np.conj(sfft.rfft2(normalise(rots, mask).astype(np.float32), workers=-1))
    refn = normalise(references, mask).astype(np.float32)
    lim = max(1, int(MAX_SHIFT * m))
    scores = np.empty(len(refn))
    where = np.empty((len(refn), 3), dtype=np.int64)
    for s in range(0, len(refn), chunk):
        ff = sfft.rfft2(refn[s:s + chunk], workers=-1)
        cc = sfft.irfft2(fr[:, None] * ff[None], s=(m, m), workers=-1)      # [rot, ref, dy, dx]
        cc = np.concatenate([cc[..., -lim:, :], cc[..., :lim + 1, :]], axis=2)
        cc = np.concatenate([cc[..., -lim:], cc[..., :lim + 1]], axis=3)
        flat = cc.transpose(1, 0, 2, 3).reshape(cc.shape[1], -1)
        k = np.argmax(flat, axis=1)
        scores[s:s + len(k)] = flat[np.arange(len(k)), k]
        r, dy, dx = np.unravel_index(k, (cc.shape[0], cc.shape[2], cc.shape[3]))
        where[s:s + len(k)] = np.stack([r, dy - lim, dx - lim], axis=1)
    return scores, where, angs, mirs


@dataclass
class Alignment:
    """Best match of one image: reference index, angle (deg), mirror, shift (dy, dx px) and CC."""

    reference: int
    angle_deg: float
    mirror: bool
    shift: tuple
    cc: float


def apply(image: np.ndarray, a: Alignment) -> np.ndarray:
    """The image transformed by an alignment (mirror, rotation, then shift)."""
    img = image[:, ::-1] if a.mirror else image
    img = ndimage.rotate(img, a.angle_deg, reshape=False, order=1, mode="constant")
    return ndimage.shift(img, a.shift, order=1, mode="constant")


def align(image: np.ndarray, references: np.ndarray, mirror: bool = True, top: int = 8) -> Alignment:
    """Best rotation/mirror/shift of ``image`` onto any of ``references`` (see module doc).

    Two stages: every reference at half size with twice the angular step, then the ``top``
    best references at full size.
    """
    if image.shape[0] >= 32 and len(references) > top:
        sc, _, _, _ = _search(_bin2(image[None])[0], _bin2(references), mirror, 2 * ANGLE_STEP_DEG)
        cand = np.argsort(-sc)[:top]
    else:
        cand = np.arange(len(references))
    sc, where, angs, mirs = _search(image, references[cand], mirror, ANGLE_STEP_DEG)
    j = int(np.argmax(sc))
    r, dy, dx = where[j]
    a = Alignment(reference=int(cand[j]), angle_deg=float(angs[r]), mirror=bool(mirs[r]),
                  shift=(float(dy), float(dx)), cc=0.0)
    a.cc = pearson_in_mask(apply(image, a), references[a.reference], circular_mask(image.shape[0]))
    return a


def pearson_in_mask(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    x, y = a[mask], b[mask]
    x = x - x.mean()
    y = y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else 0.0
