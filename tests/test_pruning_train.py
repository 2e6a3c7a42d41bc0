"""Training: a tiny run learns a trivially separable set; fine-tuning; augmentation; determinism."""

import numpy as np
import pytest
import torch

from deepqs.pruning.model import PruningModel
from deepqs.pruning.predict import predict_proba, prune
from deepqs.pruning.simulated import LabelledBoxes
from deepqs.pruning.train import TrainConfig, augment, split_validation, train_classifier

TINY = {"box_size": 32, "widths": [6, 12], "n_classes": 3}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def separable(n_per_class: int, seed: int) -> LabelledBoxes:
    """Class 0: dark central disc; 1: bright disc at a random place; 2: a dark half plane (an edge)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] - 15.5
    out, labels = [], []
    for c in range(3):
        for _ in range(n_per_class):
            img = rng.standard_normal((32, 32)).astype(np.float32) * 0.5
            if c == 0:
                img -= 2.0 * (xx ** 2 + yy ** 2 < 36)
            elif c == 1:
                cx, cy = rng.uniform(-10, 10, 2)
                img += 2.0 * ((xx - cx) ** 2 + (yy - cy) ** 2 < 25)
            else:
                a = rng.uniform(0, 2 * np.pi)
                img -= 2.0 * (np.cos(a) * xx + np.sin(a) * yy > rng.uniform(-4, 4))
            out.append(img)
            labels.append(c)
    return LabelledBoxes(np.stack(out), np.array(labels, np.int64), np.arange(3 * n_per_class) % 7)


def test_augment_is_a_symmetry_of_the_square():
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(64, 1, 1, 1)
    y = augment(x, np.random.default_rng(0))
    assert torch.equal(y.sort(dim=-1)[0].sum(), x.sort(dim=-1)[0].sum())
    variants = {tuple(v.flatten().tolist()) for v in y}
    assert len(variants) == 8                                      # 4 rotations x 2 flips
    assert all(sorted(v) == list(range(16)) for v in variants)


def test_split_by_group_keeps_micrographs_apart():
    data = separable(20, 0)
    tr, va = split_validation(data, 0.3, np.random.default_rng(0))
    assert len(tr) + len(va) == len(data)
    assert not set(data.group[tr]) & set(data.group[va])


def test_tiny_training_learns_and_is_deterministic():
    data = separable(40, 1)
    cfg = TrainConfig(epochs=5, batch_size=64, lr=3e-3, samples_per_epoch=384, seed=0, network=TINY, patience=10)
    res = train_classifier(data, cfg)
    test = separable(30, 2)
    proba = predict_proba(res.model, test.boxes)
    assert np.allclose(proba.sum(1), 1.0, atol=1e-5)
    acc = float(np.mean(proba.argmax(1) == test.labels))
    assert acc >= 0.95, acc
    assert res.validation["accuracy"] >= 0.9 and len(res.history) >= 1
    again = train_classifier(data, cfg)
    assert [h["train_loss"] for h in again.history] == [h["train_loss"] for h in res.history]
    # fine-tune on 10 labels per class with a frozen-then-unfrozen schedule
    few = separable(10, 3)
    ft = train_classifier(few, TrainConfig(epochs=3, freeze_epochs=2, backbone_lr_factor=0.3, samples_per_epoch=192,
                                           batch_size=64, seed=1, network=TINY, min_val_per_class=0), init=res.model)
    assert ft.history[0]["frozen_backbone"] and ft.history[1]["frozen_backbone"]
    assert not ft.history[2]["frozen_backbone"]
    # too few validation boxes for a tuned threshold: the pretrained one
    assert ft.model.threshold == res.model.threshold and ft.skipped is None
    pred = prune(ft.model, test.boxes, threshold=0.5)
    good = test.labels == 0
    assert np.mean(pred.kept == good) >= 0.9


def test_frozen_backbone_does_not_change():
    data = separable(10, 4)
    base = train_classifier(data, TrainConfig(epochs=1, samples_per_epoch=128, network=TINY, seed=0))
    before = {k: v.clone() for k, v in base.model.net.state_dict().items()}
    ft = train_classifier(data, TrainConfig(epochs=1, freeze_epochs=1, samples_per_epoch=128, network=TINY, seed=0,
                                            val_fraction=0.0), init=base.model)
    after = ft.model.net.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all(k.startswith("head.") for k in changed)
    assert isinstance(ft.model, PruningModel)


def test_workers_do_not_change_the_result():
    data = separable(8, 5)
    cfg = TrainConfig(epochs=1, samples_per_epoch=96, batch_size=32, network=TINY, seed=3, val_fraction=0.0)
    a = train_classifier(data, cfg)
    b = train_classifier(data, TrainConfig(**{**cfg.__dict__, "num_workers": 1}))
    assert all(torch.equal(x, y) for x, y in zip(a.model.net.state_dict().values(), b.model.net.state_dict().values()))


def test_too_few_validation_boxes_keep_the_pretrained_model():
    data = separable(40, 2)
    base = train_classifier(data, TrainConfig(epochs=1, samples_per_epoch=128, network=TINY, seed=0))
    base.model.threshold = 0.41
    logs = []
    def per_class_files(d):                                  # as 'deepqs prune train' gives it: a group per class
        return LabelledBoxes(d.boxes, d.labels, d.labels.copy())

    few = per_class_files(separable(10, 6))                  # 2 validation boxes per class at val_fraction 0.2
    ft = train_classifier(few, TrainConfig(epochs=2, freeze_epochs=1, samples_per_epoch=64, network=TINY, seed=0),
                          init=base.model, log=logs.append)
    assert ft.skipped and "too few" in ft.skipped and ft.history == [] and ft.best_epoch == 0
    assert any("too few" in line for line in logs)
    assert all(torch.equal(a, b) for a, b in zip(ft.model.net.state_dict().values(),
                                                 base.model.net.state_dict().values()))
    assert ft.model.threshold == 0.41 and ft.model.info["training"]["skipped"] == ft.skipped
    assert ft.n_val == len(few) - ft.n_train and 0 < ft.n_val and 0 <= ft.validation["accuracy"] <= 1
    # enough validation boxes (10 per class): fine-tuning runs
    more = per_class_files(separable(50, 7))
    ok = train_classifier(more, TrainConfig(epochs=1, freeze_epochs=1, samples_per_epoch=64, network=TINY, seed=0),
                          init=base.model)
    assert ok.skipped is None and len(ok.history) == 1
