"""Q-score groupings (residue, backbone/side chain, phosphate/sugar/base, chains) and relations."""

import numpy as np
import pytest

from deepqs.io.atoms import Atoms
from deepqs.qscore import QScoreResult, relations, residue_table, summarise
from deepqs.qscore.aggregate import chain_stats, overall_stats, residue_type


def atoms_from_rows(rows):
    """rows: (chain, resseq, resname, name, element)."""
    n = len(rows)
    chain, resseq, resname, name, element = (np.array(c) for c in zip(*rows))
    return Atoms(
        xyz=np.zeros((n, 3)), element=element, b_iso=np.zeros(n), occupancy=np.ones(n),
        chain=chain, resseq=resseq.astype(np.int64), icode=np.array([""] * n), resname=resname,
        name=name, altloc=np.array([""] * n), is_hetero=np.zeros(n, bool),
        is_water=np.isin(resname, ["HOH"]), is_hydrogen=np.isin(element, ["H"]))


ROWS = [
    ("A", 1, "ALA", "N", "N"), ("A", 1, "ALA", "CA", "C"), ("A", 1, "ALA", "C", "C"),
    ("A", 1, "ALA", "O", "O"), ("A", 1, "ALA", "CB", "C"), ("A", 1, "ALA", "HA", "H"),
    ("A", 2, "GLY", "N", "N"), ("A", 2, "GLY", "CA", "C"), ("A", 2, "GLY", "C", "C"),
    ("A", 2, "GLY", "O", "O"),
    ("B", 5, "G", "P", "P"), ("B", 5, "G", "OP1", "O"), ("B", 5, "G", "O5'", "O"),
    ("B", 5, "G", "C1'", "C"), ("B", 5, "G", "C2'", "C"), ("B", 5, "G", "N9", "N"),
    ("B", 5, "G", "C8", "C"),
    ("B", 101, "MG", "MG", "MG"),
    ("W", 1, "HOH", "O", "O"), ("W", 2, "HOH", "O", "O"),
]
Q = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.5,
              0.6, 0.7, 0.8, 0.9,
              0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70,
              0.9,
              -0.2, 0.0])


def test_residue_table_groups():
    atoms = atoms_from_rows(ROWS)
    t = residue_table(atoms, Q)
    assert len(t) == 6
    assert t.type.tolist() == ["protein", "protein", "nucleic", "ion", "water", "water"]
    assert t.n_atoms.tolist() == [5, 4, 7, 1, 1, 1]                # hydrogens not counted
    assert t.q_residue[0] == pytest.approx(0.3)                     # H (0.5) left out
    assert t.q_backbone[0] == pytest.approx(0.25)                   # N CA C O
    assert t.q_sidechain[0] == pytest.approx(0.5)                   # CB
    assert t.q_backbone[1] == pytest.approx(0.75) and np.isnan(t.q_sidechain[1])   # glycine
    assert t.q_phosphate[2] == pytest.approx(0.2)                   # P OP1 O5'
    assert t.q_sugar[2] == pytest.approx(0.45)                      # C1' C2'
    assert t.q_base[2] == pytest.approx(0.65)                       # N9 C8
    assert t.q_backbone[2] == pytest.approx(0.3)                    # phosphate + sugar
    assert np.isnan(t.q_sidechain[2]) and np.isnan(t.q_base[0])
    assert t.q_residue[3] == pytest.approx(0.9)


def test_residue_table_tsv(tmp_path):
    atoms = atoms_from_rows(ROWS)
    path = tmp_path / "res.tsv"
    residue_table(atoms, Q).write_tsv(path)
    lines = path.read_text().splitlines()
    assert lines[0].split("\t")[:7] == ["chain", "resseq", "icode", "resname", "type", "n_atoms", "q_residue"]
    assert len(lines) == 7
    first = lines[1].split("\t")
    assert first[:6] == ["A", "1", "", "ALA", "protein", "5"] and first[6] == "0.300000"
    assert lines[2].split("\t")[8] == ""                           # glycine: no side chain


def test_chain_and_overall_statistics():
    atoms = atoms_from_rows(ROWS)
    chains = chain_stats(atoms, Q)
    assert [c["chain"] for c in chains] == ["A", "B", "W"]
    assert chains[0]["atoms"] == 9 and chains[0]["mean_q"] == pytest.approx(np.mean(Q[[0, 1, 2, 3, 4, 6, 7, 8, 9]]))
    o = overall_stats(atoms, Q)
    heavy = np.array([e != "H" for *_, e in ROWS])
    water = np.array([r[2] == "HOH" for r in ROWS])
    assert o["atoms"] == 19 and o["mean_q"] == pytest.approx(Q[heavy].mean())
    assert o["median_q"] == pytest.approx(np.median(Q[heavy]))
    assert o["atoms_no_water"] == 17 and o["mean_q_no_water"] == pytest.approx(Q[heavy & ~water].mean())


def test_summary_keys():
    atoms = atoms_from_rows(ROWS)
    scored = ~atoms.is_hydrogen
    res = QScoreResult(q=Q, scored=scored, outside=np.zeros(len(Q), bool), sigma=0.6,
                       hydrogen_parent=np.full(len(Q), -1))
    s = summarise(atoms, res, resolution=3.9)
    for key in ("sigma_A", "atoms", "mean_q", "median_q", "mean_q_no_water", "median_q_no_water",
                "chains", "relation", "expected_q", "implied_resolution_A", "resolution_A"):
        assert key in s
    assert s["atoms"]["total"] == 20 and s["atoms"]["hydrogens"] == 1 and s["atoms"]["waters"] == 2
    assert s["molecule_type"] == "protein"


def test_residue_types():
    assert residue_type("ALA") == "protein" and residue_type("MSE") == "protein"
    assert residue_type("HSD") == "protein"
    assert residue_type("A") == "nucleic" and residue_type("DT") == "nucleic"
    assert residue_type("HOH") == "water"
    assert residue_type("ZN", 1) == "ion" and residue_type("NAG", 14) == "ligand"


# ----------------------------------------------------------------------------- relations
def test_linear_relations_at_3_9():
    assert relations.expected_q(3.9) == pytest.approx(-0.1775 * 3.9 + 1.1192)   # 0.42695
    assert relations.expected_q(3.9) == pytest.approx(0.42695)
    assert relations.expected_q(3.9, kind="nucleic") == pytest.approx(-0.1377 * 3.9 + 0.9973)
    assert relations.expected_q(3.9, sigma=0.4) == pytest.approx(-0.1866 * 3.9 + 1.1242)
    assert relations.expected_q(3.9, sigma=0.4, kind="rna") == pytest.approx(-0.1465 * 3.9 + 0.9436)
    assert relations.implied_resolution(0.42695) == pytest.approx(3.9)
    # MapQ's header for 7CEC chain A: Q 0.457 -> 3.73 Å
    assert round(relations.implied_resolution(0.45704), 2) == 3.73


def test_cubic_relations_at_3_9():
    r = 3.9
    q6 = -0.0019064058 * r ** 3 + 0.0499875375 * r ** 2 - 0.4513945578 * r + 1.5361860733
    q4 = -0.0020025943 * r ** 3 + 0.0504435042 * r ** 2 - 0.4343663048 * r + 1.3945104702
    assert relations.expected_q(r, relation="cubic") == pytest.approx(q6)
    assert relations.expected_q(r, sigma=0.4, relation="cubic") == pytest.approx(q4)
    assert relations.implied_resolution(q6, relation="cubic") == pytest.approx(r)
    assert relations.implied_resolution(q4, sigma=0.4, relation="cubic") == pytest.approx(r)
    # monotonic: a better mean Q means a better (smaller) resolution
    assert relations.implied_resolution(0.7, relation="cubic") < relations.implied_resolution(0.4, relation="cubic")
    assert "cubic" in relations.describe(0.6, relation="cubic")
    assert "-0.1775" in relations.describe(0.6)


def test_no_relation_for_other_sigmas():
    assert relations.expected_q(3.0, sigma=0.5) is None
    assert relations.implied_resolution(0.5, sigma=0.5) is None
    assert relations.describe(0.5) is None
    assert relations.has_relation(0.4) and not relations.has_relation(0.7)
