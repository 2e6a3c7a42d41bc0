"""Level 2: 2D class averages against projections of the map.

The map is resampled to the working grid (:mod:`deepqs.validation.align2d`) and projected along
``N_PROJECTIONS`` directions spread over a hemisphere (a projection along -d is the mirror image
of the one along d, and the alignment searches mirrors, so the hemisphere covers the sphere).
Each class average, resampled to the same pixel size, is aligned (in-plane rotation, shift,
mirror) to its best projection; its correlation there (Pearson, inside a circular mask) is the
class CC.  More than 20 % of classes with CC < 0.7 warns.  Residual images (class minus its
aligned projection, both normalised) are shown for the worst classes.
"""

from __future__ import annotations

import numpy as np

from deepqs.validation import align2d
from deepqs.validation import checks as C
from deepqs.validation.checks import Check
from deepqs.validation.inputs import ValidationInputs
from deepqs.validation.util import fibonacci_hemisphere, fig_png, pad_to_cube, pyplot

LEVEL = "2"
#: Projection directions over the hemisphere (about 11° apart).
N_PROJECTIONS = 120


def map_projections(inp: ValidationInputs):
    """``(projections [D, m, m], directions [D, 3], m, pixel_A)``, cached."""
    if "projections" not in inp.cache:
        vol = pad_to_cube(np.asarray(inp.map.data, dtype=np.float64))
        m, px = align2d.working_grid(vol.shape[0], inp.voxel_size)
        small = align2d.downsample_volume(vol, m)
        dirs = fibonacci_hemisphere(N_PROJECTIONS)
        inp.cache["projections"] = (align2d.project(small, dirs), dirs, m, px)
    return inp.cache["projections"]


def class_images(inp: ValidationInputs, m: int, px: float) -> np.ndarray:
    if "class_images" not in inp.cache:
        ps = inp.classes_pixel_size or inp.voxel_size
        inp.cache["class_images"] = align2d.resample_images(inp.classes, ps, px, m)
    return inp.cache["class_images"]


def check_2a(inp: ValidationInputs) -> Check:
    c = Check("2.a", "Classes against map projections", LEVEL, description=(
        f"Each class average aligned (rotation, shift, mirror) to the best of {N_PROJECTIONS} projections of the map; "
        f"more than {100 * C.MAX_BAD_CLASS_FRACTION:g} % of classes correlating below {C.MIN_CLASS_CC:g} warns."))
    proj, dirs, m, px = map_projections(inp)
    imgs = class_images(inp, m, px)
    al = [align2d.align(img, proj, mirror=True) for img in imgs]
    inp.cache["class_alignments"] = al
    cc = np.array([a.cc for a in al])
    bad = np.flatnonzero(cc < C.MIN_CLASS_CC)
    frac = len(bad) / len(cc)
    c.warn_if(frac > C.MAX_BAD_CLASS_FRACTION,
              f"{len(bad)} of {len(cc)} classes ({100 * frac:.0f} %) correlate below {C.MIN_CLASS_CC:g} with every "
              f"projection of the map (limit {100 * C.MAX_BAD_CLASS_FRACTION:g} %): classes {', '.join(str(i + 1) for i in bad)}")
    c.values = {"n_classes": int(len(cc)), "bad_classes": [int(i + 1) for i in bad], "bad_fraction": float(frac),
                "median_cc": float(np.median(cc)), "working_pixel_A": px, "working_size_px": m}
    c.tables["classes"] = {"class": [i + 1 for i in range(len(cc))], "cc": [float(v) for v in cc],
                           "projection_direction_xyz": [[round(float(x), 3) for x in dirs[a.reference]] for a in al],
                           "angle_deg": [a.angle_deg for a in al], "mirror": [a.mirror for a in al]}
    mask = align2d.circular_mask(m)
    show = np.argsort(cc)[:min(6, len(cc))]
    plt = pyplot()
    fig, axes = plt.subplots(3, len(show), figsize=(1.6 * len(show) + 0.5, 5.2), squeeze=False)
    for j, i in enumerate(show):
        a = al[i]
        x = align2d.normalise(align2d.apply(imgs[i], a)[None], mask)[0]
        p = align2d.normalise(proj[a.reference][None], mask)[0]
        for r, (im, lab) in enumerate(((x, f"class {i + 1}"), (p, f"CC {cc[i]:.2f}"), (x - p, "residual"))):
            axes[r, j].imshow(im, cmap="gray")
            axes[r, j].set_title(lab, fontsize=7)
            axes[r, j].axis("off")
    c.figures["worst_classes"] = fig_png(fig)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(np.arange(1, len(cc) + 1), cc, color=["C3" if v < C.MIN_CLASS_CC else "#4a7ab5" for v in cc])
    ax.axhline(C.MIN_CLASS_CC, color="gray", ls=":")
    ax.set_xlabel("class")
    ax.set_ylabel("CC with best projection")
    c.figures["cc"] = fig_png(fig)
    return c.decide()
