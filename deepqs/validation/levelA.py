"""Level A: the atomic model against the map.

A.a Q-scores (:func:`deepqs.qscore.compute_qscores`, σ = 0.6 Å), A.b map-model FSC with the model
map of :func:`deepqs.simulate.model_map`, A.c DeepQs predicted local Q against the true Q-scores
(:func:`deepqs.localq.compare.compare_localq`), A.d Guinier profiles of map and model.

Definitions
-----------
* A.b: the model map is the sum of the atoms' Gaussians (their own B-factors, no resolution
  blur) on the map's grid; both maps are multiplied by a soft mask around the model (atoms
  within ``MODEL_MASK_A`` Å, a raised-cosine edge of the same width) before the FSC, the usual
  practice (the solvent carries only noise).
* A.c: per residue, ``gap = (predicted - true) - median over residues of (predicted - true)``;
  the median offset removes any overall calibration difference between the network and the
  Q-score engine.  A residue with ``gap > MISFIT_Q_GAP`` (0.3) -- its true Q far below what the
  density around it predicts -- is a possible misfit.  Any such residue warns; all are listed.
* A.d: ``ln |F|²`` per shell of the map and of the model map between 15 Å and the reported
  resolution, Pearson correlation.
"""

from __future__ import annotations

import numpy as np

from deepqs.validation import checks as C
from deepqs.validation.checks import Check
from deepqs.validation.fsc import fsc, resolution_at
from deepqs.validation.inputs import ValidationInputs
from deepqs.validation.util import fig_png, pad_to_cube, pyplot, radial_power, soft_edge

LEVEL = "A"
#: A.b: mask radius around the atoms (Å) and soft-edge width (Å).
MODEL_MASK_A = 3.0


def _qscores(inp: ValidationInputs):
    if "qscore" not in inp.cache:
        from deepqs.qscore import compute_qscores
        inp.cache["qscore"] = compute_qscores(inp.map, inp.atoms, sigma=0.6, model_path=inp.files.get("model"))
    return inp.cache["qscore"]


def _model_map(inp: ValidationInputs):
    if "model_map" not in inp.cache:
        from deepqs.simulate.density import model_map
        heavy = inp.atoms.select(~np.asarray(inp.atoms.is_hydrogen, dtype=bool))
        inp.cache["model_map"] = model_map(heavy, inp.map.voxel_size, resolution=None,
                                           shape=inp.map.shape, origin=inp.map.origin)
    return inp.cache["model_map"]


def check_Aa(inp: ValidationInputs) -> Check:
    """A.a Q-scores: median, mean against the expected Q at the reported resolution."""
    from deepqs.qscore import residue_table, summarise

    c = Check("A.a", "Q-scores", LEVEL, description=(
        f"Q-score of every non-hydrogen atom (σ = 0.6 Å); median Q < {C.MIN_MEDIAN_Q:g}, or a mean Q more than "
        f"{C.MAX_Q_DEFICIT:g} below the Q expected at the reported resolution, warns."))
    res = _qscores(inp)
    s = summarise(inp.atoms, res, resolution=inp.resolution)
    med = s["median_q"]
    mean = s["mean_q_no_water"] if s["mean_q_no_water"] is not None else s["mean_q"]
    exp = s["expected_q"]
    c.warn_if(med is not None and med < C.MIN_MEDIAN_Q, f"median Q {med:.3f} < {C.MIN_MEDIAN_Q:g}")
    c.warn_if(exp is not None and mean is not None and mean < exp - C.MAX_Q_DEFICIT,
              f"mean Q {mean:.3f} is more than {C.MAX_Q_DEFICIT:g} below the {exp:.3f} expected at "
              f"{inp.resolution:g} Å")
    rt = residue_table(inp.atoms, res.q)
    c.values = {"median_q": med, "mean_q": mean, "expected_q": exp, "implied_resolution_A": s["implied_resolution_A"],
                "atoms_scored": s["atoms"]["scored"], "atoms_outside_map": s["atoms"]["outside_map"],
                "residues": int(len(rt.q_residue))}
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    qr = rt.q_residue[np.isfinite(rt.q_residue)]
    axes[0].hist(qr, bins=40, range=(-0.2, 1.0), color="#4a7ab5")
    if exp is not None:
        axes[0].axvline(exp, color="C3", ls="--", label=f"expected at {inp.resolution:g} Å: {exp:.2f}")
    axes[0].set_xlabel("residue Q-score")
    axes[0].set_ylabel("residues")
    axes[0].legend(fontsize=7, frameon=False)
    axes[0].set_title("per-residue Q-score", fontsize=9)
    axes[1].plot(np.arange(len(rt.q_residue)), rt.q_residue, "-", color="#4a7ab5", lw=0.8)
    axes[1].set_xlabel("residue (model order)")
    axes[1].set_ylabel("Q")
    axes[1].set_ylim(-0.3, 1.0)
    axes[1].set_title("Q along the model", fontsize=9)
    c.figures["qscore"] = fig_png(fig)
    return c.decide()


def check_Ab(inp: ValidationInputs) -> Check:
    """A.b Map-model FSC at 0.5 and 0.143 (soft model mask)."""
    c = Check("A.b", "Map-model FSC", LEVEL, description=(
        f"FSC between the map and the model map inside a soft mask ({MODEL_MASK_A:g} Å around the atoms); "
        f"resolution at 0.5 and 0.143; a reported resolution below {C.OVERCLAIM_FACTOR:g}× d(0.5) warns."))
    mm = _model_map(inp)
    from deepqs.validation.util import dilate
    vs = inp.voxel_size
    core = dilate(mm.data > 0.05 * float(mm.data.max()), MODEL_MASK_A, inp.map.voxel_size)
    soft = soft_edge(core, MODEL_MASK_A / vs)
    a = pad_to_cube(inp.map.data * soft)
    b = pad_to_cube(mm.data * soft)
    curve = fsc(a, b, vs)
    d05, d0143 = (resolution_at(curve, t) for t in C.MAP_MODEL_FSC_THRESHOLDS)
    c.warn_if(inp.resolution < C.OVERCLAIM_FACTOR * d05,
              f"reported {inp.resolution:g} Å is below {C.OVERCLAIM_FACTOR:g} × the map-model d(FSC 0.5) {d05:.2f} Å")
    c.values = {"d_fsc_05_A": d05, "d_fsc_0143_A": d0143,
                "fsc_curve": {"frequency_invA": [float(v) for v in curve.frequency_invA],
                              "fsc": [float(v) for v in curve.fsc]}}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.plot(curve.frequency_invA, curve.fsc, "-", color="#4a7ab5", label="map-model FSC")
    for t, d, col in ((0.5, d05, "C3"), (0.143, d0143, "C1")):
        ax.axhline(t, color="gray", ls=":", lw=1)
        ax.axvline(1 / d, color=col, ls="--", lw=1, label=f"{t}: {d:.2f} Å")
    ax.axvline(1 / inp.resolution, color="k", ls="-.", lw=1, label=f"reported {inp.resolution:g} Å")
    ax.set_xlabel("frequency (1/Å)")
    ax.set_ylim(-0.1, 1.02)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("Map-model FSC", fontsize=9)
    c.figures["fsc"] = fig_png(fig)
    return c.decide()


def check_Ac(inp: ValidationInputs) -> Check:
    """A.c DeepQs predicted local Q against the model's true Q: possible misfits."""
    from deepqs.localq.compare import compare_localq

    c = Check("A.c", "DeepQs vs Q-score agreement", LEVEL, description=(
        f"Per residue, true Q-score against the DeepQs local Q at its atoms; a residue whose true Q lies more "
        f"than {C.MISFIT_Q_GAP:g} below the prediction (after removing the median offset) is a possible misfit; "
        "any such residue warns."))
    lq = inp.cache.get("localq")
    if lq is None:
        from deepqs.localq.predict import predict_localq
        lq = predict_localq(inp.map, threshold=inp.threshold, device=inp.device)
        inp.cache["localq"] = lq
    cmp = compare_localq(inp.map, lq.localq, inp.atoms, mask=lq.mask)
    r = cmp.residues
    diff = r["q_pred"] - r["q_true"]
    offset = float(np.median(diff))
    gap = diff - offset
    bad = np.flatnonzero(gap > C.MISFIT_Q_GAP)
    listed = [{"chain": str(r["chain"][i]), "resseq": int(r["resseq"][i]), "icode": str(r["icode"][i]),
               "resname": str(r["resname"][i]), "q_true": float(r["q_true"][i]), "q_pred": float(r["q_pred"][i]),
               "gap": float(gap[i])} for i in bad]
    if len(bad):
        names = ", ".join(f"{d['chain']}{d['resseq']}{d['icode']}" for d in listed[:30])
        c.warnings.append(f"{len(bad)} residue(s) with true Q more than {C.MISFIT_Q_GAP:g} below the predicted "
                          f"local Q (possible misfits): {names}" + (" ..." if len(bad) > 30 else ""))
    c.values = {"pearson_residue": cmp.summary["pearson_residue"], "median_offset_pred_minus_true": offset,
                "residues_compared": int(len(diff)), "possible_misfits": len(bad), "misfit_residues": listed}
    c.tables["possible_misfits"] = {k: [d[k] for d in listed] for k in
                                    ("chain", "resseq", "icode", "resname", "q_true", "q_pred", "gap")}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.scatter(r["q_true"], r["q_pred"], s=8, color="#4a7ab5", label="residues")
    if len(bad):
        ax.scatter(r["q_true"][bad], r["q_pred"][bad], s=14, color="C3", label="possible misfits")
    xs = np.linspace(-0.2, 1.0, 10)
    ax.plot(xs, xs + offset, "k-", lw=0.8)
    ax.plot(xs, xs + offset + C.MISFIT_Q_GAP, "k:", lw=0.8)
    ax.set_xlabel("true Q (model)")
    ax.set_ylabel("predicted local Q (DeepQs)")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(f"r = {cmp.summary['pearson_residue']:.2f}", fontsize=9)
    c.figures["agreement"] = fig_png(fig)
    return c.decide()


def check_Ad(inp: ValidationInputs) -> Check:
    """A.d Guinier profiles of map and model: correlation of ln|F|²."""
    c = Check("A.d", "Guinier profiles map vs model", LEVEL, description=(
        f"Pearson correlation of ln|F|² of the map and the model map per shell between {C.GUINIER_LOW_A:g} Å and the "
        f"reported resolution; r < {C.MIN_GUINIER_CORRELATION:g} warns."))
    if inp.resolution >= C.GUINIER_LOW_A:
        c.status = C.NOT_APPLICABLE
        c.reason = f"reported resolution {inp.resolution:g} Å is not finer than {C.GUINIER_LOW_A:g} Å"
        return c
    freq, pm = inp.cache.get("map_power") or radial_power(inp.map.data, inp.voxel_size)
    _, pmod = radial_power(_model_map(inp).data, inp.voxel_size)
    sel = (freq >= 1 / C.GUINIER_LOW_A) & (freq <= 1 / inp.resolution) & (pm > 0) & (pmod > 0)
    if sel.sum() < 3:
        c.status = C.NOT_APPLICABLE
        c.reason = "fewer than 3 Fourier shells between 15 Å and the reported resolution"
        return c
    la, lb = np.log(pm[sel]), np.log(pmod[sel])
    r = float(np.corrcoef(la, lb)[0, 1])
    c.warn_if(r < C.MIN_GUINIER_CORRELATION, f"map and model Guinier profiles correlate poorly (r = {r:.2f} < "
              f"{C.MIN_GUINIER_CORRELATION:g})")
    c.values = {"correlation": r, "shells": int(sel.sum())}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    s2 = freq ** 2
    ok = (freq > 0) & (pm > 0) & (pmod > 0)
    ax.plot(s2[ok], np.log(pm[ok]) - la.mean(), ".-", ms=3, color="#4a7ab5", label="map")
    ax.plot(s2[ok], np.log(pmod[ok]) - lb.mean(), ".-", ms=3, color="C3", label="model")
    ax.axvspan(1 / C.GUINIER_LOW_A ** 2, 1 / inp.resolution ** 2, color="gray", alpha=0.15)
    ax.set_xlabel("s² (1/Å²)")
    ax.set_ylabel("ln |F|² (centred)")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(f"r = {r:.2f}", fontsize=9)
    c.figures["guinier"] = fig_png(fig)
    return c.decide()


CHECKS = (check_Aa, check_Ab, check_Ac, check_Ad)
