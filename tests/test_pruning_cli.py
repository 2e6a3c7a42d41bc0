"""``deepqs prune run|train`` on simulated micrographs and stacks; bad input ends with one line and exit 2."""

import csv
import json
import os

import numpy as np
import pytest
import torch

from deepqs.cli import main
from deepqs.io import Coordinates, read_coordinates, read_stack, write_coordinates, write_micrograph, write_stack
from deepqs.pruning.boxes import read_particle_boxes
from deepqs.pruning.model import DEFAULT_MODEL, PruningModel, load_model, save_model
from deepqs.pruning.network import build_network
from deepqs.io.models import atoms_from_structure
from deepqs.simulate import build_protein_model
from deepqs.simulate.micrographs import particle_stack, simulate_micrographs

COLUMNS = ["micrograph", "x", "y", "p_particle", "p_ice", "p_carbon", "kept", "index", "off_edge"]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("prunecli")
    atoms = atoms_from_structure(build_protein_model(60, seed=1, side_chains=False))      # small and quick
    m = simulate_micrographs(1, (256, 256), pixel_size=2.0, n_particles=12, seed=4, snr=0.3, atoms=atoms,
                             junk={"ice_blobs": 2})[0]
    write_micrograph(d / "mic0.mrc", m.image, 2.0)
    xy = np.concatenate([m.coordinates, [[2.0, 3.0]]])            # one box off the edge
    write_coordinates(d / "mic0.star", Coordinates(xy[:, 0], xy[:, 1], score=np.linspace(0, 1, len(xy))))
    write_coordinates(d / "mic0.box", Coordinates(xy[:, 0], xy[:, 1]), box_size=40)
    net = build_network({"box_size": 64, "widths": [4, 8], "n_classes": 3}, seed=0)
    model = d / "tiny.pt"
    save_model(model, PruningModel(net, threshold=0.3, threshold_rule="test"))
    stack = particle_stack(m, m.coordinates[:6], 40)
    write_stack(d / "parts.mrcs", stack, 2.0)
    lines = ["", "data_particles", "", "loop_", "_rlnImageName #1", "_rlnMicrographName #2", "_rlnCoordinateX #3",
             "_rlnCoordinateY #4"]
    lines += [f"{k + 1:06d}@parts.mrcs mic0.mrc {x:.1f} {y:.1f}" for k, (x, y) in enumerate(m.coordinates[:6])]
    (d / "parts.star").write_text("\n".join(lines) + "\n")
    return d, m, xy, model


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_on_coordinates(data, capsys):
    d, m, xy, model = data
    for ext in ("star", "box"):
        out = d / f"out_{ext}"
        capsys.readouterr()
        rc = main(["prune", "run", "--model", str(model), "--micrographs", str(d / "mic0.mrc"), "--coords",
                   str(d / f"mic0.{ext}"), "--box", "40", "--out-dir", str(out), "--threads", "1", "--json"])
        assert rc == 0
        summary = json.loads(capsys.readouterr().out)
        rows = _rows(out / "scores.csv")
        assert list(rows[0]) == COLUMNS
        assert len(rows) == len(xy) == summary["n_items"]
        assert summary["n_kept"] + summary["n_rejected"] == len(xy) and summary["threshold"] == pytest.approx(0.3)
        c = np.rint(xy)
        expect = int(np.sum((c.min(1) - 20 < 0) | (c.max(1) + 19 > 255)))
        assert summary["n_off_edge"] == expect >= 1 and rows[-1]["off_edge"] == "1"
        assert [r["off_edge"] == "1" for r in rows] == list((c.min(1) - 20 < 0) | (c.max(1) + 19 > 255))
        assert float(rows[0]["x"]) == pytest.approx(xy[0, 0], abs=1e-3) and rows[0]["micrograph"] == "mic0"
        p = np.array([[float(r["p_particle"]), float(r["p_ice"]), float(r["p_carbon"])] for r in rows])
        assert np.allclose(p.sum(1), 1.0, atol=1e-4)
        assert [r["kept"] == "1" for r in rows] == list(p[:, 0] >= 0.3)
        kept = read_coordinates(out / "kept" / f"mic0.{ext}")
        rej = read_coordinates(out / "rejected" / f"mic0.{ext}")
        assert len(kept) == summary["n_kept"] and len(rej) == summary["n_rejected"]
        if ext == "star":
            assert kept.score is not None                        # the picker's own scores are kept


def test_run_threshold_extremes(data, capsys):
    d, m, xy, model = data
    rc = main(["prune", "run", "--model", str(model), "--micrographs", str(d / "mic0.mrc"), "--coords",
               str(d / "mic0.star"), "--box", "40", "--out-dir", str(d / "all"), "--threshold", "0", "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["n_kept"] == len(xy)
    assert len(read_coordinates(d / "all" / "rejected" / "mic0.star")) == 0


def test_run_on_stack_and_star(data, capsys):
    d, m, xy, model = data
    capsys.readouterr()
    rc = main(["prune", "run", "--model", str(model), "--particles", str(d / "parts.star"), "--out-dir",
               str(d / "st"), "--threshold", "0.0", "--json"])
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    assert s["n_items"] == 6 and s["n_kept"] == 6
    kept, ps = read_stack(d / "st" / "kept.mrcs")
    assert kept.shape == (6, 40, 40) and ps == pytest.approx(2.0)
    assert f"000001@{d / 'st' / 'kept.mrcs'}" in (d / "st" / "kept.star").read_text()
    again = read_particle_boxes(d / "st" / "kept.star", 40)            # the written .star reads back
    assert np.allclose(again.boxes, kept)
    rows = _rows(d / "st" / "scores.csv")
    assert len(rows) == 6 and rows[0]["micrograph"] == "mic0.mrc"
    rc = main(["prune", "run", "--model", str(model), "--particles", str(d / "parts.mrcs"), "--out-dir",
               str(d / "st2"), "--threshold", "1.0", "--json"])
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    assert s["n_rejected"] == 6 and not os.path.exists(d / "st2" / "kept.mrcs")
    assert read_stack(d / "st2" / "rejected.mrcs")[0].shape == (6, 40, 40)
    rows = _rows(d / "st2" / "scores.csv")
    assert [r["index"] for r in rows] == [str(i) for i in range(6)] and rows[0]["x"] == ""


def test_train_cli(data, capsys):
    d, m, xy, model = data
    out = d / "trained.pt"
    capsys.readouterr()
    rc = main(["prune", "train", "--micrographs", str(d / "mic0.mrc"), "--box", "40", "--good", str(d / "mic0.box"),
               "--bad", str(d / "mic0.star"), "--init", str(model), "--epochs", "2", "--freeze-epochs", "1",
               "--samples-per-epoch", "64", "--threads", "1", "--out", str(out), "--json"])
    assert rc == 0
    captured = capsys.readouterr()
    s = json.loads(captured.out)
    assert s["n_good"] == len(xy) and s["n_bad"] == len(xy) and out.exists()
    # a few labels per class: too few held-out boxes to judge fine-tuning -> the pretrained model, untouched
    assert s["epochs_run"] == 0 and s["fine_tuned"] is False and "too few" in s["skipped"]
    assert "--min-val-per-class 0" in captured.err
    assert load_model(out).threshold == pytest.approx(load_model(model).threshold)
    rc = main(["prune", "train", "--micrographs", str(d / "mic0.mrc"), "--box", "40", "--good", str(d / "mic0.box"),
               "--bad", str(d / "mic0.star"), "--init", str(model), "--epochs", "2", "--freeze-epochs", "1",
               "--samples-per-epoch", "64", "--threads", "1", "--out", str(out), "--json", "--min-val-per-class", "0"])
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    assert s["epochs_run"] == 2 and s["fine_tuned"] is True and s["skipped"] is None
    rc = main(["prune", "train", "--good", str(d / "parts.star"), "--bad", str(d / "parts.mrcs"), "--init", "none",
               "--epochs", "1", "--samples-per-epoch", "32", "--threads", "1", "--out", str(d / "scratch.pt")])
    assert rc == 0 and (d / "scratch.pt").exists()


@pytest.mark.parametrize("argv, words", [
    (["run", "--particles", "{d}/nothing.mrcs", "--out-dir", "{d}/x"], ["nothing.mrcs", "not found"]),
    (["run", "--micrographs", "{d}/mic0.mrc", "--out-dir", "{d}/x"], ["--coords", "--box"]),
    (["run", "--model", "{d}/mic0.star", "--particles", "{d}/parts.mrcs", "--out-dir", "{d}/x"], ["mic0.star"]),
    (["run", "--particles", "{d}/empty.star", "--out-dir", "{d}/x"], ["empty.star"]),
    (["train", "--good", "{d}/parts.mrcs", "--bad", "{d}/nothing.mrcs", "--out", "{d}/m.pt", "--init", "{d}/tiny.pt"],
     ["nothing.mrcs"]),
])
def test_bad_input_one_line_exit_2(data, capsys, argv, words):
    d, m, xy, model = data
    (d / "empty.star").write_text("")
    argv = [a.format(d=d) for a in argv]
    if argv[0] == "run" and "--model" not in argv:
        argv += ["--model", str(model)]
    capsys.readouterr()
    rc = main(["prune", *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("deepqs prune: error:") and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err


def test_bad_threshold_is_a_usage_error(data, capsys):
    d, m, xy, model = data
    with pytest.raises(SystemExit) as exc:
        main(["prune", "run", "--particles", str(d / "parts.mrcs"), "--out-dir", str(d / "x"), "--threshold", "1.5"])
    assert exc.value.code == 2


@pytest.mark.skipif(not os.path.exists(DEFAULT_MODEL), reason="the shipped pruning model is not there")
def test_shipped_model_keeps_particles_rejects_blobs(data, capsys, tmp_path):
    d, m, xy, model = data
    blobs = np.array([j["center_xy"] for j in m.junk if j["kind"] == "ice_blob"])
    pts = np.concatenate([m.coordinates, blobs])
    write_coordinates(tmp_path / "mic0.csv", Coordinates(pts[:, 0], pts[:, 1]))
    box = int(round(1.85 * m.particle_diameter_px))
    capsys.readouterr()
    rc = main(["prune", "run", "--micrographs", str(d / "mic0.mrc"), "--coords", str(tmp_path / "mic0.csv"), "--box",
               str(box), "--out-dir", str(tmp_path / "o"), "--threads", "1", "--json"])
    assert rc == 0
    rows = _rows(tmp_path / "o" / "scores.csv")
    kept = np.array([r["kept"] == "1" for r in rows])
    n = len(m.coordinates)
    assert kept[:n].mean() >= 0.75                    # most true particles kept
    assert not kept[n:].all()                         # not every ice blob kept


def test_prune_predict_on_an_absent_gpu_falls_back_with_a_warning(capsys):
    import numpy as np
    import torch

    from deepqs.pruning.model import load_model
    from deepqs.pruning.predict import predict_proba

    if torch.cuda.is_available():
        import pytest
        pytest.skip("a CUDA GPU is present")
    model = load_model()
    boxes = np.random.default_rng(0).standard_normal((5, model.box_size, model.box_size)).astype(np.float32)
    on_cpu = predict_proba(model, boxes)
    fallback = predict_proba(model, boxes, device="cuda:0")
    assert "running on the CPU" in capsys.readouterr().err
    np.testing.assert_allclose(fallback, on_cpu, atol=1e-6)
