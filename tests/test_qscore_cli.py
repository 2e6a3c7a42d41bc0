"""``deepqs qscore``: outputs that other tools read, and one-line errors."""

import json
import subprocess
import sys

import gemmi
import mrcfile
import numpy as np
import pytest

from deepqs.cli import main
from deepqs.io import read_atom_site_column, write_map

# (residue number, residue name, atom name, element, x, y, z)
ATOMS = [
    (1, "ALA", "N", "N", 0.0, 0.0, 0.0), (1, "ALA", "CA", "C", 1.46, 0.0, 0.0),
    (1, "ALA", "C", "C", 2.0, 1.42, 0.0), (1, "ALA", "O", "O", 1.3, 2.4, 0.1),
    (1, "ALA", "CB", "C", 2.0, -0.8, -1.2), (1, "ALA", "HA", "H", 1.8, -0.5, 0.9),
    (2, "GLY", "N", "N", 3.3, 1.5, 0.0), (2, "GLY", "CA", "C", 3.9, 2.8, 0.2),
    (2, "GLY", "C", "C", 5.4, 2.7, 0.3), (2, "GLY", "O", "O", 6.0, 1.6, 0.2),
    (3, "HOH", "O", "O", 4.0, -2.0, 2.0),
]


def write_model(path, shift=(0.0, 0.0, 0.0)):
    st = gemmi.Structure()
    model = gemmi.Model("1")
    chain = gemmi.Chain("A")
    for num in (1, 2, 3):
        res = gemmi.Residue()
        rows = [a for a in ATOMS if a[0] == num]
        res.name = rows[0][1]
        res.seqid = gemmi.SeqId(num, " ")
        res.het_flag = "H" if res.name == "HOH" else "A"
        for _, _, name, el, x, y, z in rows:
            atom = gemmi.Atom()
            atom.name = name
            atom.element = gemmi.Element(el)
            atom.pos = gemmi.Position(x + shift[0], y + shift[1], z + shift[2])
            atom.occ = 1.0
            atom.b_iso = 20.0
            res.add_atom(atom)
        chain.add_residue(res)
    model.add_chain(chain)
    st.add_model(model)
    st.setup_entities()
    if str(path).endswith(".pdb"):
        st.write_pdb(str(path))
    else:
        st.make_mmcif_document().write_file(str(path))


@pytest.fixture
def pair(tmp_path):
    voxel, origin, n = 0.5, (-4.25, -4.1, -4.3), 40
    ax = np.arange(n) * voxel
    z, y, x = np.meshgrid(ax + origin[2], ax + origin[1], ax + origin[0], indexing="ij")
    data = np.zeros((n, n, n))
    for *_, el, ax_, ay, az in ATOMS:
        if el != "H":
            data += np.exp(-((x - ax_) ** 2 + (y - ay) ** 2 + (z - az) ** 2) / (2 * 0.8 ** 2))
    map_path = tmp_path / "map.mrc"
    write_map(map_path, data.astype(np.float32), voxel_size=voxel, origin=origin)
    model_path = tmp_path / "model.cif"
    write_model(model_path)
    return map_path, model_path


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "deepqs", *map(str, args)], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def test_qscore_writes_cif_tsv_json(pair, tmp_path, capsys):
    map_path, model_path = pair
    out_cif, out_tsv, out_json = tmp_path / "q.cif", tmp_path / "res.tsv", tmp_path / "s.json"
    assert main(["qscore", str(map_path), str(model_path), "--resolution", "3.0", "--out-model", str(out_cif),
                 "--out-residues", str(out_tsv), "--json", str(out_json), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "mean Q" in out and "chain A" in out and "expected Q at 3.00 Å" in out

    # mmCIF: the whole model, plus _atom_site.Q-score read back through gemmi
    st = gemmi.read_structure(str(out_cif))
    assert st[0].count_atom_sites() == len(ATOMS)
    q = read_atom_site_column(out_cif, "Q-score")
    block = gemmi.cif.read(str(out_cif)).sole_block()
    raw = list(block.find_values("_atom_site.Q-score"))
    assert all(v == "?" or len(v.split(".")[1]) == 6 for v in raw)          # %.6f
    assert np.all(np.isfinite(q)) and np.all((q >= -1) & (q <= 1))
    assert q[5] == q[1]                                                    # HA takes CA's Q
    assert np.mean(q[:5]) > 0.5                                             # the model fits its map

    # JSON summary
    s = json.loads(out_json.read_text())
    assert s["atoms"] == {"total": 11, "scored": 10, "hydrogens": 1, "hydrogens_without_parent": 0,
                          "outside_map": 0, "waters": 1}
    heavy = np.array([a[3] != "H" for a in ATOMS])
    water = np.array([a[1] == "HOH" for a in ATOMS])
    assert s["mean_q"] == pytest.approx(q[heavy].mean())
    assert s["mean_q_no_water"] == pytest.approx(q[heavy & ~water].mean())
    assert s["median_q"] == pytest.approx(np.median(q[heavy]))
    assert s["chains"][0]["chain"] == "A" and s["chains"][0]["atoms"] == 10
    assert s["sigma_A"] == 0.6 and s["resolution_A"] == 3.0
    assert s["expected_q"] == pytest.approx(-0.1775 * 3.0 + 1.1192)
    assert s["implied_resolution_A"] == pytest.approx((s["mean_q_no_water"] - 1.1192) / -0.1775)
    assert "relation" in s and "-0.1775" in s["relation"]

    # residue table
    lines = out_tsv.read_text().splitlines()
    header = lines[0].split("\t")
    assert header[:7] == ["chain", "resseq", "icode", "resname", "type", "n_atoms", "q_residue"]
    assert {"q_backbone", "q_sidechain", "q_phosphate", "q_sugar", "q_base"} <= set(header)
    rows = [dict(zip(header, line.split("\t"))) for line in lines[1:]]
    assert [r["resname"] for r in rows] == ["ALA", "GLY", "HOH"]
    assert float(rows[0]["q_residue"]) == pytest.approx(q[:5].mean(), abs=1e-6)
    assert float(rows[0]["q_backbone"]) == pytest.approx(q[:4].mean(), abs=1e-6)
    assert float(rows[0]["q_sidechain"]) == pytest.approx(q[4], abs=1e-6)
    assert rows[1]["q_sidechain"] == "" and rows[2]["type"] == "water"


def test_qscore_pdb_output_has_q_in_b_factors(pair, tmp_path):
    map_path, model_path = pair
    out_pdb, out_cif = tmp_path / "q.pdb", tmp_path / "q.cif"
    assert main(["qscore", str(map_path), str(model_path), "--out-model", str(out_pdb), "--threads", "1"]) == 0
    assert main(["qscore", str(map_path), str(model_path), "--out-model", str(out_cif), "--threads", "1"]) == 0
    q = read_atom_site_column(out_cif, "Q-score")
    st = gemmi.read_structure(str(out_pdb))
    b = np.array([a.b_iso for r in st[0]["A"] for a in r])
    np.testing.assert_allclose(b, np.round(q, 2), atol=0.0051)


def test_qscore_model_outside_map_exits_2_with_one_line(pair, tmp_path):
    map_path, _ = pair
    far = tmp_path / "far.cif"
    write_model(far, shift=(200.0, 0.0, 0.0))
    rc, out, err = run_cli("qscore", map_path, far)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "far.cif" in lines[0] and "map.mrc" in lines[0] and "outside" in lines[0]


def test_qscore_partly_outside_is_scored_and_counted(pair, tmp_path, capsys):
    map_path, _ = pair
    part = tmp_path / "part.cif"
    write_model(part, shift=(12.0, 0.0, 0.0))              # x from 12 to 18 Å, box ends at 15.25
    out_json = tmp_path / "s.json"
    assert main(["qscore", str(map_path), str(part), "--json", str(out_json), "--threads", "1"]) == 0
    s = json.loads(out_json.read_text())
    assert 0 < s["atoms"]["outside_map"] < 10
    assert "outside the map" in capsys.readouterr().out


def test_qscore_voxel_size_unknown_then_given(pair, tmp_path):
    _, model_path = pair
    bad = tmp_path / "novoxel.mrc"
    with mrcfile.new(str(bad)) as m:
        m.set_data(np.ones((8, 8, 8), dtype=np.float32))
        m.voxel_size = 0.0
    rc, _, err = run_cli("qscore", bad, model_path)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "voxel" in err
    rc, out, err = run_cli("qscore", bad, model_path, "--voxel-size", "1.0")
    assert rc == 0, err
    assert "mean Q" in out


def test_qscore_bad_output_extension(pair, tmp_path):
    map_path, model_path = pair
    rc, _, err = run_cli("qscore", map_path, model_path, "--out-model", tmp_path / "q.txt")
    assert rc == 2 and "--out-model" in err


def test_qscore_reference_pair_summary(shared_data, tmp_path):
    d = shared_data / "qscore" / "emd30342_7cec_A"
    if not d.is_dir():
        pytest.skip("reference pair not present")
    out_json = tmp_path / "s.json"
    rc, out, err = run_cli("qscore", d / "map.mrc", d / "model.cif", "--resolution", "3.9", "--json", out_json)
    assert rc == 0, err
    s = json.loads(out_json.read_text())
    assert s["mean_q"] == pytest.approx(0.4570, abs=5e-4)
    assert s["atoms"]["scored"] == 4308 and s["atoms"]["outside_map"] == 0
    assert round(s["implied_resolution_A"], 2) == 3.73


def test_qscore_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["qscore", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: deepqs qscore" in out
    for opt in ("--sigma", "--resolution", "--voxel-size", "--out-model", "--out-residues", "--json",
                "--threads", "--device"):
        assert opt in out


def test_qscore_progress_bar_on_a_terminal(pair, monkeypatch, capsys):
    import deepqs.commands.qscore as cmd
    map_path, model_path = pair
    monkeypatch.setattr(cmd, "PROGRESS_MIN_ATOMS", 1)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(["qscore", str(map_path), str(model_path), "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "Q-score" in err and "atom" in err
