"""Pruning network, normalisation, losses, metrics and the weights file."""

import math

import numpy as np
import pytest
import torch

from deepqs.errors import InputError
from deepqs.pruning.losses import LossWeights, focal_loss, multi_loss, supcon_loss
from deepqs.pruning.metrics import balanced_threshold, binary_report, macro_f1
from deepqs.pruning.model import PruningModel, load_model, save_model
from deepqs.pruning.network import CLASSES, PruneNet, build_network, normalise_boxes


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_shapes_and_classes():
    net = build_network(seed=0).eval()
    x = normalise_boxes(np.random.default_rng(0).standard_normal((5, 64, 64)))
    assert x.shape == (5, 1, 64, 64)
    logits, emb = net.forward_with_embedding(x)
    assert logits.shape == (5, 3) and emb.shape == (5, net.embedding_dim) == (5, 64)
    assert CLASSES == ("particle", "ice", "carbon")
    small = PruneNet(box_size=32, widths=(4, 8), n_classes=3).eval()
    assert small(torch.zeros(2, 1, 32, 32)).shape == (2, 3)
    with pytest.raises(ValueError):
        PruneNet(box_size=8)


def test_normalisation_and_invariance():
    rng = np.random.default_rng(1)
    boxes = rng.standard_normal((4, 64, 64)).astype(np.float32) * 3 + 7
    x = normalise_boxes(boxes)
    assert np.allclose(x.mean(dim=(1, 2, 3)).numpy(), 0, atol=1e-5)
    assert np.allclose(x.std(dim=(1, 2, 3), unbiased=False).numpy(), 1, atol=1e-3)
    assert float(normalise_boxes(np.ones((1, 8, 8))).abs().max()) == 0.0          # constant box -> zeros
    net = build_network(seed=2).eval()
    with torch.no_grad():
        a = torch.softmax(net(normalise_boxes(boxes)), 1)
        b = torch.softmax(net(normalise_boxes(boxes * 250.0 - 1000.0)), 1)
    assert torch.allclose(a, b, atol=1e-4)


def test_build_is_deterministic():
    a, b = build_network(seed=3), build_network(seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_focal_and_supcon_values():
    logits = torch.zeros(1, 3)
    t = torch.tensor([0])
    assert focal_loss(logits, t, 2.0).item() == pytest.approx((2 / 3) ** 2 * math.log(3), rel=1e-5)
    assert focal_loss(logits, t, 0.0).item() == pytest.approx(math.log(3), rel=1e-5)   # γ = 0 is cross-entropy
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    y = torch.tensor([0, 0, 1, 1])
    # positive similarity 1, negatives 0 (τ = 1): -log(e / (e + 2))
    assert supcon_loss(emb, y, 1.0).item() == pytest.approx(-math.log(math.e / (math.e + 2)), rel=1e-5)
    assert supcon_loss(emb, torch.tensor([0, 1, 2, 0]) * 0 + torch.arange(4), 1.0).item() == 0.0  # no positives
    total, parts = multi_loss(torch.zeros(4, 3), emb, y, LossWeights(1.0, 1.0, 0.5, temperature=1.0))
    expect = math.log(3) + (2 / 3) ** 2 * math.log(3) + 0.5 * (-math.log(math.e / (math.e + 2)))
    assert total.item() == pytest.approx(expect, rel=1e-5)
    assert set(parts) == {"ce", "focal", "supcon"}
    _, parts = multi_loss(torch.zeros(4, 3), emb, y, LossWeights(1.0, 0.0, 0.0))
    assert set(parts) == {"ce"}


def test_metrics():
    p = np.array([0.1, 0.2, 0.35, 0.6, 0.7, 0.9])
    good = np.array([0, 0, 1, 0, 1, 1], bool)
    t = balanced_threshold(p, good)
    assert t == pytest.approx(0.275)              # keeps 0.35, 0.6, 0.7, 0.9: recall 1, rejection 2/3
    rep = binary_report(p, good, t)
    assert rep["balanced_accuracy"] == pytest.approx((1 + 2 / 3) / 2)
    assert macro_f1(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2) == pytest.approx((2 / 3 + 0.8) / 2)


def test_save_load_round_trip(tmp_path):
    net = build_network({"box_size": 32, "widths": [4, 8], "n_classes": 3}, seed=0).eval()
    m = PruningModel(net, threshold=0.37, threshold_rule="test", info={"training_data": "unit test"})
    path = tmp_path / "m.pt"
    save_model(path, m)
    back = load_model(path)
    assert back.threshold == pytest.approx(0.37) and back.box_size == 32 and back.net.widths == [4, 8]
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(x), back.net(x))
    raw = torch.load(path, weights_only=True)
    assert '"task": "particle_pruning"' in raw["header"] and '"input_box_size": 32' in raw["header"]
    from deepqs.io.weights import save_weights

    save_weights(tmp_path / "other.pt", net.state_dict(), {"architecture": "deepqs_prune_resnet", "version": 1,
                                                           "config": net.config, "task": "picking"})
    with pytest.raises(InputError, match="not a particle-pruning model"):
        load_model(tmp_path / "other.pt")


def test_fused_network_gives_the_same_outputs():
    net = build_network(seed=4)
    net.train()
    with torch.no_grad():                                   # give BatchNorm non-trivial statistics
        for _ in range(3):
            net(torch.randn(16, 1, 64, 64) * 2 + 1)
    net.eval()
    x = normalise_boxes(np.random.default_rng(5).standard_normal((6, 64, 64)))
    with torch.no_grad():
        assert torch.allclose(net(x), net.fused()(x), atol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.fused().modules())
