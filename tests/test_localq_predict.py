"""DeepQs prediction and training: grids, masks, summaries, warnings, CLI, tiny training + resume."""

import json
import os

import numpy as np
import pytest
import torch

from deepqs.errors import InputError
from deepqs.io import read_map, write_map
from deepqs.io.mapdata import MapData
from deepqs.localq import dataset as D
from deepqs.localq.network import ARCHITECTURE, ARCHITECTURES, build_network
from deepqs.localq.predict import PERCENTILES, predict_localq, q_to_resolution
from deepqs.localq.resample import resample_onto


@pytest.fixture(scope="module")
def sim_map():
    ex = D.simulate_example(D.load_structure_atoms(1), np.random.default_rng(0), resolution=4.0, crop=24)
    return ex.map


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    from deepqs.io.weights import save_weights
    net = build_network({"base": 2, "depth": 1}, seed=1)
    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    save_weights(path, net.state_dict(), {"architecture": ARCHITECTURE, "version": "test",
                                          "config": net.config(), "input_pixel_size_A": 1.0})
    return str(path)


def _non_cubic(m: MapData) -> MapData:
    """The map on a non-cubic grid with a non-zero origin."""
    target = MapData(np.zeros((40, 44, 52), np.float32), (0.9, 1.1, 1.25), m.origin + np.array([1.3, -0.7, 2.2]))
    return resample_onto(m, target)


def test_predict_on_input_grid_zero_outside_mask(sim_map, tiny_weights):
    m = _non_cubic(sim_map)
    r = predict_localq(m, weights=tiny_weights, tile=16, batch=2)
    for out in (r.localq, r.resolution):
        assert out.shape == m.shape
        assert np.allclose(out.voxel_size, m.voxel_size) and np.allclose(out.origin, m.origin)
    assert r.mask.any() and np.all(r.localq.data[~r.mask] == 0) and np.all(r.resolution.data[~r.mask] == 0)
    assert np.all(np.abs(r.localq.data) <= 1)
    assert np.allclose(r.resolution.data[r.mask], q_to_resolution(r.localq.data[r.mask]), atol=1e-4)
    p = list(r.summary["percentiles_q"].values())
    assert len(p) == len(PERCENTILES) and p == sorted(p)
    assert r.summary["resolution_from_median_A"] == pytest.approx(-3.816 * r.summary["median_q"] + 5.679)
    json.dumps(r.summary)


def test_threshold_and_mask_and_empty_mask(sim_map, tiny_weights):
    m = sim_map
    t = float(np.percentile(m.data, 95))
    r = predict_localq(m, threshold=t, weights=tiny_weights, tile=16)
    assert r.summary["mask_voxels"] == int((m.data > t).sum())
    mask = np.zeros(m.shape, bool)
    mask[10:20, 10:20, 10:20] = True
    r2 = predict_localq(m, mask=mask, weights=tiny_weights, tile=16)
    assert np.all(r2.localq.data[~mask] == 0)
    with pytest.raises(InputError, match="empty"):
        predict_localq(m, threshold=float(m.data.max()) + 1, weights=tiny_weights)
    with pytest.raises(InputError, match="shape"):
        predict_localq(m, mask=np.ones((3, 3, 3), bool), weights=tiny_weights)


def test_large_voxel_warns_but_predicts(sim_map, tiny_weights):
    target = MapData(np.zeros((12, 12, 12), np.float32), 4.5, sim_map.origin)
    coarse = resample_onto(sim_map, target)
    r = predict_localq(coarse, weights=tiny_weights, tile=16)
    assert any("voxel size" in w for w in r.warnings) and r.summary["warnings"] == r.warnings
    assert r.localq.shape == coarse.shape


def test_missing_default_weights_is_a_clear_error(sim_map, monkeypatch, tmp_path):
    import deepqs.localq.predict as P
    monkeypatch.setattr(P, "default_weights_path", lambda: str(tmp_path / "none.pt"))
    with pytest.raises(InputError, match="no shipped DeepQs weights"):
        predict_localq(sim_map)


def test_cli_predict_writes_maps_and_json(sim_map, tiny_weights, tmp_path):
    from deepqs.cli import main
    m = _non_cubic(sim_map)
    write_map(tmp_path / "in.mrc", m)
    rc = main(["localq", "predict", str(tmp_path / "in.mrc"), "--weights", tiny_weights, "--tile", "16",
               "--out", str(tmp_path / "q.mrc"), "--out-resolution", str(tmp_path / "r.mrc"),
               "--json", str(tmp_path / "s.json")])
    assert rc == 0
    q = read_map(tmp_path / "q.mrc")
    assert q.shape == m.shape and np.allclose(q.voxel_size, m.voxel_size, atol=1e-5)
    assert np.allclose(q.origin, m.origin, atol=1e-3)
    s = json.loads((tmp_path / "s.json").read_text())
    assert set(s["percentiles_q"]) == {"p2_5", "p25", "p50", "p75", "p97_5"}
    rc = main(["localq", "predict", str(tmp_path / "in.mrc"), "--weights", tiny_weights,
               "--threshold", "1e9", "--out", str(tmp_path / "q2.mrc")])
    assert rc == 2 and not os.path.exists(tmp_path / "q2.mrc")


def test_train_two_steps_checkpoint_and_resume(tmp_path):
    from deepqs.io.weights import load_network
    from deepqs.localq.train import TrainConfig, report_paths, train_localq
    torch.set_num_threads(1)
    out = str(tmp_path / "w.pt")
    cfg = TrainConfig(n_examples=4, n_val=2, epochs=1, batch=2, crop=16, base=2, depth=1, max_steps=2, seed=3)
    rep = train_localq(out, sources=[1, 2], config=cfg, progress=False, log=False)
    paths = report_paths(out)
    assert len(rep.epochs) == 1 and os.path.exists(paths["checkpoint"]) and os.path.exists(paths["png"])
    net, header = load_network(out, ARCHITECTURES)
    assert header["architecture"] == ARCHITECTURE and header["config"] == {"base": 2, "depth": 1}
    cfg.epochs = 2
    rep2 = train_localq(out, sources=[1, 2], config=cfg, resume=True, progress=False, log=False)
    assert rep2.epochs == [1, 2] and rep2.train_loss[0] == rep.train_loss[0]
    assert json.loads(open(paths["json"]).read())["epochs"] == [1, 2]


def test_shipped_default_weights_load_when_present(sim_map):
    from deepqs.localq.predict import default_weights_path, load_localq_network
    if not os.path.exists(default_weights_path()):
        pytest.skip("no shipped weights yet")
    assert os.path.getsize(default_weights_path()) <= 20 * 2 ** 20
    net, header = load_localq_network()
    assert header["architecture"] == ARCHITECTURE and header["input_pixel_size_A"] == 1.0
    r = predict_localq(sim_map, tile=32)
    assert r.localq.shape == sim_map.shape


def test_train_init_fresh_and_cosine_lr(tmp_path):
    """--init starts from given weights (kept as 'epoch 0' unless beaten on validation), --fresh
    draws new examples every epoch, --lr-min decays the learning rate as a cosine."""
    from deepqs.io.weights import load_network, save_weights
    from deepqs.localq.train import TrainConfig, epoch_lr, train_localq
    torch.set_num_threads(1)
    ds = D.LocalQDataset([1, 2], n_examples=2, seed=4, crop=16)
    first = ds[0][0].numpy().copy()
    ds.offset = 2
    assert not np.array_equal(first, ds[0][0].numpy())
    assert np.array_equal(ds[0][0].numpy(), D.LocalQDataset([1, 2], n_examples=4, seed=4, crop=16)[2][0].numpy())
    cfg = TrainConfig(epochs=5, lr=1e-3, lr_min=1e-5)
    lrs = [epoch_lr(cfg, e) for e in range(5)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-5) and lrs == sorted(lrs, reverse=True)
    assert epoch_lr(TrainConfig(lr=3e-4), 7) == pytest.approx(3e-4)
    init = tmp_path / "init.pt"
    net = build_network({"base": 2, "depth": 1}, seed=1)
    save_weights(init, net.state_dict(), {"architecture": ARCHITECTURE, "version": "test",
                                          "config": net.config(), "input_pixel_size_A": 1.0})
    out = str(tmp_path / "w.pt")
    cfg = TrainConfig(n_examples=2, n_val=2, epochs=1, batch=2, crop=16, base=2, depth=1, seed=3,
                      init=str(init), fresh=True, lr=1e-12)    # a step this small cannot help
    rep = train_localq(out, sources=[1, 2], config=cfg, progress=False, log=False)
    assert rep.init_val and rep.lr == [pytest.approx(1e-12)]
    assert (rep.best_epoch == 0) == (rep.val_loss[0] > rep.init_val["loss"])   # kept unless beaten
    new, header = load_network(out, ARCHITECTURES)
    for k, v in net.state_dict().items():                     # started from the initial weights
        assert torch.allclose(new.state_dict()[k], v, atol=1e-6)
    assert header["validation"]["best_epoch"] == rep.best_epoch
    with pytest.raises(InputError):
        train_localq(str(tmp_path / "w2.pt"), sources=[1, 2], progress=False, log=False,
                     config=TrainConfig(n_examples=2, n_val=2, epochs=1, batch=2, crop=16, base=3, depth=1,
                                        init=str(init)))
