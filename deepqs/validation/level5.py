"""Level 5: micrographs and coordinates, scored by the pruning classifier.

Each coordinate's box is cut from its micrograph (:func:`deepqs.pruning.boxes.read_micrograph_boxes`,
coordinate files matched to micrographs by file stem) and classed by the shipped pruning model
(:func:`deepqs.pruning.load_model`, :func:`deepqs.pruning.prune` at the model's stored threshold)
as particle, ice/contamination or carbon.  A box the model does not keep looks like
contamination or carbon; more than ``MAX_JUNK_FRACTION`` (20 %) of them warns.

Box size: ``ValidationInputs.box_px`` (``--box``) when given, otherwise the model's
``box_to_diameter`` (about 1.85) times the particle diameter, taken as the largest extent of the
map's thresholded largest component, in micrograph pixels (pixel size from the first
micrograph's header).  When :mod:`deepqs.pruning` or its shipped model is missing the check is
``not-applicable`` with the reason.
"""

from __future__ import annotations

import os

import numpy as np

from deepqs.errors import InputError
from deepqs.validation import checks as C
from deepqs.validation.checks import Check
from deepqs.validation.inputs import ValidationInputs

LEVEL = "5"
NAME = "Coordinates scored by the pruning classifier"


def particle_diameter_A(inp: ValidationInputs) -> float:
    """Largest extent (Å) of the thresholded largest component of the map."""
    from deepqs.validation.level0 import _components

    idx = np.nonzero(_components(inp).largest)
    return float(max(i.max() - i.min() + 1 for i in idx) * inp.voxel_size)


def check_5a(inp: ValidationInputs) -> Check:
    try:
        from deepqs.pruning import load_model, prune
        from deepqs.pruning.boxes import read_micrograph_boxes
    except ImportError as exc:
        return C.not_applicable("5.a", NAME, LEVEL, f"the pruning classifier (deepqs.pruning) is not available: {exc}")
    try:
        model = load_model()
    except InputError as exc:
        return C.not_applicable("5.a", NAME, LEVEL, f"no pruning model: {exc}")
    c = Check("5.a", NAME, LEVEL, description=(
        "Every coordinate's box is classed by the pruning classifier (particle / ice-contamination / carbon); "
        f"more than {100 * C.MAX_JUNK_FRACTION:g} % not kept as particles warns."))
    box = inp.box_px
    diam = particle_diameter_A(inp)
    if box is None:
        from deepqs.io.maps import read_micrograph
        _, ps = read_micrograph(inp.micrographs[0])
        box = int(round(model.box_to_diameter * diam / ps))
    notes = []
    coords = [inp.coords] if isinstance(inp.coords, (str, os.PathLike)) else list(inp.coords)
    bs = read_micrograph_boxes(inp.micrographs, coords, int(box), out_size=model.box_size,
                               warn=notes.append)
    if len(bs.boxes) == 0:
        c.status = C.NOT_APPLICABLE
        c.reason = "no coordinate matches a given micrograph"
        return c
    pred = prune(model, bs.boxes)
    kind = np.argmax(pred.proba, axis=1)
    junk = float(1.0 - pred.kept.mean())
    c.warn_if(junk > C.MAX_JUNK_FRACTION, f"{100 * junk:.1f} % of the {len(kind)} coordinates look like contamination "
              f"or carbon (limit {100 * C.MAX_JUNK_FRACTION:g} %)")
    c.values = {"coordinates": int(len(kind)), "junk_fraction": junk, "threshold_p_particle": float(pred.threshold),
                "fraction_ice": float(np.mean(kind == 1)), "fraction_carbon": float(np.mean(kind == 2)),
                "box_px": int(box), "particle_diameter_A": diam, "off_edge": int(bs.off_edge.sum()),
                "unmatched_coordinates": int(sum(bs.source.get("unmatched", {}).values())), "notes": notes}
    from deepqs.validation.util import fig_png, pyplot
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(pred.p_particle, bins=40, range=(0, 1), color="#4a7ab5")
    ax.axvline(pred.threshold, color="C3", ls="--", label=f"threshold {pred.threshold:.2f}")
    ax.set_xlabel("p(particle)")
    ax.set_ylabel("coordinates")
    ax.legend(fontsize=7, frameon=False)
    c.figures["p_particle"] = fig_png(fig)
    return c.decide()
