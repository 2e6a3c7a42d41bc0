"""Pruning on real-like sets: prior estimation, the adaptive threshold, test-time augmentation, keeping the
pretrained weights when fine-tuning does not help, and the mask check of the real "bad" boxes."""

import json

import numpy as np
import pytest
import torch

from deepqs.cli import main
from deepqs.pruning.metrics import (binary_report, estimate_good_fraction, expected_f1_threshold,
                                    prior_shifted_threshold)
from deepqs.pruning.model import PruningModel, save_model
from deepqs.pruning.network import build_network
from deepqs.pruning.predict import predict_proba, prune, resolve_threshold
from deepqs.pruning.real import cryoppp_boxes, cryoppp_micrographs, cryoppp_root, mask_fraction
from deepqs.pruning.simulated import LabelledBoxes
from deepqs.pruning.train import TrainConfig, train_classifier


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def calibrated_scores(n: int, good_fraction: float, seed: int):
    """Scores x ~ N(+1, 1) (good) or N(-1, 1) (bad); p = sigmoid(2x) is the exact posterior at prior 0.5."""
    rng = np.random.default_rng(seed)
    good = rng.random(n) < good_fraction
    x = rng.standard_normal(n) + np.where(good, 1.0, -1.0)
    return 1.0 / (1.0 + np.exp(-2.0 * x)), good


def test_prior_estimate_and_shift():
    for frac in (0.5, 0.9, 0.2):
        p, good = calibrated_scores(20000, frac, 1)
        assert estimate_good_fraction(p) == pytest.approx(good.mean(), abs=0.02)
    assert prior_shifted_threshold(0.5, 0.5) == pytest.approx(0.5)
    assert prior_shifted_threshold(0.5, 0.9) == pytest.approx(0.1)       # odds 1 -> 1/9
    assert prior_shifted_threshold(0.5, 0.2) == pytest.approx(0.8)
    assert estimate_good_fraction(np.zeros(0)) == 0.5


def test_adaptive_threshold_follows_the_share_of_particles():
    p, good = calibrated_scores(20000, 0.5, 2)
    assert expected_f1_threshold(p) == pytest.approx(0.5, abs=0.08)
    p, good = calibrated_scores(20000, 0.93, 3)                        # mostly particles, as in the real test set
    t = expected_f1_threshold(p)
    assert 0.05 < t < 0.4
    at_t, at_half = binary_report(p, good, t), binary_report(p, good, 0.5)
    assert at_t["macro_f1"] > at_half["macro_f1"] + 0.01 and at_t["accuracy"] > at_half["accuracy"]
    assert at_t["f1_good"] > at_t["f1_bad"] and 0 < at_t["f1_bad"] < 1
    net = build_network({"box_size": 32, "widths": [4, 8], "n_classes": 3}, seed=0)
    model = PruningModel(net, threshold=0.42, threshold_rule="test")
    assert resolve_threshold(model, "balanced") == pytest.approx(0.42)
    assert resolve_threshold(model, "adaptive", p) == pytest.approx(t)
    pred = prune(model, np.random.default_rng(0).standard_normal((7, 32, 32)).astype(np.float32), "adaptive")
    assert np.array_equal(pred.kept, pred.p_particle >= pred.threshold) and 0 <= pred.threshold <= 1


def test_tta_is_the_mean_over_the_eight_symmetries():
    net = build_network({"box_size": 32, "widths": [4, 8], "n_classes": 3}, seed=3)
    model = PruningModel(net, threshold=0.5, threshold_rule="test")
    boxes = np.random.default_rng(1).standard_normal((5, 32, 32)).astype(np.float32)
    views = [np.rot90(boxes, k, axes=(1, 2)) for k in range(4)]
    views += [np.rot90(boxes[:, :, ::-1], k, axes=(1, 2)) for k in range(4)]
    manual = np.mean([predict_proba(model, np.ascontiguousarray(v)) for v in views], axis=0)
    tta = predict_proba(model, boxes, tta=True)
    assert np.allclose(tta, manual, atol=1e-5)
    turned = predict_proba(model, np.ascontiguousarray(np.rot90(boxes, 1, axes=(1, 2))), tta=True)
    assert np.allclose(turned, tta, atol=1e-5)                        # invariant to the symmetries
    assert not np.allclose(predict_proba(model, boxes), tta, atol=1e-4)


def _dots(n_per_class: int, seed: int) -> LabelledBoxes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] - 15.5
    out = [rng.standard_normal((32, 32)).astype(np.float32) * 0.5 - 2.0 * (c == 0) * (xx ** 2 + yy ** 2 < 36)
           for c in (0, 1) for _ in range(n_per_class)]
    return LabelledBoxes(np.stack(out).astype(np.float32), np.repeat([0, 1], n_per_class).astype(np.int64),
                         np.arange(2 * n_per_class) % 3)


def test_fine_tuning_keeps_the_pretrained_model_when_it_does_not_help():
    tiny = {"box_size": 32, "widths": [4, 8], "n_classes": 3}
    base = train_classifier(_dots(30, 0), TrainConfig(epochs=3, lr=3e-3, samples_per_epoch=256, batch_size=64,
                                                      network=tiny, seed=0))
    base.model.threshold = 0.37
    cfg = TrainConfig(epochs=2, lr=1e-9, freeze_epochs=2, samples_per_epoch=64, batch_size=32, network=tiny, seed=1,
                      min_val_per_class=0)
    ft = train_classifier(_dots(10, 1), cfg, init=base.model)           # a learning rate too small to matter
    assert ft.best_epoch == 0 and ft.validation["best_epoch"] == 0
    assert all(torch.equal(a, b) for a, b in zip(ft.model.net.state_dict().values(),
                                                 base.model.net.state_dict().values()))
    assert ft.model.threshold == pytest.approx(0.37) and "pretrained" in ft.model.threshold_rule
    off = train_classifier(_dots(10, 1), TrainConfig(**{**cfg.__dict__, "keep_init": False}), init=base.model)
    assert off.best_epoch >= 1 and off.model.threshold == pytest.approx(0.37)   # too few boxes to choose one


def test_mask_fraction():
    mask = np.zeros((100, 100), bool)
    mask[40:60, 40:60] = True
    f = mask_fraction(mask, np.array([[50.0, 50.0], [10.0, 10.0], [60.0, 60.0], [0.0, 0.0]]), 20)
    assert f == pytest.approx([1.0, 0.0, 0.25, 0.0])
    assert mask_fraction(mask, np.array([[45.0, 50.0]]), 10) == pytest.approx([1.0])


@pytest.mark.skipif(cryoppp_root() is None, reason="shared/data not present")
def test_real_bad_boxes_hold_no_annotated_particle():
    strict = cryoppp_boxes(datasets=("10947", "10028"), splits=("valid",), seed=3)
    old = cryoppp_boxes(datasets=("10947", "10028"), splits=("valid",), seed=3, max_mask_fraction=None)
    assert strict.counts()[0] == old.counts()[0] == 303 + 87            # the annotated particles (README)
    assert [int(np.sum((old.group == g) & (old.labels == 1))) for g in (0, 1)] == [55, 60]   # > 1 diameter only
    per_mic = [int(np.sum((strict.group == g) & (strict.labels == 1))) for g in (0, 1)]
    assert per_mic == [0, 60]           # dense 10947: no empty place at all; sparse 10028: plenty
    assert strict.boxes.shape[1:] == (64, 64) and np.unique(strict.group).size == 2
    mics = cryoppp_micrographs(datasets=("10947", "10028"), splits=("valid",))     # group g = micrograph g
    assert [m[0] for m in mics] == ["10947", "10028"] and all(m[1] == "valid" for m in mics)


def test_cli_run_tta_and_adaptive(tmp_path, capsys):
    from deepqs.io import write_stack

    net = build_network({"box_size": 64, "widths": [4, 8], "n_classes": 3}, seed=0)
    model = tmp_path / "tiny.pt"
    save_model(model, PruningModel(net, threshold=0.3, threshold_rule="test"))
    stack = np.random.default_rng(0).standard_normal((9, 40, 40)).astype(np.float32)
    write_stack(tmp_path / "p.mrcs", stack, 2.0)
    capsys.readouterr()
    rc = main(["prune", "run", "--model", str(model), "--particles", str(tmp_path / "p.mrcs"), "--out-dir",
               str(tmp_path / "o"), "--threshold", "adaptive", "--tta", "--threads", "1", "--json"])
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    assert s["tta"] is True and s["threshold_rule"].startswith("adaptive") and s["n_items"] == 9
    import csv
    with open(tmp_path / "o" / "scores.csv", newline="") as fh:
        p = np.array([float(r["p_particle"]) for r in csv.DictReader(fh)])
    assert s["threshold"] == pytest.approx(expected_f1_threshold(p), abs=1e-3)
    assert s["n_kept"] == int(np.sum(p >= s["threshold"] - 1e-6))
