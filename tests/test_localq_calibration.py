"""DeepQs output calibration: header format, fitting, application in predict, old weights still load."""

import os

import numpy as np
import pytest
import torch

from deepqs.errors import InputError
from deepqs.localq import dataset as D
from deepqs.localq.calibration import (apply_calibration, calibration_from_header, check_calibration,
                                       fit_median_calibration, identity_calibration)
from deepqs.localq.network import ARCHITECTURE, build_network
from deepqs.localq.predict import predict_localq, q_to_resolution

SHIFT = {"kind": "piecewise_linear", "x": [-1.0, 0.0, 1.0], "y": [-1.0, 0.1, 1.0]}


@pytest.fixture(scope="module")
def sim_map():
    ex = D.simulate_example(D.load_structure_atoms(1), np.random.default_rng(0), resolution=3.0, crop=24)
    return ex.map


def _weights(path, calibration=None):
    from deepqs.io.weights import save_weights
    net = build_network({"base": 2, "depth": 1}, seed=1)
    header = {"architecture": ARCHITECTURE, "version": "test", "config": net.config(), "input_pixel_size_A": 1.0}
    if calibration is not None:
        header["calibration"] = calibration
    save_weights(path, net.state_dict(), header)
    return str(path)


def test_apply_and_check():
    q = np.array([-1.0, -0.5, 0.0, 0.5, 1.0], np.float32)
    assert np.allclose(apply_calibration(q, None), q)
    assert np.allclose(apply_calibration(q, identity_calibration()), q)
    out = apply_calibration(q, SHIFT)
    assert np.allclose(out, [-1.0, -0.45, 0.1, 0.55, 1.0]) and out.dtype == np.float32
    # clipped to the valid range even for knots outside it
    assert apply_calibration(q, {"x": [-1, 1], "y": [-2, 2]}).max() <= 1.0
    assert calibration_from_header({"architecture": "a"}) is None
    with pytest.raises(ValueError, match="non-decreasing"):
        check_calibration({"x": [-1, 0, 1], "y": [0, -0.5, 1]})
    with pytest.raises(ValueError, match="strictly increasing"):
        check_calibration({"x": [-1, -1, 1], "y": [0, 0, 1]})
    with pytest.raises(ValueError, match="kind"):
        check_calibration({"kind": "spline", "x": [-1, 1], "y": [-1, 1]})


def test_fit_recovers_a_known_monotone_map():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.0, 0.7, 300)
    true = np.where(raw < 0.3, raw, 0.3 + 1.3 * (raw - 0.3)) + rng.normal(0, 0.01, raw.size)
    cal = fit_median_calibration(raw, true)
    x = np.linspace(0.02, 0.68, 20)
    want = np.where(x < 0.3, x, 0.3 + 1.3 * (x - 0.3))
    assert np.allclose(np.interp(x, cal["x"], cal["y"]), want, atol=0.02)
    assert np.all(np.diff(cal["y"]) >= 0) and cal["x"][0] == -1.0 and cal["x"][-1] == 1.0
    assert cal["fit"]["mean_abs_median_diff_calibrated"] < cal["fit"]["mean_abs_median_diff_raw"]
    # a non-monotone trend is projected to a monotone map
    cal2 = fit_median_calibration(raw, 0.5 - raw)
    assert np.all(np.diff(cal2["y"]) >= 0)


def test_predict_applies_the_checkpoint_calibration(sim_map, tmp_path):
    torch.set_num_threads(1)
    old = _weights(tmp_path / "old.pt")                      # no calibration key: still loads, raw output
    new = _weights(tmp_path / "new.pt", SHIFT)
    r_old = predict_localq(sim_map, weights=old, tile=16)
    r_new = predict_localq(sim_map, weights=new, tile=16)
    r_raw = predict_localq(sim_map, weights=new, tile=16, calibrate=False)
    m = r_old.mask
    assert np.array_equal(m, r_new.mask) and r_old.summary["calibration"] is None
    assert "piecewise linear" in r_new.summary["calibration"] and r_raw.summary["calibration"] is None
    assert np.allclose(r_raw.localq.data, r_old.localq.data)
    assert np.allclose(r_new.localq.data[m], apply_calibration(r_old.localq.data[m], SHIFT), atol=1e-6)
    assert not np.allclose(r_new.localq.data[m], r_old.localq.data[m])
    assert np.all(r_new.localq.data[~m] == 0)
    assert np.allclose(r_new.resolution.data[m], q_to_resolution(r_new.localq.data[m]), atol=1e-4)
    bad = _weights(tmp_path / "bad.pt", {"x": [0, 1], "y": [1, 0]})
    with pytest.raises(InputError, match="calibration"):
        predict_localq(sim_map, weights=bad, tile=16)


def test_shipped_weights_calibration_is_valid():
    from deepqs.io.weights import load_weights
    from deepqs.localq.predict import default_weights_path
    if not os.path.exists(default_weights_path()):
        pytest.skip("no shipped weights")
    _, header = load_weights(default_weights_path())
    cal = calibration_from_header(header)
    if cal is None:
        pytest.skip("shipped weights without calibration")
    y = np.interp(np.linspace(-1, 1, 201), cal["x"], cal["y"])
    assert np.all(np.diff(y) >= 0) and cal["x"][0] <= -1 and cal["x"][-1] >= 1


def test_cli_no_calibration_flag(sim_map, tmp_path):
    from deepqs.cli import main
    from deepqs.io import read_map, write_map
    torch.set_num_threads(1)
    w = _weights(tmp_path / "new.pt", SHIFT)
    write_map(tmp_path / "in.mrc", sim_map)
    outs = {}
    for name, extra in (("cal", []), ("raw", ["--no-calibration"])):
        rc = main(["localq", "predict", str(tmp_path / "in.mrc"), "--weights", w, "--tile", "16",
                   "--out", str(tmp_path / f"{name}.mrc")] + extra)
        assert rc == 0
        outs[name] = read_map(tmp_path / f"{name}.mrc").data
    inside = outs["raw"] != 0
    assert inside.any()
    assert np.allclose(outs["cal"][inside], apply_calibration(outs["raw"][inside], SHIFT), atol=1e-5)
