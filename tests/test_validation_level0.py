"""Validation level 0 (map alone): clean simulated data passes, planted defects fire."""

import numpy as np
import pytest

from deepqs.validation import checks as C
from deepqs.validation import level0

from validation_data import BOX, N_RESIDUES, VOXEL_A, clean, copy_map, fourier_filter, inputs


def _run(inp, *ids):
    funcs = {"0.a": level0.check_0a, "0.b": level0.check_0b, "0.c": level0.check_0c, "0.d": level0.check_0d}
    return {i: funcs[i](inp) for i in ids}


def test_clean_map_passes_0a_to_0d():
    res = _run(inputs(), "0.a", "0.b", "0.c", "0.d")
    for cid, c in res.items():
        assert c.status == C.OK, (cid, c.warnings)
    a, b, c_, d = res["0.a"], res["0.b"], res["0.c"], res["0.d"]
    assert a.values["min_margin_A"] > 30.0
    assert max(a.values["largest_component_centre_offset_fraction_xyz"]) < 0.05
    assert b.values["components_for_95pct_mass"] == 1
    assert b.values["mask_missing_fraction"] < C.MAX_MASK_MISSING_FRACTION / 2
    assert abs(c_.values["mean_in_sigma"]) < 0.01 and c_.values["p_value"] > 0.01
    assert -300 < d.values["b_factor_A2"] < -50       # blurred by the simulation's global B
    assert set(a.figures) == {"slices"} and a.figures["slices"][:4] == b"\x89PNG"


def test_mass_table_uses_1207_A3_per_Da_and_110_Da_per_residue():
    t = _run(inputs(), "0.b")["0.b"].tables["mass"]
    i = t["region"].index("above threshold")
    vol = t["voxels"][i] * VOXEL_A ** 3
    assert t["volume_A3"][i] == pytest.approx(vol)
    assert t["mass_kDa"][i] == pytest.approx(vol / 1.207 / 1000)
    # the test threshold encloses the protein's volume: the table gives back its residue count
    assert t["residues"][i] == pytest.approx(N_RESIDUES, abs=1)


def test_off_centre_map_warns():
    _, sim, thr = clean()
    m = copy_map(sim.map, np.roll(sim.map.data, 16, axis=2))     # 16 voxels along x
    c = _run(inputs(map=m), "0.a")["0.a"]
    assert c.status == C.WARNING
    assert c.values["largest_component_centre_offset_fraction_xyz"][0] > 0.2
    assert any("off-centre along x" in w for w in c.warnings)


def test_small_box_warns_on_margin_in_angstrom():
    _, sim, thr = clean()
    lo = 14
    crop = sim.map.data[lo:BOX - lo, lo:BOX - lo, lo:BOX - lo]
    m = copy_map(sim.map, crop)
    c = _run(inputs(map=m), "0.a")["0.a"]
    assert c.status == C.WARNING
    assert c.values["min_margin_A"] < C.MIN_MARGIN_A
    assert c.values["min_margin_A"] == pytest.approx(_run(inputs(), "0.a")["0.a"].values["min_margin_A"] - lo * VOXEL_A)
    assert any("margin below 20 Å" in w for w in c.warnings)


def test_disconnected_junk_warns():
    _, sim, thr = clean()
    d = sim.map.data.copy()
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[:BOX, :BOX, :BOX]
    for k in range(12):                                          # 12 blobs in the solvent corners
        c = rng.choice([6, 10, 54, 58], size=3)
        d += 0.5 * np.exp(-((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) / (2 * 2.0 ** 2))
    c = _run(inputs(map=copy_map(sim.map, d)), "0.b")["0.b"]
    assert c.status == C.WARNING
    assert c.values["components_for_95pct_mass"] > C.MAX_COMPONENTS_FOR_MASS
    assert c.values["mask_missing_fraction"] > C.MAX_MASK_MISSING_FRACTION


def test_negative_background_offset_warns():
    _, sim, thr = clean()
    sd = float(sim.map.data[:8].std())
    c = _run(inputs(map=copy_map(sim.map, sim.map.data - 0.2 * sd)), "0.c")["0.c"]
    assert c.status == C.WARNING
    assert c.values["mean"] == pytest.approx(-0.2 * sd, rel=0.1)
    assert c.values["p_value"] < C.BACKGROUND_P


def test_background_outliers_warn():
    _, sim, thr = clean()
    d = sim.map.data.copy()
    d[2, 2, 2:40:4] = 30 * float(d[:8].std())                     # 10 spikes in the solvent
    c = _run(inputs(map=copy_map(sim.map, d)), "0.c")["0.c"]
    assert c.values["outliers_5sigma"] >= 10
    assert any("beyond 5 σ" in w for w in c.warnings)


def test_oversharpened_map_warns():
    _, sim, thr = clean()
    sharp = fourier_filter(sim.map.data, lambda s: np.exp(300.0 * s ** 2 / 4.0))   # B = -300 Å² sharpening
    c = _run(inputs(map=copy_map(sim.map, sharp), threshold=float(np.percentile(sharp, 99.5))), "0.d")["0.d"]
    b_clean = _run(inputs(), "0.d")["0.d"].values["b_factor_A2"]
    assert c.values["b_factor_A2"] == pytest.approx(b_clean + 300.0, abs=5.0)
    assert c.status == C.WARNING and "oversharpened" in c.warnings[0]
