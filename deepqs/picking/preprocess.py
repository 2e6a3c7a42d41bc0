"""Read micrographs and bring them to the picker's working scale.

The picker works on micrographs resampled so that the particle diameter spans a fixed number of
*working pixels* (:data:`WORKING_DIAMETER_PX`).  Only the particle diameter in pixels of the
original micrograph is needed: pixel sizes are often wrong or absent (8-bit images have none),
so the diameter in Å is used only together with a pixel size.

Resampling is Fourier cropping (or padding), which also applies a gentle Gaussian high-pass
(removes ice-thickness gradients); the working image is then normalised robustly (median, MAD) and clipped to ±:data:`CLIP_SIGMA`.

Coordinates: ``x`` = column, ``y`` = row (CONVENTIONS.md).  A working pixel ``(xw, yw)`` lies at
``(xw * scale_x, yw * scale_y)`` in original pixels (Fourier resampling keeps pixel 0 fixed).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import scipy.fft

from deepqs.errors import InputError, PathLike

__all__ = [
    "WORKING_DIAMETER_PX", "CLIP_SIGMA", "IMAGE_EXTENSIONS", "MRC_EXTENSIONS", "PreparedMicrograph",
    "read_image", "particle_diameter_px", "fourier_resample", "normalise", "prepare_micrograph", "prepare_array",
]

#: Particle diameter in working pixels.
WORKING_DIAMETER_PX = 24.0
#: Working images are clipped to ± this many standard deviations.
CLIP_SIGMA = 5.0
#: Gaussian high-pass: sigma of the removed background, in particle diameters.
HIGHPASS_DIAMETERS = 2.0
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MRC_EXTENSIONS = (".mrc", ".mrcs", ".map", ".ccp4", ".rec", ".st", ".ali", ".mrc.gz", ".mrc.bz2")


@dataclass
class PreparedMicrograph:
    """A micrograph at working scale.

    Attributes
    ----------
    image : ndarray float32 [y, x]
        Normalised working image (median 0, robust std 1, clipped to ±CLIP_SIGMA).
    scale : (float, float)
        Original pixels per working pixel along (y, x).
    original_shape : (int, int)
        (ny, nx) of the original micrograph in pixels.
    pixel_size_A : float or None
        Pixel size of the original micrograph in Å (None when unknown).
    diameter_px : float
        Particle diameter in original pixels.
    path : str or None
        Where the micrograph was read from.
    """

    image: np.ndarray
    scale: Tuple[float, float]
    original_shape: Tuple[int, int]
    pixel_size_A: Optional[float]
    diameter_px: float
    path: Optional[str] = None

    @property
    def name(self) -> str:
        """File stem (``"dir/mic_01.mrc"`` -> ``"mic_01"``), or ``"micrograph"``."""
        if not self.path:
            return "micrograph"
        base = os.path.basename(self.path)
        for ext in sorted(MRC_EXTENSIONS + IMAGE_EXTENSIONS, key=len, reverse=True):
            if base.lower().endswith(ext):
                return base[: -len(ext)]
        return os.path.splitext(base)[0]

    def to_original(self, xw: np.ndarray, yw: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Working-pixel coordinates -> original-micrograph pixels (x = column, y = row)."""
        return np.asarray(xw, float) * self.scale[1], np.asarray(yw, float) * self.scale[0]

    def to_working(self, x: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Original-micrograph pixels -> working pixels."""
        return np.asarray(x, float) / self.scale[1], np.asarray(y, float) / self.scale[0]


def read_image(path: PathLike, pixel_size: Optional[float] = None) -> Tuple[np.ndarray, Optional[float]]:
    """Read one micrograph: MRC (header pixel size) or 8/16-bit PNG/JPEG/TIFF (no pixel size).

    Returns ``(image float32 [y, x], pixel_size_A or None)``; ``pixel_size`` (Å) overrides.
    Raises InputError for a missing, unreadable, non-2D, constant or non-finite image.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise InputError(p, "file not found")
    if os.path.isdir(p):
        raise InputError(p, "is a folder, not a micrograph")
    low = p.lower()
    if low.endswith(IMAGE_EXTENSIONS):
        try:
            from PIL import Image

            with Image.open(p) as im:
                im.load()
                if im.mode in ("RGB", "RGBA", "P", "LA", "CMYK"):
                    im = im.convert("L")
                arr = np.asarray(im.convert("F"), dtype=np.float32)
        except (OSError, ValueError, SyntaxError) as exc:
            raise InputError(p, f"unreadable image ({exc})") from None
        ps = None if pixel_size is None else float(pixel_size)
    else:
        from deepqs.io import read_micrograph

        try:
            arr, ps = read_micrograph(p, pixel_size=pixel_size)
        except InputError:
            if pixel_size is not None:
                raise
            # a header without a usable pixel size is fine when the diameter is given in pixels
            arr, _ = read_micrograph(p, pixel_size=1.0)
            ps = None
        arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim != 2:
        raise InputError(p, f"expected a 2D micrograph, got an array of shape {arr.shape}")
    if min(arr.shape) < 16:
        raise InputError(p, f"micrograph too small ({arr.shape[1]} x {arr.shape[0]} pixels)")
    if not np.isfinite(arr).all():
        raise InputError(p, "contains NaN or infinite pixels")
    if float(arr.max()) == float(arr.min()):
        raise InputError(p, "constant image (every pixel has the same value)")
    return arr, ps


def particle_diameter_px(diameter_A: Optional[float] = None, pixel_size_A: Optional[float] = None,
                         diameter_px: Optional[float] = None, path: Optional[str] = None) -> float:
    """Particle diameter in original pixels: ``diameter_px``, or ``diameter_A / pixel_size_A``."""
    if diameter_px is not None:
        if not diameter_px > 0:
            raise InputError(path, f"particle diameter must be positive, got {diameter_px} px")
        return float(diameter_px)
    if diameter_A is None:
        raise InputError(path, "give the particle diameter (in Å with a pixel size, or in pixels)")
    if not diameter_A > 0:
        raise InputError(path, f"particle diameter must be positive, got {diameter_A} Å")
    if pixel_size_A is None or not pixel_size_A > 0:
        raise InputError(path, "no pixel size known for this micrograph: give the pixel size or the diameter in pixels")
    return float(diameter_A) / float(pixel_size_A)


def _freq_index(n_in: int, n_out: int) -> np.ndarray:
    """Indices of the ``min(n_in, n_out)`` lowest frequencies of a full FFT axis."""
    m = min(n_in, n_out)
    pos = (m + 1) // 2
    neg = m - pos
    return np.concatenate([np.arange(pos), np.arange(n_in - neg, n_in)])


def fourier_resample(image: np.ndarray, out_shape: Tuple[int, int], highpass_sigma_px: float = 0.0) -> np.ndarray:
    """Resample ``image`` to ``out_shape`` (ny, nx) by Fourier cropping/padding.

    ``highpass_sigma_px`` (original pixels; 0 = off) removes a Gaussian-blurred background of that
    width in the same pass.  Pixel 0 stays fixed: output pixel ``i`` samples input ``i * n_in / n_out``.
    """
    ny, nx = image.shape
    oy, ox = int(out_shape[0]), int(out_shape[1])
    f = scipy.fft.rfft2(np.asarray(image, dtype=np.float32), workers=-1)
    iy = _freq_index(ny, oy)
    kx = min(nx // 2 + 1, ox // 2 + 1)
    g = f[iy, :kx]
    if highpass_sigma_px > 0:
        fy = scipy.fft.fftfreq(ny)[iy][:, None]
        fx = scipy.fft.rfftfreq(nx)[:kx][None, :]
        k2 = (fy ** 2 + fx ** 2) * (2 * np.pi * highpass_sigma_px) ** 2
        g = g * (1.0 - np.exp(-0.5 * k2)).astype(np.float32)
    out_f = np.zeros((oy, ox // 2 + 1), dtype=g.dtype)
    oiy = _freq_index(oy, ny)
    out_f[oiy, :kx] = g
    out = scipy.fft.irfft2(out_f, s=(oy, ox), workers=-1)
    return (out * (oy * ox) / (ny * nx)).astype(np.float32)


def normalise(image: np.ndarray, clip: float = CLIP_SIGMA) -> np.ndarray:
    """Robust standardisation: ``(x - median) / (1.4826 · MAD)``, clipped to ±``clip`` (float32).

    Median and MAD ignore carbon, ice and other large outlying areas, so the particle contrast
    of the ice does not depend on how much carbon a micrograph shows.  Falls back to the standard
    deviation when the MAD is 0.
    """
    img = np.asarray(image, dtype=np.float32)
    med = float(np.median(img))
    scale = 1.4826 * float(np.median(np.abs(img - med)))
    if not scale > 0:
        scale = float(img.std(dtype=np.float64)) or 1.0
    out = (img - med) / scale
    return np.clip(out, -clip, clip, out=out)


def prepare_array(image: np.ndarray, diameter_px: float, working_diameter_px: float = WORKING_DIAMETER_PX,
                  pixel_size_A: Optional[float] = None, path: Optional[str] = None) -> PreparedMicrograph:
    """Resample and normalise an in-memory micrograph (``diameter_px`` in original pixels)."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise InputError(path, f"expected a 2D micrograph, got shape {img.shape}")
    factor = float(diameter_px) / float(working_diameter_px)          # original px per working px
    ny, nx = img.shape
    oy, ox = max(8, int(round(ny / factor))), max(8, int(round(nx / factor)))
    # tame hot/dead pixels before resampling so one outlier cannot dominate the working image
    m, s = float(img.mean(dtype=np.float64)), float(img.std(dtype=np.float64))
    if s > 0:
        img = np.clip(img, m - 8 * s, m + 8 * s)
    work = fourier_resample(img, (oy, ox), highpass_sigma_px=HIGHPASS_DIAMETERS * float(diameter_px))
    return PreparedMicrograph(normalise(work), (ny / oy, nx / ox), (ny, nx), pixel_size_A, float(diameter_px), path)


def prepare_micrograph(path: PathLike, diameter_A: Optional[float] = None, pixel_size_A: Optional[float] = None,
                       diameter_px: Optional[float] = None,
                       working_diameter_px: float = WORKING_DIAMETER_PX) -> PreparedMicrograph:
    """Read a micrograph file and bring it to working scale (see :func:`prepare_array`)."""
    p = os.fspath(path)
    img, ps = read_image(p, pixel_size_A)
    d = particle_diameter_px(diameter_A, ps, diameter_px, p)
    if d / working_diameter_px * 8 > max(img.shape) or not math.isfinite(d):
        raise InputError(p, f"particle diameter {d:.1f} px is too large for a {img.shape[1]} x {img.shape[0]} micrograph")
    return prepare_array(img, d, working_diameter_px, ps, p)
