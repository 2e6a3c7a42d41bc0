"""``deepqs pick train|run|eval`` end to end on tiny simulated micrographs, and bad input."""

import json

import numpy as np
import pytest
import torch

from deepqs.cli import main
from deepqs.io import Coordinates, read_coordinates, write_coordinates, write_micrograph
from deepqs.simulate.micrographs import simulate_micrographs


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("pickcli")
    ms = simulate_micrographs(4, (320, 320), pixel_size=3.0, n_particles=24, seed=2, snr=0.3)
    mics, coords = [], []
    for i, m in enumerate(ms):
        write_micrograph(d / f"mic{i}.mrc", m.image, 3.0)
        write_coordinates(d / f"mic{i}.csv", Coordinates(m.coordinates[:, 0], m.coordinates[:, 1]))
        mics.append(str(d / f"mic{i}.mrc"))
        coords.append(str(d / f"mic{i}.csv"))
    model = d / "model.pt"
    rc = main(["pick", "train", "--micrographs", *mics[:3], "--coords", *coords[:3], "--diameter-px",
               f"{ms[0].particle_diameter_px:.2f}", "--epochs", "4", "--threads", "1", "--out", str(model),
               "--device", "cpu"])
    assert rc == 0
    return d, ms, mics, coords, model


def test_run_and_eval(data, capsys):
    d, ms, mics, coords, model = data
    out = d / "picks"
    capsys.readouterr()
    rc = main(["pick", "run", "--model", str(model), "--micrographs", mics[3], "--diameter", "78",
               "--out-dir", str(out), "--threads", "1", "--json", "--device", "cpu"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["micrographs"] == 1 and summary["micrographs_dropped"] == 0
    assert summary["picked"] > 0
    text = (out / "mic3.csv").read_text().splitlines()
    assert text[0] == "x,y,score"
    picks = read_coordinates(out / "mic3.csv")
    assert len(picks) == summary["picked"] and picks.score is not None
    assert (picks.x >= 0).all() and (picks.x < 320).all()
    rc = main(["pick", "eval", "--picks", str(out / "mic3.csv"), "--truth", coords[3], "--diameter-px", "26",
               "--json", str(d / "eval.json"), "--pr-curve", str(d / "pr.png")])
    assert rc == 0
    ev = json.loads((d / "eval.json").read_text())
    assert set(ev) >= {"0.5x_radius", "1x_radius", "pr_curve"}
    assert ev["1x_radius"]["f1"] >= ev["0.5x_radius"]["f1"]
    assert ev["0.5x_radius"]["precision"] > 0.3
    assert (d / "pr.png").stat().st_size > 1000


@pytest.mark.parametrize("fmt", ["box", "star"])
def test_run_formats(data, fmt):
    d, ms, mics, coords, model = data
    out = d / f"picks_{fmt}"
    rc = main(["pick", "run", "--model", str(model), "--micrographs", mics[3], "--diameter-px", "26",
               "--out-dir", str(out), "--format", fmt, "--threshold", "0.3", "--threads", "1", "--device", "cpu"])
    assert rc == 0
    c = read_coordinates(out / f"mic3.{fmt}")
    ref = read_coordinates(d / "picks" / "mic3.csv") if (d / "picks").exists() else None
    assert len(c) > 0 and c.score is not None and (c.score >= 0.3).all()
    if ref is not None and fmt == "box":   # corners converted back to the same centres
        common = min(len(ref), len(c))
        assert common == 0 or np.isin(np.round(c.x, 2), np.round(ref.x, 2)).any()


def test_bad_inputs(data, tmp_path, capsys):
    d, ms, mics, coords, model = data
    # different pixel sizes in one run
    write_micrograph(tmp_path / "other.mrc", ms[0].image, 1.5)
    rc = main(["pick", "run", "--model", str(model), "--micrographs", mics[0], str(tmp_path / "other.mrc"),
               "--diameter", "78", "--out-dir", str(tmp_path / "o"), "--device", "cpu"])
    assert rc == 2
    assert "different pixel sizes" in capsys.readouterr().err
    # an unreadable micrograph is skipped and counted
    (tmp_path / "broken.mrc").write_bytes(b"garbage" * 10)
    rc = main(["pick", "run", "--model", str(model), "--micrographs", mics[0], str(tmp_path / "broken.mrc"),
               "--diameter-px", "26", "--out-dir", str(tmp_path / "o2"), "--json", str(tmp_path / "s.json"),
               "--threads", "1", "--device", "cpu"])
    assert rc == 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["micrographs_dropped"] == 1 and s["dropped"]["unreadable micrograph"] == [str(tmp_path / "broken.mrc")]
    assert "skipping micrograph" in capsys.readouterr().err
    # coordinates outside the micrograph and empty coordinate files are counted
    write_coordinates(tmp_path / "mic0.csv", Coordinates([10.0, 100.0, 5000.0], [10.0, 100.0, 20.0]))
    (tmp_path / "mic1.csv").write_text("")
    rc = main(["pick", "train", "--micrographs", mics[0], mics[1], "--coords", str(tmp_path / "mic0.csv"),
               str(tmp_path / "mic1.csv"), "--diameter-px", "26", "--epochs", "1", "--threads", "1",
               "--out", str(tmp_path / "m.pt"), "--json", str(tmp_path / "t.json"), "--device", "cpu"])
    assert rc == 0
    t = json.loads((tmp_path / "t.json").read_text())
    assert t["coordinates_outside_dropped"] == 1
    assert t["dropped"] == {"empty coordinate file": 1}
    assert t["few_label_recipe"] is True              # from scratch on < 1000 labels: the few-label recipe
    err = capsys.readouterr().err
    assert "outside" in err and "empty" in err
    # missing shipped model / bad model file / bad threshold
    import deepqs.picking as picking

    old = picking.DEFAULT_MODEL
    picking.DEFAULT_MODEL = str(tmp_path / "absent.pt")
    try:
        rc = main(["pick", "run", "--micrographs", mics[0], "--diameter-px", "26", "--out-dir", str(tmp_path / "o3")])
    finally:
        picking.DEFAULT_MODEL = old
    assert rc == 2 and "shipped general picking model" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_text("nope")
    rc = main(["pick", "run", "--model", str(tmp_path / "bad.pt"), "--micrographs", mics[0], "--diameter-px", "26",
               "--out-dir", str(tmp_path / "o4")])
    assert rc == 2
    rc = main(["pick", "run", "--model", str(model), "--micrographs", mics[0], "--diameter", "78",
               "--pixel-size", "3", "--out-dir", str(tmp_path / "o5"), "--threshold", "7", "--device", "cpu"])
    assert rc == 2 and "between 0 and 1" in capsys.readouterr().err
    # no usable training data at all
    rc = main(["pick", "train", "--micrographs", mics[1], "--coords", str(tmp_path / "mic1.csv"),
               "--diameter-px", "26", "--out", str(tmp_path / "m2.pt"), "--device", "cpu"])
    assert rc == 2 and "no usable micrograph" in capsys.readouterr().err


def test_png_micrographs_without_pixel_size(data, tmp_path, capsys):
    from PIL import Image

    d, ms, mics, coords, model = data
    img = ms[3].image
    u8 = np.clip((img - img.mean()) / img.std() * 40 + 128, 0, 255).astype(np.uint8)
    Image.fromarray(u8).save(tmp_path / "mic3.png")
    rc = main(["pick", "run", "--model", str(model), "--micrographs", str(tmp_path / "mic3.png"), "--diameter", "78",
               "--out-dir", str(tmp_path / "o"), "--device", "cpu"])
    assert rc == 2 and "no pixel size" in capsys.readouterr().err
    rc = main(["pick", "run", "--model", str(model), "--micrographs", str(tmp_path / "mic3.png"), "--diameter-px", "26",
               "--out-dir", str(tmp_path / "o"), "--threads", "1", "--device", "cpu"])
    assert rc == 0 and len(read_coordinates(tmp_path / "o" / "mic3.csv")) > 0
    assert "8-bit" not in capsys.readouterr().err          # a model of the user's own: no note


def test_shipped_model_on_8bit_images_says_to_retrain(data, tmp_path, capsys):
    import json
    import os

    import deepqs.picking as picking
    from PIL import Image

    if not os.path.exists(picking.DEFAULT_MODEL):
        pytest.skip("no shipped picking model in this checkout")
    d, ms, mics, coords, model = data
    img = ms[3].image
    Image.fromarray(np.clip((img - img.mean()) / img.std() * 40 + 128, 0, 255).astype(np.uint8)).save(tmp_path / "m.png")
    rc = main(["pick", "run", "--micrographs", str(tmp_path / "m.png"), "--diameter-px", "26", "--out-dir",
               str(tmp_path / "o"), "--threads", "1", "--device", "cpu", "--json", str(tmp_path / "s.json")])
    assert rc == 0
    assert "deepqs pick train --init" in capsys.readouterr().err
    notes = json.load(open(tmp_path / "s.json"))["notes"]
    assert len(notes) == 1 and "8-bit" in notes[0]


def test_shipped_model_is_used_by_default(data, tmp_path):
    import os

    import deepqs.picking as picking
    from deepqs.picking.model import load_model

    if not os.path.exists(picking.DEFAULT_MODEL):
        pytest.skip("no shipped picking model in this checkout")
    model = load_model(picking.DEFAULT_MODEL)
    assert os.path.getsize(picking.DEFAULT_MODEL) <= 20 * 1024 * 1024
    assert model.std_range is not None and 0 < model.threshold < 1
    d, ms, mics, coords, _ = data
    rc = main(["pick", "run", "--micrographs", mics[3], "--diameter-px", "26", "--out-dir", str(tmp_path),
               "--json", str(tmp_path / "s.json"), "--threads", "1", "--device", "cpu"])
    assert rc == 0
    assert json.loads((tmp_path / "s.json").read_text())["model"] == picking.DEFAULT_MODEL
