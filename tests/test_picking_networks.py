"""Picking networks: fully convolutional score maps equal per-window scores; rotations; saving."""

import numpy as np
import pytest
import torch

from deepqs.io.weights import load_network
from deepqs.picking.model import PickerModel, load_model, save_model
from deepqs.picking.networks import ARCHITECTURES, DeepEMNet, PickNet, build_network
from deepqs.picking.score import score_image


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)          # tiny convolutions: threads only add overhead
    yield
    torch.set_num_threads(n)


def _net(arch, seed=0):
    torch.manual_seed(seed)
    net = build_network(arch).eval()
    if arch == "default":                      # non-trivial BatchNorm statistics
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return net


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("stride", [1, 2, 4])
def test_score_map_equals_per_window(arch, stride):
    net = _net(arch)
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((1, 1, 90, 83)).astype(np.float32))
    with torch.no_grad():
        smap = net.score_map(x, stride)[0, 0]
        box = net.box
        rows = rng.integers(0, smap.shape[0], 12)
        cols = rng.integers(0, smap.shape[1], 12)
        windows = torch.stack([x[0, :, r * stride:r * stride + box, c * stride:c * stride + box]
                               for r, c in zip(rows, cols)])
        per_window = net.probability(net(windows))
    assert smap.shape == ((90 - box) // stride + 1, (83 - box) // stride + 1)
    np.testing.assert_allclose(smap[rows, cols].numpy(), per_window.numpy(), atol=1e-5)


def test_deepem_architecture_as_published():
    net = DeepEMNet()
    convs = [m for m in net.layers if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [6, 12, 12, 1]
    assert all(isinstance(m, torch.nn.Sigmoid) for m in net.layers if not isinstance(m, torch.nn.Conv2d)
               and m.__class__.__name__ != "Pool")
    assert [m.mode for m in net.layers if m.__class__.__name__ == "Pool"] == ["mean"] * 3
    assert net.output == "probability"
    # squared-error loss
    raw = torch.tensor([0.2, 0.9])
    assert float(net.loss(raw, torch.tensor([0.0, 1.0]))) == pytest.approx((0.04 + 0.01) / 2)
    # the paper's KLH geometry builds too (272 px box, kernels 51/21/10, pools 3/2/2)
    DeepEMNet(box=272, kernels=(51, 21, 10), pools=(3, 2, 2))
    with pytest.raises(ValueError):
        DeepEMNet(box=35)


def test_picknet_uses_bce():
    net = PickNet()
    assert net.output == "logit"
    assert float(net.loss(torch.tensor([0.0]), torch.tensor([1.0]))) == pytest.approx(np.log(2), rel=1e-5)
    with pytest.raises(ValueError):
        PickNet(box=40)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_rotation_average_is_rotation_invariant(arch):
    net = _net(arch, seed=3)
    img = np.random.default_rng(2).standard_normal((96, 70)).astype(np.float32)
    a = score_image(net, img, stride=2, rotations=4)
    b = score_image(net, np.ascontiguousarray(np.rot90(img)), stride=2, rotations=4)
    np.testing.assert_allclose(np.rot90(a.scores), b.scores, atol=1e-5)
    # a single rotation is not invariant (the test would be vacuous otherwise)
    a1 = score_image(net, img, stride=2, rotations=1)
    b1 = score_image(net, np.ascontiguousarray(np.rot90(img)), stride=2, rotations=1)
    assert np.abs(np.rot90(a1.scores) - b1.scores).max() > 1e-4


def test_tiling_does_not_change_scores():
    net = _net("default")
    img = np.random.default_rng(4).standard_normal((120, 100)).astype(np.float32)
    whole = score_image(net, img, stride=2, tile=4096)
    tiled = score_image(net, img, stride=2, tile=64)
    np.testing.assert_allclose(whole.scores, tiled.scores, atol=1e-5)
    # the grid covers the whole image: first centre within half a stride of 0, last near the edge
    assert abs(whole.offset) <= 1.0
    assert whole.offset + (whole.scores.shape[1] - 1) * whole.stride >= 100 - 1 - 1.0


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_save_and_load(tmp_path, arch):
    net = _net(arch)
    model = PickerModel(net, 24.0, 2, (0.5, 1.5), 0.37, info={"training_data": "unit test"})
    path = tmp_path / "m.pt"
    save_model(path, model)
    again = load_model(path)
    assert again.net.architecture == arch
    assert again.std_range == (0.5, 1.5) and again.threshold == pytest.approx(0.37)
    assert again.working_diameter_px == 24.0 and again.score_stride_px == 2
    net2, header = load_network(path, ARCHITECTURES)
    assert header["config"] == net.config and header["task"] == "particle_picking"
    x = torch.randn(2, 1, net.box, net.box)
    with torch.no_grad():
        torch.testing.assert_close(net(x), again.net(x))
