"""Level 0: checks on the map alone (with its contour threshold and reported resolution).

0.a mass and centring, 0.b mask and mass table, 0.c background, 0.d Guinier B-factor,
0.e DeepQs local quality.  Rules and numbers: :mod:`deepqs.validation.checks`.

Notes on the original service's slips, done right here:

* 0.a compares the empty margin in Å with a limit in Å (the service compared a margin in Å with
  a limit its text gave in %).
* 0.b/0.c average over the whole mask / background region (the service's mask-analysis average
  ran over a single voxel).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from deepqs.validation import checks as C
from deepqs.validation.checks import Check
from deepqs.validation.inputs import ValidationInputs
from deepqs.validation.util import (
    central_slices_png,
    components,
    dilate,
    effective_sample_size,
    fig_png,
    guinier_fit,
    pyplot,
    radial_power,
)

LEVEL = "0"


def _components(inp: ValidationInputs):
    if "components" not in inp.cache:
        inp.cache["components"] = components(inp.map.data, inp.threshold)
    return inp.cache["components"]


def _mask(inp: ValidationInputs) -> np.ndarray:
    """Largest component dilated by MASK_DILATION_A (shared by 0.b, 0.c and 0.e)."""
    if "mask" not in inp.cache:
        comp = _components(inp)
        inp.cache["mask"] = dilate(comp.largest, C.MASK_DILATION_A, inp.map.voxel_size)
    return inp.cache["mask"]


def check_0a(inp: ValidationInputs) -> Check:
    """0.a Mass and centring of the thresholded largest component."""
    c = Check("0.a", "Mass analysis and centring", LEVEL, description=(
        f"Largest 26-connected component of map ≥ threshold: its centre x_F must lie within "
        f"{100 * C.MAX_DECENTRING_FRACTION:g} % of the box edge (N·Ts) of the box centre x_0 on every axis, "
        f"it must leave an empty margin of at least {C.MIN_MARGIN_A:g} Å to every face, and the centre of "
        f"mass of all density above the threshold must lie within {100 * C.MAX_COM_OFFSET_FRACTION:g} % of "
        "the box edge of the box centre."))
    d = inp.map.data
    vs = inp.voxel_size
    comp = _components(inp)
    shape = np.array(d.shape, dtype=np.float64)            # z, y, x
    centre = (shape - 1) / 2.0
    idx = np.nonzero(comp.largest)
    w = np.clip(d[idx], 0, None).astype(np.float64)
    w = w if w.sum() > 0 else np.ones_like(w)
    xf = np.array([np.average(i, weights=w) for i in idx])  # z, y, x voxel index
    decentring = np.abs(xf - centre) / shape
    lo = np.array([i.min() for i in idx])
    hi = np.array([i.max() for i in idx])
    margins_A = np.concatenate([lo * vs, (shape - 1 - hi) * vs])   # z-, y-, x-, z+, y+, x+
    allv = np.nonzero(comp.above)
    wa = np.clip(d[allv], 0, None).astype(np.float64)
    wa = wa if wa.sum() > 0 else np.ones_like(wa)
    com = np.array([np.average(i, weights=wa) for i in allv])
    com_offset = np.abs(com - centre) / shape
    names = "zyx"
    for ax in range(3):
        c.warn_if(decentring[ax] > C.MAX_DECENTRING_FRACTION,
                  f"the largest component is off-centre along {names[ax]} by {100 * decentring[ax]:.1f} % of the "
                  f"box (limit {100 * C.MAX_DECENTRING_FRACTION:g} %)")
        c.warn_if(com_offset[ax] > C.MAX_COM_OFFSET_FRACTION,
                  f"the centre of mass is off the box centre along {names[ax]} by {100 * com_offset[ax]:.1f} % "
                  f"of the box (limit {100 * C.MAX_COM_OFFSET_FRACTION:g} %)")
    side = ["z-", "y-", "x-", "z+", "y+", "x+"]
    small = [f"{side[i]} {margins_A[i]:.1f} Å" for i in range(6) if margins_A[i] < C.MIN_MARGIN_A]
    c.warn_if(bool(small), f"empty margin below {C.MIN_MARGIN_A:g} Å between the density and the box: "
              + ", ".join(small))
    c.values = {
        "box_size_A": [float(v) for v in inp.map.box_size_A],
        "largest_component_centre_offset_fraction_xyz": [float(v) for v in decentring[::-1]],
        "centre_of_mass_offset_fraction_xyz": [float(v) for v in com_offset[::-1]],
        "margins_A": {side[i]: float(margins_A[i]) for i in range(6)},
        "min_margin_A": float(margins_A.min()),
    }
    c.figures["slices"] = central_slices_png(d, inp.threshold, "Central slices with the threshold contour")
    return c.decide()


def mass_table(inp: ValidationInputs):
    """Volume (Å³), mass (kDa) and residues for: above threshold, largest component, mask."""
    comp = _components(inp)
    vvox = float(np.prod(inp.map.voxel_size))
    rows = {"above threshold": comp.above, "largest component": comp.largest, "mask": _mask(inp)}
    table = {"region": [], "voxels": [], "volume_A3": [], "mass_kDa": [], "residues": []}
    for name, m in rows.items():
        n = int(m.sum())
        vol = n * vvox
        da = vol / C.A3_PER_DALTON
        table["region"].append(name)
        table["voxels"].append(n)
        table["volume_A3"].append(vol)
        table["mass_kDa"].append(da / 1000.0)
        table["residues"].append(int(round(da / C.DALTON_PER_RESIDUE)))
    return table


def check_0b(inp: ValidationInputs) -> Check:
    """0.b Mask analysis: components needed for the mass, and what the mask misses."""
    c = Check("0.b", "Mask analysis", LEVEL, description=(
        f"26-connected components of map ≥ threshold: more than {C.MAX_COMPONENTS_FOR_MASS} components "
        f"needed to hold {100 * C.MASS_FRACTION:g} % of the mass, or the mask (largest component dilated by "
        f"{C.MASK_DILATION_A:g} Å) missing more than {100 * C.MAX_MASK_MISSING_FRACTION:g} % of the thresholded "
        f"voxels, warns.  Mass table at {C.A3_PER_DALTON} Å³/Da and {C.DALTON_PER_RESIDUE:g} Da/residue."))
    comp = _components(inp)
    mask = _mask(inp)
    masses = comp.mass[comp.order]
    total = masses.sum()
    cum = np.cumsum(masses) / total if total > 0 else np.ones(1)
    needed = int(np.searchsorted(cum, C.MASS_FRACTION - 1e-12) + 1) if comp.n else 0
    n_above = int(comp.above.sum())
    missing = float((comp.above & ~mask).sum()) / max(n_above, 1)
    c.warn_if(needed > C.MAX_COMPONENTS_FOR_MASS,
              f"{needed} components are needed to hold {100 * C.MASS_FRACTION:g} % of the mass "
              f"(limit {C.MAX_COMPONENTS_FOR_MASS}): disconnected density")
    c.warn_if(missing > C.MAX_MASK_MISSING_FRACTION,
              f"the mask misses {100 * missing:.1f} % of the voxels above the threshold "
              f"(limit {100 * C.MAX_MASK_MISSING_FRACTION:g} %)")
    d = inp.map.data
    c.values = {
        "n_components": comp.n,
        "components_for_95pct_mass": needed,
        "largest_component_mass_fraction": float(masses[0] / total) if total > 0 else None,
        "mask_missing_fraction": missing,
        "mask_mean": float(d[mask].mean()),
        "mask_voxels": int(mask.sum()),
        "mask_fraction_of_box": float(mask.mean()),
    }
    c.tables["mass"] = mass_table(inp)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    k = min(20, comp.n)
    ax.bar(np.arange(1, k + 1), 100 * masses[:k] / max(total, 1e-30), color="#4a7ab5")
    ax.set_xlabel("component (by mass)")
    ax.set_ylabel("% of the mass")
    ax.set_title(f"{comp.n} components; {needed} hold {100 * C.MASS_FRACTION:g} %", fontsize=9)
    c.figures["components"] = fig_png(fig)
    return c.decide()


def check_0c(inp: ValidationInputs) -> Check:
    """0.c Background: zero mean (t-test with the effective sample size) and Gaussian tails."""
    c = Check("0.c", "Background analysis", LEVEL, description=(
        f"Voxels outside the mask dilated by a further {C.BACKGROUND_DILATION_A:g} Å: a one-sample t-test of "
        f"mean = 0 (effective sample size from the voxel-to-voxel correlation) with p < {C.BACKGROUND_P:g}, "
        f"or more than {C.OUTLIER_EXCESS:g}× the Gaussian expectation of voxels beyond {C.OUTLIER_SIGMA:g} σ, "
        "warns."))
    d = inp.map.data.astype(np.float64)
    bg = ~dilate(_mask(inp), C.BACKGROUND_DILATION_A, inp.map.voxel_size)
    n = int(bg.sum())
    if n < 100:
        c.status = C.NOT_APPLICABLE
        c.reason = f"only {n} background voxels outside the dilated mask: the box is too small"
        return c
    v = d[bg]
    mean, sd = float(v.mean()), float(v.std(ddof=1))
    n_eff = effective_sample_size(d, bg)
    t = mean / (sd / np.sqrt(n_eff)) if sd > 0 else 0.0
    p = float(2 * stats.t.sf(abs(t), df=max(n_eff - 1, 1))) if sd > 0 else 1.0
    out = int((np.abs(v - mean) > C.OUTLIER_SIGMA * sd).sum()) if sd > 0 else 0
    expected = n * float(2 * stats.norm.sf(C.OUTLIER_SIGMA))
    ratio = out / expected
    c.warn_if(p < C.BACKGROUND_P, f"the background mean {mean:.4g} differs from 0 (p = {p:.2g} < {C.BACKGROUND_P:g}; "
              f"{mean / sd if sd > 0 else 0:+.2f} σ)")
    c.warn_if(ratio > C.OUTLIER_EXCESS, f"{out} background voxels beyond {C.OUTLIER_SIGMA:g} σ: {ratio:.0f}× the "
              f"Gaussian expectation {expected:.2g} (limit {C.OUTLIER_EXCESS:g}×)")
    c.values = {"background_voxels": n, "effective_samples": float(n_eff), "mean": mean, "std": sd,
                "mean_in_sigma": mean / sd if sd > 0 else 0.0, "t": float(t), "p_value": p,
                "outliers_5sigma": out, "outliers_expected": expected, "outlier_excess": float(ratio)}
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].hist(d.ravel(), bins=120, color="#4a7ab5", log=True)
    axes[0].axvline(inp.threshold, color="orange", ls="--", label=f"threshold {inp.threshold:.4g}")
    axes[0].set_title("map histogram", fontsize=9)
    axes[0].legend(fontsize=7, frameon=False)
    lo, hi = mean - 7 * sd, mean + 7 * sd
    axes[1].hist(v, bins=100, range=(lo, hi), density=True, color="#888888", log=True, label="background")
    xs = np.linspace(lo, hi, 200)
    axes[1].plot(xs, stats.norm.pdf(xs, mean, sd), color="C3", label="Gaussian")
    axes[1].axvline(0, color="k", lw=0.8)
    axes[1].set_ylim(max(1e-8, 0.1 / n / (sd if sd > 0 else 1)), None)
    axes[1].set_title("background histogram", fontsize=9)
    axes[1].legend(fontsize=7, frameon=False)
    c.figures["histograms"] = fig_png(fig)
    return c.decide()


def check_0d(inp: ValidationInputs) -> Check:
    """0.d Guinier B-factor between GUINIER_LOW_A and the reported resolution."""
    c = Check("0.d", "B-factor analysis", LEVEL, description=(
        f"Fit ln|F| = a + (B/4)·s² over {C.GUINIER_LOW_A:g} Å .. the reported resolution; B outside "
        f"[{C.B_RANGE[0]:g}, {C.B_RANGE[1]:g}] Å² warns (positive B: oversharpened; very negative: blurred)."))
    hi_A = inp.resolution
    if hi_A >= C.GUINIER_LOW_A:
        c.status = C.NOT_APPLICABLE
        c.reason = f"reported resolution {hi_A:g} Å is not finer than {C.GUINIER_LOW_A:g} Å: no Guinier range"
        return c
    freq, power = radial_power(inp.map.data, inp.voxel_size)
    inp.cache["map_power"] = (freq, power)
    b, a, slope, sel = guinier_fit(freq, power, C.GUINIER_LOW_A, hi_A)
    if b is None:
        c.status = C.NOT_APPLICABLE
        c.reason = "fewer than 3 Fourier shells between 15 Å and the reported resolution (box too small)"
        return c
    c.warn_if(b > C.B_RANGE[1], f"Guinier B = {b:+.1f} Å² > {C.B_RANGE[1]:g}: the map looks oversharpened")
    c.warn_if(b < C.B_RANGE[0], f"Guinier B = {b:+.1f} Å² < {C.B_RANGE[0]:g}: the map looks heavily blurred")
    c.values = {"b_factor_A2": b, "fit_range_A": [C.GUINIER_LOW_A, hi_A], "shells_fitted": int(sel.sum())}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ok = (freq > 0) & (power > 0)
    s2 = freq ** 2
    ax.plot(s2[ok], 0.5 * np.log(power[ok]), ".-", color="#4a7ab5", ms=3, label="map")
    ax.plot(s2[sel], a + slope * s2[sel], "-", color="C3", lw=2, label=f"fit, B = {b:+.0f} Å²")
    for r, lab in ((C.GUINIER_LOW_A, "15 Å"), (hi_A, "reported")):
        ax.axvline(1 / r ** 2, color="gray", ls=":", lw=1)
    ax.set_xlabel("s² = 1/d² (1/Å²)")
    ax.set_ylabel("ln |F|")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("Guinier plot", fontsize=9)
    c.figures["guinier"] = fig_png(fig)
    return c.decide()


def check_0e(inp: ValidationInputs) -> Check:
    """0.e DeepQs local quality (shipped weights) inside map ≥ threshold."""
    from deepqs.localq.predict import predict_localq

    c = Check("0.e", "DeepQs local quality", LEVEL, description=(
        "Local Q predicted by DeepQs inside map ≥ threshold; percentiles 2.5/25/50/75/97.5.  The resolution "
        f"the median implies (R = -3.816·Q + 5.679 Å) worse than {C.LOCALQ_RESOLUTION_FACTOR:g}× the reported one, "
        f"or a 2.5-97.5 spread below {C.LOCALQ_MIN_SPREAD:g} (degenerate), warns."))
    res = predict_localq(inp.map, threshold=inp.threshold, device=inp.device)
    inp.cache["localq"] = res
    s = res.summary
    pq = [float(v) for v in np.percentile(res.localq.data[res.mask], C.LOCALQ_PERCENTILES)]
    spread = pq[-1] - pq[0]
    rmed = float(s["resolution_from_median_A"])
    c.warn_if(rmed > C.LOCALQ_RESOLUTION_FACTOR * inp.resolution,
              f"the median local Q {s['median_q']:.3f} implies {rmed:.2f} Å, worse than "
              f"{C.LOCALQ_RESOLUTION_FACTOR:g} × the reported {inp.resolution:g} Å")
    c.warn_if(spread < C.LOCALQ_MIN_SPREAD, f"local Q is degenerate: 2.5-97.5 % spread {spread:.4f} < "
              f"{C.LOCALQ_MIN_SPREAD:g}")
    c.values = {"percentiles_q": {f"p{p:g}": v for p, v in zip(C.LOCALQ_PERCENTILES, pq)},
                "median_q": float(s["median_q"]), "resolution_from_median_A": rmed, "spread_q": spread,
                "mask_voxels": int(s["mask_voxels"]), "deepqs_warnings": list(res.warnings)}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(res.localq.data[res.mask], bins=60, range=(-0.2, 1.0), color="#4a7ab5")
    for p, v in zip(C.LOCALQ_PERCENTILES, pq):
        ax.axvline(v, color="C3" if p == 50 else "gray", ls="--", lw=0.8)
    ax.set_xlabel("DeepQs local Q")
    ax.set_ylabel("voxels")
    ax.set_title(f"median {s['median_q']:.3f} → {rmed:.2f} Å", fontsize=9)
    c.figures["localq_histogram"] = fig_png(fig)
    c.figures["localq_slices"] = central_slices_png(inp.map.data, inp.threshold, "DeepQs local resolution (Å)",
                                                    overlay=res.resolution.data, overlay_label="Å")
    return c.decide()


CHECKS = (check_0a, check_0b, check_0c, check_0d, check_0e)
