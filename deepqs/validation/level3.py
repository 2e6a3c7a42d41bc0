"""Level 3: particles with their class assignment -- consistency within each class.

For each class with at least ``MIN_PARTICLES`` particles: every particle (on the working grid of
:mod:`deepqs.validation.align2d`) is aligned to its class average (in-plane rotation and shift,
found for all particles at once by FFT cross-correlation), the aligned particles inside the
circular mask are reduced by PCA to ``N_PCA_COMPONENTS`` components, and each particle's
Mahalanobis distance in that space is computed robustly (mean and covariance re-estimated three
times from the particles within the limit, starting from a median/MAD core).  Particles beyond ``MAHALANOBIS_OUTLIER`` (3) are
outliers; the *core fraction* of a class is the fraction within.  More than 20 % of the classes
with a core fraction below 0.7 warns.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, stats

from deepqs.validation import align2d
from deepqs.validation import checks as C
from deepqs.validation.checks import Check
from deepqs.validation.inputs import ValidationInputs
from deepqs.validation.level2 import class_images, map_projections
from deepqs.validation.util import fig_png, pyplot

LEVEL = "3"
#: Classes with fewer particles than this are not scored.
MIN_PARTICLES = 10


def align_to_average(average: np.ndarray, particles: np.ndarray) -> np.ndarray:
    """Particles rotated and shifted onto ``average`` (all found in one batched search)."""
    _, where, angs, _ = align2d._search(average, particles, mirror=False, step_deg=align2d.ANGLE_STEP_DEG)
    out = np.empty_like(particles, dtype=np.float64)
    for i, (r, dy, dx) in enumerate(where):
        # particle(p + t) ~ R_a(average)(p): shift the particle by -t, then rotate it by -a
        img = ndimage.shift(particles[i], (-dy, -dx), order=1, mode="constant")
        out[i] = ndimage.rotate(img, -angs[r], reshape=False, order=1, mode="constant")
    return out


def robust_mahalanobis(scores: np.ndarray, limit: float = C.MAHALANOBIS_OUTLIER, iterations: int = 3) -> np.ndarray:
    """Mahalanobis distance of each row, mean/covariance re-estimated from the rows within ``limit``.

    The first core comes from the median and the MAD (σ = 1.4826 MAD) of each component, so that
    a minority of junk does not inflate the first covariance.
    """
    med = np.median(scores, axis=0)
    mad = 1.4826 * np.median(np.abs(scores - med), axis=0)
    d = np.sqrt((((scores - med) / np.where(mad > 0, mad, 1.0)) ** 2).sum(axis=1))
    # chi with k degrees of freedom: the limit on the per-axis scale grows with sqrt(k)
    core = d <= limit * np.sqrt(scores.shape[1])
    k = scores.shape[1]
    # consistency factor: a covariance from the points within the limit underestimates the spread
    q = limit ** 2
    consistency = float(stats.chi2.cdf(q, k) / stats.chi2.cdf(q, k + 2))
    for _ in range(iterations):
        if core.sum() <= scores.shape[1] + 1:
            break
        mu = scores[core].mean(axis=0)
        cov = consistency * np.cov(scores[core], rowvar=False) + 1e-12 * np.eye(scores.shape[1])
        diff = scores - mu
        d = np.sqrt(np.einsum("ij,jk,ik->i", diff, np.linalg.inv(cov), diff))
        core = d <= limit
    return d


def class_core_fraction(aligned: np.ndarray, mask: np.ndarray, k: int = C.N_PCA_COMPONENTS):
    """``(core fraction, distances)`` of one class's aligned particles (PCA + robust Mahalanobis)."""
    x = aligned[:, mask]
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    k = min(k, len(s) - 1)
    d = robust_mahalanobis(u[:, :k] * s[:k])
    return float(np.mean(d <= C.MAHALANOBIS_OUTLIER)), d


def check_3a(inp: ValidationInputs) -> Check:
    c = Check("3.a", "Particle consistency within classes (PCA)", LEVEL, description=(
        f"Per class, particles aligned to the class average, PCA ({C.N_PCA_COMPONENTS} components), robust "
        f"Mahalanobis distance; outliers beyond {C.MAHALANOBIS_OUTLIER:g}; more than "
        f"{100 * C.MAX_BAD_CLASS_FRACTION:g} % of classes with a core fraction below {C.MIN_CORE_FRACTION:g} warns."))
    _, _, m, px = map_projections(inp)
    avgs = class_images(inp, m, px)
    parts = align2d.resample_images(inp.particles, inp.particles_pixel_size or inp.voxel_size, px, m)
    mask = align2d.circular_mask(m)
    labels = np.asarray(inp.particle_classes)
    rows = {"class": [], "particles": [], "core_fraction": []}
    bad = []
    for k in range(avgs.shape[0]):
        sel = np.flatnonzero(labels == k)
        if len(sel) < MIN_PARTICLES:
            continue
        al = align_to_average(avgs[k], parts[sel])
        frac, _ = class_core_fraction(al, mask)
        rows["class"].append(k + 1)
        rows["particles"].append(int(len(sel)))
        rows["core_fraction"].append(frac)
        if frac < C.MIN_CORE_FRACTION:
            bad.append(k + 1)
    if not rows["class"]:
        c.status = C.NOT_APPLICABLE
        c.reason = f"no class has {MIN_PARTICLES} particles or more"
        return c
    frac_bad = len(bad) / len(rows["class"])
    c.warn_if(frac_bad > C.MAX_BAD_CLASS_FRACTION,
              f"{len(bad)} of {len(rows['class'])} classes ({100 * frac_bad:.0f} %) have a core fraction below "
              f"{C.MIN_CORE_FRACTION:g} (limit {100 * C.MAX_BAD_CLASS_FRACTION:g} %): classes {', '.join(map(str, bad))}")
    c.values = {"classes_scored": len(rows["class"]), "bad_classes": bad, "bad_fraction": frac_bad,
                "median_core_fraction": float(np.median(rows["core_fraction"])),
                "particles": int(len(labels))}
    c.tables["classes"] = rows
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(rows["class"], rows["core_fraction"],
           color=["C3" if v < C.MIN_CORE_FRACTION else "#4a7ab5" for v in rows["core_fraction"]])
    ax.axhline(C.MIN_CORE_FRACTION, color="gray", ls=":")
    ax.set_xlabel("class")
    ax.set_ylabel("core fraction")
    ax.set_ylim(0, 1.02)
    c.figures["core_fraction"] = fig_png(fig)
    return c.decide()
