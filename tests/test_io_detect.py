"""deepqs.io.detect: file kind by extension, then by content."""

import gzip
import os

import numpy as np
import pytest
import torch

from deepqs.errors import InputError
from deepqs.io import Coordinates, detect_kind, save_weights, write_coordinates, write_map, write_model
from deepqs.io.models import read_model

PDB = "ATOM      1  CA  GLY A   1       1.000   2.000   3.000  1.00 10.00           C\nEND\n"


def test_by_extension(tmp_path):
    cases = {
        "a.mrc": "map", "b.map.gz": "map", "c.ccp4": "map", "d.mrcs": "map",
        "e.pdb": "model", "f.cif": "model", "g.cif.gz": "model", "h.ent": "model",
        "i.box": "coordinates", "j.star": "coordinates", "k.cs": "coordinates", "l.csv": "coordinates",
        "m.pt": "weights", "n.pth": "weights",
    }
    for name, kind in cases.items():
        (tmp_path / name).write_bytes(b"x")
        assert detect_kind(tmp_path / name) == kind, name


def test_by_content(tmp_path):
    write_map(tmp_path / "map.mrc", np.ones((2, 3, 4), np.float32), voxel_size=1.0)
    os.rename(tmp_path / "map.mrc", tmp_path / "map.bin")
    assert detect_kind(tmp_path / "map.bin") == "map"
    with open(tmp_path / "map.bin", "rb") as src, gzip.open(tmp_path / "map.dat", "wb") as dst:
        dst.write(src.read())
    assert detect_kind(tmp_path / "map.dat") == "map"
    (tmp_path / "model.txt").write_text(PDB)
    assert detect_kind(tmp_path / "model.txt") == "model"
    st = read_model(tmp_path / "model.txt")
    write_model(tmp_path / "model.cif", st)
    os.rename(tmp_path / "model.cif", tmp_path / "model.data")
    assert detect_kind(tmp_path / "model.data") == "model"
    write_coordinates(tmp_path / "picks.txt", Coordinates([1.0], [2.0], None, "m"))
    assert detect_kind(tmp_path / "picks.txt") == "coordinates"
    write_coordinates(tmp_path / "picks.star", Coordinates([1.0], [2.0]))
    os.rename(tmp_path / "picks.star", tmp_path / "picks.relion")
    assert detect_kind(tmp_path / "picks.relion") == "coordinates"
    (tmp_path / "picks.eman").write_text("1 2 64 64\n")
    assert detect_kind(tmp_path / "picks.eman") == "coordinates"
    save_weights(tmp_path / "w.pt", {"a": torch.zeros(2)}, {"architecture": "x", "version": 1})
    os.rename(tmp_path / "w.pt", tmp_path / "w.weights")
    assert detect_kind(tmp_path / "w.weights") == "weights"


def test_unknown_and_missing(tmp_path):
    (tmp_path / "notes.xyz").write_text("hello world\n")
    with pytest.raises(InputError) as exc:
        detect_kind(tmp_path / "notes.xyz")
    assert "notes.xyz" in str(exc.value) and "unknown format" in str(exc.value)
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)))
    with pytest.raises(InputError, match="unknown format"):
        detect_kind(tmp_path / "blob.bin")
    with pytest.raises(InputError, match="not found"):
        detect_kind(tmp_path / "nope.mrc")


def test_shared_files(shared_data):
    assert detect_kind(shared_data / "qscore" / "emd30342_7cec_A" / "map.mrc") == "map"
    assert detect_kind(shared_data / "qscore" / "emd30342_7cec_A" / "model.cif") == "model"
    assert detect_kind(shared_data / "micrographs" / "ucsf_stack_1142" / "Ucsf_stack_1142_DW_autopick.star") == "coordinates"
    assert detect_kind(shared_data / "maps" / "header_edge_cases" / "mrcfile_tests" / "EMD-3197.map.bz2") == "map"
