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


def test_freeze_layers_keeps_early_weights_and_bn_statistics(sims):
    from deepqs.picking.train import freeze_layers

    _, ex = sims
    first = train_picker(ex[:2], TrainConfig(epochs=1, seed=0, max_windows_per_epoch=256)).model
    before = {k: v.clone() for k, v in first.net.state_dict().items()}
    cfg = TrainConfig(epochs=2, seed=1, lr=1e-2, max_windows_per_epoch=256, freeze_convs=2, freeze_bn_stats=True)
    after = train_picker(ex[:2], cfg, init=first).model.net.state_dict()
    convs = [i for i, m in enumerate(first.net.layers) if isinstance(m, torch.nn.Conv2d)]
    frozen_prefix = [f"layers.{i}." for i in range(convs[2])]           # conv1, bn1, relu, conv2, bn2, relu
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert not any(k.startswith(tuple(frozen_prefix)) for k in changed), changed
    assert not any("running_" in k for k in changed), changed             # BatchNorm statistics fixed
    assert any(k.startswith(f"layers.{convs[-1]}.") for k in changed)     # the output layer did learn
    assert all(p.requires_grad for p in first.net.parameters())           # unfrozen again afterwards
    # the output layer is never frozen, even when more convolutions are asked for
    net = train_picker(ex[:2], TrainConfig(epochs=1, seed=0, max_windows_per_epoch=64)).model.net
    n_conv = len(convs)
    frozen = freeze_layers(net, 99)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in frozen) == n_conv - 1


def test_finetune_keeps_the_better_model_on_held_out_micrographs(sims):
    from deepqs.picking.train import finetune_picker

    ms, ex = sims
    base = train_picker(ex[:2], TrainConfig(epochs=3, seed=0, max_windows_per_epoch=512)).model
    ref = {k: v.clone() for k, v in base.net.state_dict().items()}
    cfg = TrainConfig(epochs=2, seed=0, lr=1e-4, max_windows_per_epoch=256, freeze_convs=4, freeze_bn_stats=True,
                      select_by="ap", score_stride_px=base.score_stride_px)
    res = finetune_picker(ex, base, cfg, keep_init=True)
    for k, v in base.net.state_dict().items():          # the initial model is not modified
        torch.testing.assert_close(v, ref[k])
    assert res.n_heldout_micrographs == 1
    assert set(res.heldout_f2) == {"fine-tuned", "initial"}
    assert res.kept == ("initial" if res.heldout_f2["initial"] >= res.heldout_f2["fine-tuned"] else "fine-tuned")
    assert res.model.info["finetune_kept"] == res.kept
    assert 0.0 < res.model.threshold < 1.0
    assert res.model.info["threshold_source"].startswith("all labelled micrographs")
    if res.kept == "initial":
        for k, v in res.model.net.state_dict().items():
            torch.testing.assert_close(v, ref[k])
    # without keep_init the fine-tuned weights always come back
    res2 = finetune_picker(ex, base, cfg, keep_init=False)
    assert res2.kept == "fine-tuned" and res2.model.info["finetune_kept"] == "fine-tuned"
