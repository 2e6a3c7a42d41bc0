"""Particle extraction: boxes land on the right pixels (x = column, y = row), edge boxes are
skipped and counted (or padded), normalisation, the STAR/table outputs, and bad input."""

import csv
import os

import numpy as np
import pytest

from deepqs.cli import main
from deepqs.io import read_stack, write_micrograph
from deepqs.picking.extract import extract_particles, normalise_particles
from deepqs.pruning.boxes import read_particle_boxes


@pytest.fixture
def mics(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for k in range(2):
        img = rng.normal(0, 1, (200, 300)).astype(np.float32)
        img[40, 100] = 50.0 + k          # a marker at row 40, column 100
        path = tmp_path / ("mic_%d.mrc" % k)
        write_micrograph(str(path), img, 1.2)
        paths.append(str(path))
        with open(tmp_path / ("mic_%d.csv" % k), "w") as fh:
            # the marker, a box inside, and one running off the right edge
            fh.write("x,y\n100,40\n150,120\n295,100\n")
    return tmp_path, paths


def test_boxes_are_centred_on_the_coordinates(mics):
    folder, paths = mics
    res = extract_particles(paths, [folder / "mic_0.csv", folder / "mic_1.csv"], 32, folder / "out", normalise=False)
    assert res.n_coordinates == 6 and res.n_particles == 4 and res.n_skipped_off_edge == 2
    stack, ps = read_stack(res.stacks[0])
    assert stack.shape == (2, 32, 32) and ps == pytest.approx(1.2)
    assert stack[0, 16, 16] == pytest.approx(50.0)          # centre pixel = micrograph[y, x]
    assert np.unravel_index(np.argmax(stack[0]), stack[0].shape) == (16, 16)
    assert [(r[0], r[1], r[5]) for r in res.rows] == [("mic_0", 0, 1), ("mic_0", 1, 2), ("mic_1", 0, 1), ("mic_1", 1, 2)]


def test_edge_boxes_can_be_kept_padded(mics):
    folder, paths = mics
    res = extract_particles(paths, [folder / "mic_0.csv"], 32, folder / "out", keep_edge=True, normalise=False)
    assert res.n_particles == 3 and res.n_skipped_off_edge == 0
    stack, _ = read_stack(res.stacks[0])
    assert np.isfinite(stack).all() and stack.shape[0] == 3


def test_normalised_background_and_inversion(mics):
    folder, paths = mics
    res = extract_particles(paths[:1], [folder / "mic_0.csv"], 32, folder / "out", invert=True)
    stack, _ = read_stack(res.stacks[0])
    yy, xx = np.mgrid[0:32, 0:32]
    bg = (yy - 15.5) ** 2 + (xx - 15.5) ** 2 > 16 ** 2
    assert np.allclose(stack[:, bg].mean(axis=1), 0, atol=1e-5)
    assert np.allclose(stack[:, bg].std(axis=1), 1, atol=1e-4)
    assert stack[0, 16, 16] < -10                            # the bright marker is dark after --invert
    flat = normalise_particles(np.ones((1, 8, 8), np.float32))
    assert np.isfinite(flat).all()                           # constant box: no division by zero


def test_star_reads_back_as_particles(mics):
    folder, paths = mics
    res = extract_particles(paths, [folder / "mic_0.csv", folder / "mic_1.csv"], 32, folder / "out")
    boxes = read_particle_boxes(res.star, out_size=32)
    assert len(boxes) == 4


def test_cli_writes_star_table_and_summary(mics, capsys):
    folder, paths = mics
    out = folder / "cli"
    assert main(["extract", "--micrographs", *paths, "--coords", str(folder / "mic_0.csv"), str(folder / "mic_1.csv"),
                 "--box", "32", "--out-dir", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    assert '"n_particles": 4' in captured.out and '"n_skipped_off_edge": 2' in captured.out
    assert "run off the micrograph edge" in captured.err
    with open(out / "extracted.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["micrograph"], r["index"], r["slice"]) for r in rows][:2] == [("mic_0", "0", "1"), ("mic_0", "1", "2")]
    assert os.path.exists(out / "particles.star") and not any(f.endswith(".tmp") for f in os.listdir(out))


def test_cli_bad_input(mics, tmp_path, capsys):
    folder, paths = mics
    broken = tmp_path / "broken.mrc"
    broken.write_bytes(b"not an mrc file at all")
    with open(tmp_path / "broken.csv", "w") as fh:
        fh.write("x,y\n10,10\n")
    assert main(["extract", "--micrographs", str(broken), "--coords", str(tmp_path / "broken.csv"), "--box", "16",
                 "--out-dir", str(tmp_path / "o1")]) == 2
    assert "broken.mrc" in capsys.readouterr().err
    assert main(["extract", "--micrographs", *paths, "--coords", str(tmp_path / "broken.csv"), "--box", "16",
                 "--out-dir", str(tmp_path / "o2")]) == 2
    assert "no coordinates match" in capsys.readouterr().err
