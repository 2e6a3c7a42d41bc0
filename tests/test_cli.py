"""The ``deepqs`` command line: help, info on every kind of file, JSON output, clear errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from deepqs.cli import COMMANDS, main
from deepqs.io import Coordinates, write_coordinates, write_map


def run_cli(*args):
    """Run ``python -m deepqs ARGS`` in a subprocess (exit status, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "deepqs", *map(str, args)], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    assert "examples:" in out


@pytest.mark.parametrize("command", ["info", "simulate", "demo"])
def test_each_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: deepqs " + command in capsys.readouterr().out


@pytest.fixture
def small_map(tmp_path):
    data = np.arange(6 * 5 * 4, dtype=np.float32).reshape(4, 5, 6)
    path = tmp_path / "small.mrc"
    write_map(path, data, voxel_size=(1.1, 1.2, 1.3), origin=(-3.0, 4.5, 0.25))
    return path, data


def test_info_map_json(small_map, capsys, tmp_path):
    path, data = small_map
    assert main(["info", str(path), "--json", "--histogram", str(tmp_path / "h.png"), "--bins", "12"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["kind"] == "map"
    assert s["grid_size_xyz"] == [6, 5, 4]
    assert s["voxel_size_A"] == pytest.approx([1.1, 1.2, 1.3], abs=1e-6)
    assert s["origin_A"] == pytest.approx([-3.0, 4.5, 0.25], abs=1e-6)
    assert s["mean"] == pytest.approx(data.mean())
    assert s["std"] == pytest.approx(data.std())
    assert sum(s["histogram"]["counts"]) == data.size and len(s["histogram"]["counts"]) == 12
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


def test_info_voxel_size_override_and_origin(small_map, capsys):
    path, _ = small_map
    assert main(["info", str(path), "--json", "--voxel-size", "2.0", "--origin=-1,-2,-3"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["voxel_size_A"] == [2.0, 2.0, 2.0]
    assert s["origin_A"] == [-1.0, -2.0, -3.0]


def test_info_text_output(small_map):
    path, _ = small_map
    rc, out, err = run_cli("info", path)
    assert rc == 0, err
    assert "box (x, y, z):      6, 5, 4 voxels" in out
    assert "origin:             -3, 4.5, 0.25 Å" in out


def test_info_model_and_coordinates(tmp_path, capsys):
    from deepqs.simulate import build_protein_model
    from deepqs.io import write_model
    st = build_protein_model(n_residues=30, seed=1)
    write_model(tmp_path / "m.cif", st)
    assert main(["info", str(tmp_path / "m.cif"), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["kind"] == "model" and s["n_residues"] == 30 and s["chains"] == ["A"] and s["n_hydrogens"] == 0

    write_coordinates(tmp_path / "c.box", Coordinates(np.array([10.0, 50.0]), np.array([20.0, 60.0])), box_size=32)
    assert main(["info", str(tmp_path / "c.box"), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["kind"] == "coordinates" and s["n_coordinates"] == 2


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"),
    (b"\x00" * 100, "truncated"),
])
def test_bad_map_one_line_exit_2(tmp_path, content, reason):
    path = tmp_path / "bad.mrc"
    path.write_bytes(content)
    rc, out, err = run_cli("info", path)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "bad.mrc" in lines[0] and lines[0].startswith("deepqs info: error:")
    assert "Traceback" not in err


def test_missing_and_unknown_files(tmp_path):
    rc, _, err = run_cli("info", tmp_path / "nope.mrc")
    assert rc == 2 and "nope.mrc" in err and "Traceback" not in err
    odd = tmp_path / "notes.xyz"
    odd.write_text("hello\n")
    rc, _, err = run_cli("info", odd)
    assert rc == 2 and "notes.xyz" in err and "Traceback" not in err


def test_bad_argument_values_exit_2():
    rc, _, err = run_cli("simulate", "map", "--out", "x", "--voxel-size", "-1")
    assert rc == 2 and "positive" in err


def test_simulate_map_command(tmp_path, capsys):
    from deepqs.io import read_map, read_atoms

    out = tmp_path / "sim"
    assert main(["simulate", "map", "--out", str(out), "--residues", "30", "--resolution", "5",
                 "--voxel-size", "1.2", "--seed", "4", "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    m = read_map(manifest["map"])
    h1 = read_map(manifest["half_maps"][0])
    assert np.allclose(m.voxel_size, 1.2) and h1.shape == m.shape
    assert abs(manifest["half_map_fsc_0.143_A"] - 5.0) < 0.5
    assert len(read_atoms(manifest["model"])) == manifest["n_atoms"]


def test_simulate_micrographs_command(tmp_path, capsys):
    from deepqs.io import read_coordinates, read_micrograph

    out = tmp_path / "mics"
    assert main(["simulate", "micrographs", "--out", str(out), "--n", "1", "--size", "512", "--particles", "6",
                 "--pixel-size", "2.0", "--junk", "ice_blobs", "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    img, ps = read_micrograph(manifest["micrographs"][0])
    assert img.shape == (512, 512) and ps == pytest.approx(2.0)
    star = read_coordinates(out / "coordinates" / "mic_001.star")
    box = read_coordinates(out / "coordinates" / "mic_001.box")
    assert len(star) == 6
    # .box corners (3 decimals) round-trip to the same centres
    assert np.allclose(star.x, box.x, atol=1e-3) and np.allclose(star.y, box.y, atol=1e-3)
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth[0]["n_particles"] == 6 and any(j["kind"] == "ice_blob" for j in truth[0]["junk"])
