"""Picking robustness: exact resume (optimiser state), pure noise, device fallback, hard negatives."""

import json
import os

import numpy as np
import pytest
import torch

from deepqs.cli import main
from deepqs.io import Coordinates, write_coordinates, write_micrograph
from deepqs.picking.model import load_model
from deepqs.picking.pick import pick_prepared
from deepqs.picking.preprocess import prepare_array
from deepqs.picking.train import TrainConfig, TrainingExample, mine_hard_negatives, state_path, train_picker
from deepqs.simulate.micrographs import simulate_micrographs


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def sims():
    ms = simulate_micrographs(3, (320, 320), pixel_size=3.0, n_particles=24, seed=4, snr=0.3,
                              junk={"ice_blobs": 2, "aggregates": 1})
    ex = [TrainingExample(prepare_array(m.image, m.particle_diameter_px), m.coordinates) for m in ms]
    return ms, ex


def test_resume_restores_optimiser_and_continues_exactly(sims, tmp_path):
    _, ex = sims
    cfg2 = TrainConfig(epochs=3, seed=3, max_windows_per_epoch=256, patience=10)
    straight = train_picker(ex[:2], cfg2).model.net.state_dict()
    ck = tmp_path / "ck.pt"
    train_picker(ex[:2], TrainConfig(epochs=1, seed=3, max_windows_per_epoch=256, patience=10), checkpoint=str(ck))
    st = torch.load(state_path(str(ck)), weights_only=True)
    assert st["epoch"] == 1
    moments = [v["exp_avg"] for v in st["optimizer"]["state"].values()]
    assert len(moments) > 0 and any(float(m.abs().sum()) > 0 for m in moments)     # Adam moments were saved
    logs = []
    res = train_picker(ex[:2], cfg2, checkpoint=str(ck), log=logs.append)
    assert [h["epoch"] for h in res.history] == [1, 2, 3]
    assert "optimiser restarts" not in logs[0]
    resumed = res.model.net.state_dict()
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k])         # same as never interrupted
    # without the state file the weights still resume, and the log says the optimiser restarts
    os.remove(state_path(str(ck)))
    logs = []
    train_picker(ex[:2], TrainConfig(epochs=4, seed=3, max_windows_per_epoch=256, patience=10),
                 checkpoint=str(ck), log=logs.append)
    assert "optimiser restarts" in logs[0]
    assert load_model(ck).info["epoch"] == 4


def test_particle_free_examples_and_hard_negatives(sims):
    ms, ex = sims
    noise = TrainingExample(prepare_array(np.random.default_rng(0).standard_normal((320, 320)),
                                          ms[0].particle_diameter_px), np.zeros((0, 2)))
    first = train_picker(ex[:2] + [noise], TrainConfig(epochs=2, seed=0, max_windows_per_epoch=512)).model
    mined, n = mine_hard_negatives(first, ex[:2], min_score=0.05, min_distance_diameters=0.5)
    assert n > 0 and n == sum(len(e.negatives) for e in mined)
    from scipy.spatial import cKDTree

    for e in mined:
        d, _ = cKDTree(e.positives).query(e.negatives)
        assert d.min() >= 0.5 * e.prepared.diameter_px - 1e-6      # never on a labelled particle
    capped, n2 = mine_hard_negatives(first, ex[:2], min_score=0.05, max_per_micrograph=3)
    assert n2 <= 6
    again = train_picker(mined, TrainConfig(epochs=1, seed=0, max_windows_per_epoch=512), init=first)
    assert again.epochs_run == 1 and 0 < again.model.threshold < 1
    # selection by validation average precision; particle-free validation micrographs count as false positives
    res = train_picker(ex[:2], TrainConfig(epochs=2, seed=0, max_windows_per_epoch=512, select_by="ap", patience=5),
                       val_examples=[ex[2], noise])
    aps = [h["val_ap"] for h in res.history]
    assert len(aps) == 2 and all(0.0 < a <= 1.0 for a in aps)
    assert res.best_epoch == 1 + int(np.argmax(aps))
    with pytest.raises(ValueError, match="select_by"):
        train_picker(ex[:2], TrainConfig(epochs=1, select_by="f1"))


def test_shipped_model_gives_almost_no_picks_on_pure_noise():
    import deepqs.picking as picking

    if not os.path.exists(picking.DEFAULT_MODEL):
        pytest.skip("no shipped picking model in this checkout")
    model = load_model(picking.DEFAULT_MODEL)
    rng = np.random.default_rng(5)
    n_picks, n_area = 0, 0.0
    for d, smooth in ((40.0, 0.0), (80.0, 1.5)):
        img = rng.standard_normal((1536, 1536)).astype(np.float32)
        if smooth:
            from scipy import ndimage

            img = ndimage.gaussian_filter(img, smooth)
        picks = pick_prepared(model, prepare_array(img, d), threshold="auto")
        n_picks += len(picks)
        n_area += img.size / (np.pi * (d / 2) ** 2)             # particles that would fit
        assert picks.n_peaks > 100                                  # there were candidates to reject
    assert n_picks <= 0.01 * n_area, (n_picks, n_area)              # old model: 1616 picks (69 %)


def test_device_rule_is_the_project_one(sims, tmp_path, capsys):
    from deepqs.picking.score import resolve_device, score_image
    import deepqs.device

    assert resolve_device is deepqs.device.resolve_device
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the CPU fallback cannot be exercised")
    ms, ex = sims
    model = train_picker(ex[:1], TrainConfig(epochs=1, seed=0, max_windows_per_epoch=128)).model
    sm = score_image(model.net, ex[0].prepared.image, 4, 1, device="cuda")
    assert sm.scores.shape[0] > 10 and "running on the CPU" in capsys.readouterr().err
    from deepqs.picking.model import save_model

    save_model(tmp_path / "m.pt", model)
    write_micrograph(tmp_path / "a.mrc", ms[0].image, 3.0)
    rc = main(["pick", "run", "--model", str(tmp_path / "m.pt"), "--micrographs", str(tmp_path / "a.mrc"),
               "--diameter-px", "26", "--out-dir", str(tmp_path / "o"), "--device", "cuda", "--threads", "1",
               "--json", str(tmp_path / "s.json")])
    assert rc == 0
    assert "asked for a GPU" in capsys.readouterr().err
    assert json.loads((tmp_path / "s.json").read_text())["device"] == "cpu"


def test_train_cli_counts_stray_coordinates_and_mines(sims, tmp_path, capsys):
    ms, _ = sims
    mics, coords = [], []
    for i, m in enumerate(ms):
        write_micrograph(tmp_path / f"m{i}.mrc", m.image, 3.0)
        write_coordinates(tmp_path / f"m{i}.csv", Coordinates(m.coordinates[:, 0], m.coordinates[:, 1]))
        mics.append(str(tmp_path / f"m{i}.mrc"))
        coords.append(str(tmp_path / f"m{i}.csv"))
    write_coordinates(tmp_path / "orphan.csv", Coordinates([5.0], [5.0]))
    rc = main(["pick", "train", "--micrographs", *mics, "--coords", *coords, str(tmp_path / "orphan.csv"),
               "--diameter-px", f"{ms[0].particle_diameter_px:.2f}", "--epochs", "1", "--threads", "1",
               "--mine-negatives", "1", "--out", str(tmp_path / "model.pt"), "--json", str(tmp_path / "t.json"),
               "--device", "cpu"])
    assert rc == 0
    t = json.loads((tmp_path / "t.json").read_text())
    assert t["dropped"] == {"coordinates without a micrograph": 1}
    assert t["hard_negatives_mined"] > 0
    err = capsys.readouterr().err
    assert "'orphan' match no given micrograph" in err and "hard-negative round 1" in err


def test_eval_counts_empty_files_and_rejects_unreadable(tmp_path, capsys):
    write_coordinates(tmp_path / "a.csv", Coordinates([10.0, 50.0], [10.0, 50.0], [0.9, 0.8]))
    (tmp_path / "b.csv").write_text("")
    t = tmp_path / "t"
    t.mkdir()
    write_coordinates(t / "a.csv", Coordinates([10.0], [11.0]))
    (t / "b.csv").write_text("")
    rc = main(["pick", "eval", "--picks", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--truth",
               str(t / "a.csv"), str(t / "b.csv"), "--diameter-px", "20", "--json", str(tmp_path / "e.json")])
    assert rc == 0
    e = json.loads((tmp_path / "e.json").read_text())
    assert e["empty_truth_files"] == 1 and e["empty_pick_files"] == 1 and e["micrographs"] == 2
    assert e["0.5x_radius"]["true_positives"] == 1 and e["0.5x_radius"]["n_picks"] == 2
    err = capsys.readouterr().err
    assert "ground truth for 'b' is empty" in err and "picks for 'b' are empty" in err
    (t / "c.csv").write_bytes(b"garbage\x00\x01")
    rc = main(["pick", "eval", "--picks", str(tmp_path / "a.csv"), "--truth", str(t / "a.csv"), str(t / "c.csv"),
               "--diameter-px", "20"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "c.csv" in err[0]
