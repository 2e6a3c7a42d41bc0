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


def test_few_label_recipe_is_automatic_for_small_scratch_training(sims):
    from deepqs.picking.train import FEW_LABEL_RECIPE, few_label_config, uses_few_label_recipe

    _, ex = sims
    cfg = TrainConfig(epochs=1, seed=0, max_windows_per_epoch=256)
    assert uses_few_label_recipe(cfg, 999) and not uses_few_label_recipe(cfg, 1000)
    assert not uses_few_label_recipe(TrainConfig(few_labels=False), 10)
    full = few_label_config(cfg)
    assert full.few_labels and all(getattr(full, k) == v for k, v in FEW_LABEL_RECIPE.items())
    res = train_picker(ex[:2], cfg)                          # 60 labels, from scratch: recipe on
    assert res.few_label_recipe and res.model.info["few_label_recipe"]
    again = train_picker(ex[:2], cfg, init=res.model)        # retraining a model: off unless asked
    assert not again.few_label_recipe
    off = train_picker(ex[:2], TrainConfig(epochs=1, seed=0, max_windows_per_epoch=256, few_labels=False))
    assert not off.few_label_recipe and not off.model.info["few_label_recipe"]


def test_full_augmentation_geometry():
    from deepqs.picking.train import _augment_full, _augment_margin

    cfg = TrainConfig(augment="full", scale_jitter=0.05, contrast_jitter=0.2)
    m = _augment_margin(36, cfg)
    assert m >= 8                                            # a 45° turn of a 36 px window needs 7.5 px more
    x = torch.randn(5, 1, 36 + 2 * m, 36 + 2 * m)
    out = _augment_full(x, 36, cfg, np.random.default_rng(0))
    assert out.shape == (5, 1, 36, 36) and torch.isfinite(out).all()

    class NoTurn:                                            # angle 0, no mirror, scale and contrast 1
        def uniform(self, a, b, n):
            return np.zeros(n) if a == 0.0 else np.ones(n)

        def random(self, n):
            return np.ones(n)

    plain = _augment_full(x, 36, TrainConfig(augment="full"), NoTurn())
    torch.testing.assert_close(plain, x[:, :, m:m + 36, m:m + 36], atol=1e-4, rtol=0)
