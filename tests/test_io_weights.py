"""deepqs.io.weights: state_dict + JSON header, loadable with weights_only=True, unsafe files refused."""

import json
import os
import pickle

import pytest
from helpers import assert_input_error
import torch

from deepqs.errors import InputError
from deepqs.io import load_weights, save_weights

HEADER = {
    "architecture": "deepqs_unet3d",
    "version": "1.0",
    "training_data": "20 simulated maps, 2.5-6 A",
    "input_pixel_size_A": 1.0,
}


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3), torch.nn.BatchNorm3d(4), torch.nn.ReLU(), torch.nn.Conv3d(4, 1, 1))


class _Evil:
    """Unpickling this would create a marker file: it must never run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))




def test_round_trip(tmp_path):
    net = _net()
    path = tmp_path / "w.pt"
    save_weights(path, net.state_dict(), HEADER)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]  # nothing else written
    state, header = load_weights(path, expected_architecture="deepqs_unet3d")
    assert header == HEADER
    assert list(state) == list(net.state_dict())
    for k, v in net.state_dict().items():
        assert torch.equal(state[k], v)
    net2 = _net()
    with torch.no_grad():
        for p in net2.parameters():
            p.zero_()
    net2.load_state_dict(state)
    x = torch.randn(1, 1, 5, 5, 5)
    net.eval(), net2.eval()
    assert torch.equal(net(x), net2(x))
    # plain torch can read it safely, and the layout is as documented
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"header", "state_dict"} and json.loads(raw["header"]) == HEADER


def test_views_are_saved_compactly(tmp_path):
    big = torch.arange(1_000_000, dtype=torch.float32)
    save_weights(tmp_path / "v.pt", {"w": big[10:20]}, HEADER)
    assert os.path.getsize(tmp_path / "v.pt") < 100_000
    state, _ = load_weights(tmp_path / "v.pt")
    assert torch.equal(state["w"], torch.arange(10, 20, dtype=torch.float32))


def test_save_validates(tmp_path):
    with pytest.raises(ValueError, match="architecture"):
        save_weights(tmp_path / "a.pt", {}, {"version": 1})
    with pytest.raises(ValueError, match="not a tensor"):
        save_weights(tmp_path / "b.pt", {"x": [1, 2]}, HEADER)
    with pytest.raises(ValueError, match="JSON"):
        save_weights(tmp_path / "c.pt", {}, dict(HEADER, extra=object()))
    assert list(tmp_path.iterdir()) == []


def test_architecture_mismatch(tmp_path):
    path = tmp_path / "w.pt"
    save_weights(path, _net().state_dict(), HEADER)
    with pytest.raises(InputError) as exc:
        load_weights(path, expected_architecture="deepem_picker")
    assert_input_error(exc, path, "deepqs_unet3d", "deepem_picker")


def test_pickled_objects_are_refused(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"header": json.dumps(HEADER), "state_dict": {"w": _Evil(str(marker))}}, path)
    with pytest.raises(InputError) as exc:
        load_weights(path)
    assert_input_error(exc, path, "pickled python objects", "refusing")
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Evil(str(marker))))
    with pytest.raises(InputError) as exc:
        load_weights(raw)
    assert_input_error(exc, raw, "refusing")
    assert not marker.exists()


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(InputError) as exc:
        load_weights(tmp_path / "nope.pt")
    assert_input_error(exc, "nope.pt", "not found")
    good = tmp_path / "good.pt"
    save_weights(good, _net().state_dict(), HEADER)
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[:300])
    with pytest.raises(InputError) as exc:
        load_weights(trunc)
    assert_input_error(exc, trunc, "not a torch weights file")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(InputError, match="not a torch weights file"):
        load_weights(garbage)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_weights(empty)
    bare = tmp_path / "bare_state_dict.pt"
    torch.save(_net().state_dict(), bare)
    with pytest.raises(InputError) as exc:
        load_weights(bare)
    assert_input_error(exc, bare, "not a deepqs weights file")
    no_arch = tmp_path / "no_arch.pt"
    torch.save({"header": json.dumps({"version": 1}), "state_dict": {}}, no_arch)
    with pytest.raises(InputError, match="architecture"):
        load_weights(no_arch)
    bad_json = tmp_path / "bad_json.pt"
    torch.save({"header": "{not json", "state_dict": {}}, bad_json)
    with pytest.raises(InputError, match="JSON"):
        load_weights(bad_json)


def test_load_network_builds_known_architecture(tmp_path):
    import torch
    from deepqs.io.weights import load_network, save_weights

    def tiny(width=3):
        return torch.nn.Sequential(torch.nn.Linear(2, width), torch.nn.Tanh(), torch.nn.Linear(width, 1))

    torch.manual_seed(0)
    net = tiny(width=5)
    path = tmp_path / "tiny.pt"
    save_weights(path, net.state_dict(), {"architecture": "tiny", "version": 1, "config": {"width": 5}})
    loaded, header = load_network(path, {"tiny": tiny})
    x = torch.tensor([[0.3, -1.2]])
    assert torch.equal(loaded(x), net(x))
    assert header["config"] == {"width": 5} and not loaded.training

    with pytest.raises(InputError, match="unknown architecture 'tiny'"):
        load_network(path, {"other": tiny})
    save_weights(path, net.state_dict(), {"architecture": "tiny", "version": 1, "config": {"width": 4}})
    with pytest.raises(InputError, match="do not fit architecture 'tiny'"):
        load_network(path, {"tiny": tiny})


def test_default_weights_come_from_the_weights_folder_when_it_holds_them(tmp_path, monkeypatch):
    import os

    from deepqs.io.weights import WEIGHTS_DIR_ENV, default_weights_file

    shipped = default_weights_file("picking_default.pt")
    assert shipped.endswith(os.path.join("deepqs", "weights", "picking_default.pt")) and os.path.isfile(shipped)
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
    assert default_weights_file("picking_default.pt") == shipped        # folder without that file
    (tmp_path / "picking_default.pt").write_bytes(b"x")
    assert default_weights_file("picking_default.pt") == str(tmp_path / "picking_default.pt")
