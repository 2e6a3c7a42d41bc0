"""Validation level A (model) and the DeepQs check 0.e: clean model passes, a misfit segment is listed."""

import numpy as np
import pytest
import torch

from deepqs.validation import checks as C
from deepqs.validation import level0, levelA

from validation_data import RESOLUTION_A, SMALL_BOX, copy_map
from validation_data import clean as _clean
from validation_data import inputs as _inputs


def clean():
    return _clean(SMALL_BOX)


def inputs(**kw):
    return _inputs(SMALL_BOX, **kw)


@pytest.fixture(scope="module")
def localq():
    """The DeepQs prediction on the clean map, made once (check 0.e) and shared."""
    torch.set_num_threads(1)
    atoms, _, _ = clean()
    inp = inputs(atoms=atoms)
    c = level0.check_0e(inp)
    return c, inp.cache["localq"]


def _with_localq(localq, **kw):
    inp = inputs(**kw)
    inp.cache["localq"] = localq[1]
    return inp


def test_0e_deepqs_percentiles_and_rules(localq):
    c, res = localq
    assert c.status == C.OK, c.warnings
    p = c.values["percentiles_q"]
    assert p["p2.5"] < p["p25"] < p["p50"] < p["p75"] < p["p97.5"]
    assert c.values["spread_q"] > C.LOCALQ_MIN_SPREAD
    # R = -3.816 Q + 5.679: the median implies a resolution no worse than 1.25 x reported
    assert c.values["resolution_from_median_A"] == pytest.approx(-3.816 * c.values["median_q"] + 5.679, abs=1e-6)
    assert c.values["resolution_from_median_A"] <= 1.25 * RESOLUTION_A


def test_0e_degenerate_local_q_warns(localq):
    """A constant local-Q map (degenerate) is caught by the spread rule."""
    from dataclasses import replace
    _, res = localq
    inp = _with_localq(localq)
    flat = res.localq.with_data(np.where(res.mask, 0.5, 0.0))
    import deepqs.localq.predict as P
    orig = P.predict_localq
    P.predict_localq = lambda m, threshold=None, **k: replace(res, localq=flat)
    try:
        c = level0.check_0e(inp)
    finally:
        P.predict_localq = orig
    assert c.status == C.WARNING and any("degenerate" in w for w in c.warnings)


def test_clean_model_passes(localq):
    atoms, _, _ = clean()
    inp = _with_localq(localq, atoms=atoms)
    res = {f.__name__: f(inp) for f in levelA.CHECKS}
    for name, c in res.items():
        assert c.status == C.OK, (name, c.warnings)
    a, b, c_, d = (res[k] for k in ("check_Aa", "check_Ab", "check_Ac", "check_Ad"))
    assert a.values["median_q"] > 0.4 and a.values["mean_q"] > a.values["expected_q"]
    assert a.values["residues"] == 80
    assert b.values["d_fsc_05_A"] <= RESOLUTION_A and b.values["d_fsc_0143_A"] <= b.values["d_fsc_05_A"]
    assert c_.values["possible_misfits"] == 0 and c_.values["residues_compared"] >= 75
    assert d.values["correlation"] > 0.9


def test_misfit_segment_is_listed(localq):
    atoms, _, _ = clean()
    bad = atoms.select(np.ones(len(atoms), bool))
    seg = (bad.resseq >= 30) & (bad.resseq < 40)
    bad.xyz = bad.xyz.copy()
    bad.xyz[seg] += np.array([4.0, 0.0, 0.0])                 # 10 residues 4 Å off their density
    c = levelA.check_Ac(_with_localq(localq, atoms=bad))
    assert c.status == C.WARNING
    flagged = {d["resseq"] for d in c.values["misfit_residues"]}
    assert len(flagged) >= 4 and flagged <= set(range(28, 42))
    assert c.tables["possible_misfits"]["resseq"] == sorted(c.tables["possible_misfits"]["resseq"])


def test_model_map_fsc_warns_when_overclaimed(localq):
    atoms, _, _ = clean()
    c = levelA.check_Ab(_with_localq(localq, atoms=atoms, resolution=0.7 * 4.0))
    assert c.status == C.WARNING


def test_guinier_profile_of_a_noise_map_does_not_match_the_model():
    """A map of white noise has a flat Guinier profile; the model's falls: r < 0.5."""
    atoms, sim, _ = clean()
    noise = np.random.default_rng(1).standard_normal(sim.map.shape)
    inp = inputs(map=copy_map(sim.map, noise), threshold=2.5, atoms=atoms)
    c = levelA.check_Ad(inp)
    assert c.status == C.WARNING and c.values["correlation"] < C.MIN_GUINIER_CORRELATION
