"""Train tiny pickers on small simulated micrographs; picks land on particles better than chance."""

import numpy as np
import pytest
import torch

from deepqs.picking.evaluate import evaluate
from deepqs.picking.model import load_model
from deepqs.picking.pick import pick_prepared
from deepqs.picking.preprocess import prepare_array
from deepqs.picking.train import TrainConfig, TrainingExample, train_picker
from deepqs.simulate.micrographs import simulate_micrographs


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def sims():
    ms = simulate_micrographs(4, (384, 384), pixel_size=3.0, n_particles=30, seed=1, snr=0.3)
    ex = [TrainingExample(prepare_array(m.image, m.particle_diameter_px), m.coordinates) for m in ms]
    return ms, ex


def _chance_precision(m, radius):
    """Share of the micrograph within ``radius`` of a true particle (what random picks would hit)."""
    ny, nx = m.image.shape
    yy, xx = np.mgrid[0:ny:2, 0:nx:2]
    pts = np.stack([xx.ravel(), yy.ravel()], 1)
    from scipy.spatial import cKDTree

    d, _ = cKDTree(m.coordinates).query(pts)
    return float((d <= radius).mean())


@pytest.mark.parametrize("arch,epochs,lr", [("default", 6, 1e-3), ("deepem", 8, 1e-2)])
def test_train_and_pick_better_than_chance(sims, arch, epochs, lr):
    ms, ex = sims
    res = train_picker(ex[:3], TrainConfig(arch=arch, epochs=epochs, lr=lr, seed=0, patience=10))
    assert res.model.std_range is not None and 0.0 < res.model.threshold < 1.0
    assert res.threshold_source == "validation micrographs"
    m = ms[3]
    picks = pick_prepared(res.model, ex[3].prepared, threshold="auto")
    radius = 0.5 * m.particle_diameter_px / 2
    ev = evaluate(np.stack([picks.x, picks.y], 1), m.coordinates, radius, picks.score)
    chance = _chance_precision(m, radius)
    assert len(picks) > 5
    assert ev.precision > max(0.4, 4 * chance), (ev, chance)
    assert ev.recall > 0.3, ev


def test_deterministic_and_resume(sims, tmp_path):
    _, ex = sims
    cfg = TrainConfig(epochs=2, seed=5, max_windows_per_epoch=256)
    a = train_picker(ex[:2], cfg).model.net.state_dict()
    b = train_picker(ex[:2], cfg).model.net.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    ck = tmp_path / "ck.pt"
    train_picker(ex[:2], TrainConfig(epochs=1, seed=5, max_windows_per_epoch=256), checkpoint=str(ck))
    assert load_model(ck).info["epoch"] == 1
    res = train_picker(ex[:2], TrainConfig(epochs=2, seed=5, max_windows_per_epoch=256), checkpoint=str(ck))
    assert [h["epoch"] for h in res.history] == [1, 2]


def test_retrain_with_verified_negatives(sims):
    _, ex = sims
    first = train_picker(ex[:2], TrainConfig(epochs=1, seed=0, max_windows_per_epoch=256)).model
    picks = pick_prepared(first, ex[2].prepared, threshold=None)
    truth = ex[2].positives
    from scipy.spatial import cKDTree

    d, _ = cKDTree(truth).query(np.stack([picks.x, picks.y], 1))
    fp = np.stack([picks.x, picks.y], 1)[d > 0.5 * ex[2].prepared.diameter_px]
    assert len(fp) > 0
    again = train_picker([TrainingExample(ex[2].prepared, truth, fp)],
                         TrainConfig(epochs=1, seed=0, max_windows_per_epoch=256), init=first)
    assert again.model.working_diameter_px == first.working_diameter_px
    assert again.epochs_run == 1
