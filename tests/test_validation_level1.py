"""Validation level 1 (half maps): resolution estimates, permutation test, local and directional FSC."""

import numpy as np

from deepqs.validation import checks as C
from deepqs.validation import directional, level1, localres

from validation_data import RESOLUTION_A, anisotropic_halves, clean, copy_map, inputs


def _halves(**kw):
    _, sim, _ = clean()
    args = dict(half1=sim.half1, half2=sim.half2)
    args.update(kw)
    return inputs(**args)


def test_fsc_resolution_of_simulated_half_maps_within_10_percent():
    c = level1.check_1a(_halves())
    assert c.status == C.OK, c.warnings
    r = c.values["resolution_fsc_0143_A"]
    assert abs(r - RESOLUTION_A) / RESOLUTION_A < 0.10
    # SSNR = 1 is FSC = 1/3: coarser than FSC 0.143; DPR 103.9° (no phase information left): finer
    assert c.values["resolution_ssnr_A"] > r > c.values["resolution_dpr_A"]
    assert len(c.values["fsc_curve"]["fsc"]) == 33


def test_overclaimed_resolution_warns():
    inp = _halves(resolution=4.5)
    c = level1.check_1a(inp)
    assert c.status == C.WARNING
    assert any("FSC 0.143" in w for w in c.warnings)


def test_permutation_test_resolution_and_noise_level():
    c = level1.check_1b(_halves())
    assert c.status == C.OK
    # the simulated FSC stays significant well past 1/R (SNR falls smoothly): at or finer than R
    assert c.values["resolution_fdr_A"] <= RESOLUTION_A
    sigma = np.array(c.values["noise_fsc_sigma"])
    n = level1.half_fsc(_halves()).n_voxels
    # the noise FSC of phase-randomised maps has sigma ~ 1/sqrt(2 n) per shell
    ratio = sigma[4:] * np.sqrt(2 * n[4:])
    assert 0.6 < np.median(ratio) < 1.4


def test_permutation_test_on_pure_noise_finds_no_resolution():
    rng = np.random.default_rng(3)
    _, sim, _ = clean()
    h1 = copy_map(sim.half1, rng.standard_normal(sim.half1.shape))
    h2 = copy_map(sim.half2, rng.standard_normal(sim.half2.shape))
    c = level1.check_1b(_halves(half1=h1, half2=h2))
    assert c.values["significant_shells"] <= 2
    assert c.status == C.WARNING


def test_local_resolution_map_and_percentiles(tmp_path):
    inp = _halves()
    c = localres.check_1c(inp)
    assert c.status == C.OK
    lmap = c.maps["local_resolution"]
    assert lmap.shape == inp.map.shape and np.allclose(lmap.origin, inp.map.origin)
    vals = lmap.data[lmap.data > 0]
    assert vals.min() >= 2 * 2.0 - 1e-6                       # never finer than Nyquist (4 Å)
    p = c.values["percentiles_A"]
    assert p["p0.1"] <= p["p50"] <= p["p97.5"] <= 8.0


def test_local_resolution_warns_when_reported_beats_every_window():
    c = localres.check_1c(_halves(resolution=3.9))
    assert c.status == C.WARNING


def test_directional_fsc_isotropic_on_clean_halves():
    c = directional.check_1d(_halves())
    assert c.status == C.OK, c.warnings
    assert c.values["anisotropy_p"] > C.ANISOTROPY_P
    assert len(c.values["directional_resolution_A"]) == C.N_DIRECTIONS
    assert abs(c.values["mean_directional_resolution_A"] - RESOLUTION_A) / RESOLUTION_A < 0.1


def test_anisotropic_half_maps_warn():
    h1, h2 = anisotropic_halves()
    c = directional.check_1d(_halves(half1=h1, half2=h2))
    assert c.status == C.WARNING
    assert c.values["anisotropy_p"] < C.ANISOTROPY_P
    assert c.values["sphericity"] < 0.5
    res = np.array(c.values["directional_resolution_A"])
    dirs = np.array(c.values["directions_xyz"])
    # directions near z (the damaged cone) are the worst
    assert res[np.abs(dirs[:, 2]) > 0.9].mean() > 1.5 * res[np.abs(dirs[:, 2]) < 0.4].mean()
