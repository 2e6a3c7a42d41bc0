"""Predicted local Q against a model's true Q: sampling rule, figures, CLI compare and --figures."""

import json

import numpy as np
import pytest

from deepqs.cli import main
from deepqs.errors import InputError
from deepqs.io import atoms_from_structure, read_map, write_map, write_model
from deepqs.io.mapdata import MapData
from deepqs.localq.compare import compare_localq, predicted_atom_q
from deepqs.qscore import compute_qscores
from deepqs.simulate import build_protein_model, simulate_map


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cmp")
    st = build_protein_model(n_residues=30, seed=3)
    atoms = atoms_from_structure(st)
    m = simulate_map(atoms, voxel_size=1.1, resolution=4.0, seed=3).map
    m.origin = m.origin + np.array([20.0, -5.0, 3.3])      # non-zero origin: model moved with it
    atoms.xyz = atoms.xyz + np.array([20.0, -5.0, 3.3])
    write_map(folder / "map.mrc", m)
    return folder, m, atoms


def test_predicted_q_never_mixes_in_zeros_outside_the_mask():
    data = np.zeros((6, 6, 6), np.float32)
    data[:, :, :3] = 0.7                                  # predicted region x < 3, zeros beyond
    lq = MapData(data, np.array([1.0, 1.0, 1.0]), np.zeros(3))
    xyz = np.array([[1.0, 2.0, 2.0], [2.4, 2.0, 2.0], [2.6, 2.0, 2.0], [4.5, 2.0, 2.0]])
    q = predicted_atom_q(lq, xyz)
    # inside: exact; halfway to the zeros: still 0.7 (not 0.7 x weight); beyond half: no prediction
    assert q[0] == pytest.approx(0.7) and q[1] == pytest.approx(0.7)
    assert np.isnan(q[2]) and np.isnan(q[3])


def test_compare_with_the_true_q_as_prediction_is_perfect(sim):
    _, m, atoms = sim
    true = compute_qscores(m, atoms).q
    # a "prediction" that puts each atom's true Q on the voxels around it
    from deepqs.localq.labels import label_map
    lab, w = label_map(m, atoms.xyz, true, radius=1.5 * float(m.voxel_size[0]))
    result = compare_localq(m, m.with_data(np.where(w > 0, lab, 0).astype(np.float32)), atoms)
    s = result.summary
    assert s["residues_compared"] == 30 and s["atoms_compared"] > 0.9 * len(atoms)
    assert s["pearson_residue"] > 0.9
    assert s["median_true_q"] == pytest.approx(float(np.nanmedian(true[np.isfinite(result.q_pred)])), abs=1e-9)
    assert s["abs_median_diff"] < 0.05


def test_compare_refuses_a_model_outside_the_prediction(sim):
    _, m, atoms = sim
    empty = m.with_data(np.zeros(m.shape, np.float32))
    with pytest.raises(InputError, match="no atom of the model lies inside the predicted region"):
        compare_localq(m, empty, atoms)


def test_cli_predict_figures_and_compare(sim, tmp_path, capsys):
    folder, m, atoms = sim
    st = build_protein_model(n_residues=30, seed=3)
    for res in st[0][0]:
        for a in res:
            a.pos = type(a.pos)(a.pos.x + 20.0, a.pos.y - 5.0, a.pos.z + 3.3)
    write_model(tmp_path / "model.cif", st)
    lq = tmp_path / "lq.mrc"
    assert main(["localq", "predict", str(folder / "map.mrc"), "--out", str(lq), "--figures",
                 str(tmp_path / "fig")]) == 0
    for name in ("localq_slices.png", "localq_histogram.png"):
        assert (tmp_path / "fig" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    script = (tmp_path / "fig" / "color_by_localq.cxc").read_text()
    assert "open ../lq.mrc" in script and "color sample #1 map #2 palette red:white:blue range 0,1" in script
    capsys.readouterr()
    assert main(["localq", "compare", str(folder / "map.mrc"), str(lq), str(tmp_path / "model.cif"),
                 "--out-residues", str(tmp_path / "r.csv"), "--plot", str(tmp_path / "s.png"),
                 "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    s = json.loads((tmp_path / "c.json").read_text())
    assert f"per-residue Pearson r {s['pearson_residue']:.3f}" in out
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert rows[0] == "chain,resseq,icode,resname,n_atoms,q_true,q_pred" and len(rows) == 31
    # the CLI's true Q is the Q-score engine's: same median as computing it here
    true = compute_qscores(read_map(folder / "map.mrc"), atoms).q
    pred_ok = np.array([float(r.split(",")[6]) for r in rows[1:]])
    assert np.all(np.abs(pred_ok) <= 1)
    assert s["median_true_q"] == pytest.approx(float(np.median(true[np.isfinite(true)])), abs=0.02)
    assert (tmp_path / "s.png").stat().st_size > 5000


def test_cli_compare_model_outside_map_is_one_line_error(sim, tmp_path, capsys):
    folder, m, _ = sim
    st = build_protein_model(n_residues=30, seed=3)
    for res in st[0][0]:
        for a in res:
            a.pos = type(a.pos)(a.pos.x + 500.0, a.pos.y, a.pos.z)
    write_model(tmp_path / "far.cif", st)
    write_map(tmp_path / "lq.mrc", m.with_data(np.full(m.shape, 0.5, np.float32)))
    rc = main(["localq", "compare", str(folder / "map.mrc"), str(tmp_path / "lq.mrc"), str(tmp_path / "far.cif")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "far.cif" in err[0]
