"""deepqs.io.models: reading PDB/mmCIF, per-atom arrays, score columns, map/model register."""

import gzip

import gemmi
import mrcfile
import numpy as np
import pytest
from helpers import assert_input_error
from scipy.ndimage import map_coordinates

from deepqs.errors import InputError
from deepqs.io import (
    MapData,
    atoms_from_structure,
    check_model_in_map,
    read_atom_site_column,
    read_atoms,
    read_map,
    read_model,
    write_model,
)


def _atom_line(rec, serial, name, alt, resn, chain, resseq, icode, xyz, occ, b, el):
    return (
        f"{rec:<6}{serial:>5} {name:<4}{alt:1}{resn:>3} {chain:1}{resseq:>4}{icode:1}   "
        f"{xyz[0]:8.3f}{xyz[1]:8.3f}{xyz[2]:8.3f}{occ:6.2f}{b:6.2f}          {el:>2}"
    )


# serial, record, name, altloc, resname, chain, resseq, icode, xyz, occ, b, element
ROWS = [
    ("ATOM", " N  ", "", "ALA", "A", 1, "", (1.0, 2.0, 3.0), 1.0, 10.0, "N"),
    ("ATOM", " CA ", "", "ALA", "A", 1, "", (2.0, 2.5, 3.5), 1.0, 11.0, "C"),
    ("ATOM", " CB ", "A", "ALA", "A", 1, "", (3.0, 2.5, 3.5), 0.6, 12.0, "C"),
    ("ATOM", " CB ", "B", "ALA", "A", 1, "", (3.1, 2.4, 3.6), 0.4, 13.0, "C"),
    ("ATOM", " H  ", "", "ALA", "A", 1, "", (0.5, 2.0, 3.0), 1.0, 14.0, "H"),
    ("ATOM", " N  ", "", "GLY", "A", 1, "A", (4.0, 5.0, 6.0), 1.0, 15.0, "N"),
    ("ATOM", " CA ", "", "GLY", "B", 5, "", (7.0, 8.0, 9.0), 1.0, 16.0, "C"),
    ("ATOM", " D  ", "", "GLY", "B", 5, "", (7.5, 8.0, 9.0), 1.0, 17.0, "D"),
    ("HETATM", "FE  ", "", "HEM", "B", 101, "", (10.0, 11.0, 12.0), 1.0, 18.0, "FE"),
    ("HETATM", " O  ", "", "HOH", "B", 201, "", (13.0, 14.0, 15.0), 1.0, 19.0, "O"),
]


def _pdb_text():
    lines = ["CRYST1   50.000   50.000   50.000  90.00  90.00  90.00 P 1           1"]
    for i, r in enumerate(ROWS, start=1):
        lines.append(_atom_line(r[0], i, *r[1:]))
    lines.append("END")
    return "\n".join(lines) + "\n"


@pytest.fixture
def pdb_file(tmp_path):
    path = tmp_path / "small.pdb"
    path.write_text(_pdb_text())
    return path




def test_atoms_from_pdb(pdb_file):
    a = read_atoms(pdb_file)
    assert len(a) == len(ROWS)
    np.testing.assert_allclose(a.xyz, [r[7] for r in ROWS])
    assert list(a.element) == ["N", "C", "C", "C", "H", "N", "C", "D", "FE", "O"]
    assert list(a.name) == [r[1].strip() for r in ROWS]
    assert list(a.altloc) == ["", "", "A", "B", "", "", "", "", "", ""]
    assert list(a.chain) == [r[4] for r in ROWS]
    assert list(a.resseq) == [1, 1, 1, 1, 1, 1, 5, 5, 101, 201]
    assert list(a.icode) == ["", "", "", "", "", "A", "", "", "", ""]
    assert list(a.resname) == [r[3] for r in ROWS]
    np.testing.assert_allclose(a.occupancy, [r[8] for r in ROWS])
    np.testing.assert_allclose(a.b_iso, [r[9] for r in ROWS])
    assert list(a.is_hydrogen) == [False, False, False, False, True, False, False, True, False, False]
    assert list(a.is_hetero) == [False] * 8 + [True, True]
    assert list(a.is_water) == [False] * 9 + [True]
    assert a.xyz.dtype == np.float64 and a.resseq.dtype == np.int64
    sub = a.select(~a.is_hydrogen)
    assert len(sub) == 8 and "H" not in set(sub.element)


def test_mmcif_is_detected_by_content_and_gz(tmp_path, pdb_file):
    st = read_model(pdb_file)
    cif_text = st.make_mmcif_document().as_string()
    misnamed = tmp_path / "really_cif.pdb"
    misnamed.write_text(cif_text)
    a = read_atoms(misnamed)
    b = read_atoms(pdb_file)
    np.testing.assert_allclose(a.xyz, b.xyz)
    assert list(a.altloc) == list(b.altloc) and list(a.icode) == list(b.icode)
    assert list(a.is_hetero) == list(b.is_hetero)
    gz = tmp_path / "model.cif.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(cif_text)
    assert len(read_atoms(gz)) == len(ROWS)
    assert read_model(misnamed).input_format == gemmi.CoorFormat.Mmcif


def test_empty_chains_removed_and_entities_set(pdb_file):
    st = read_model(pdb_file)
    assert all(len(ch) > 0 for ch in st[0])
    assert len(st.entities) >= 2  # polymer(s), non-polymer, water


def test_write_mmcif_with_score_column(tmp_path, pdb_file):
    st = read_model(pdb_file)
    q = np.linspace(-0.5, 0.9, len(ROWS))
    q[4] = np.nan  # hydrogen: not scored
    out = tmp_path / "scored.cif"
    write_model(out, st, {"Q-score": q, "other_score": q * 2})
    # raw mmCIF: the extra item is there with %.6f values, '?' for NaN
    block = gemmi.cif.read(str(out)).sole_block()
    col = block.find_values("_atom_site.Q-score")
    assert len(col) == len(ROWS)
    assert col[0] == "%.6f" % q[0] and col[4] == "?" and col[-1] == "0.900000"
    got = read_atom_site_column(out, "Q-score")
    np.testing.assert_allclose(got[~np.isnan(q)], q[~np.isnan(q)], atol=5e-7)
    assert np.isnan(got[4])
    np.testing.assert_allclose(read_atom_site_column(out, "other_score")[:2], q[:2] * 2, atol=5e-7)
    # and it is still a model gemmi reads, atoms unchanged
    a = read_atoms(out)
    b = atoms_from_structure(st)
    np.testing.assert_allclose(a.xyz, b.xyz)
    assert list(a.name) == list(b.name) and list(a.altloc) == list(b.altloc)
    with pytest.raises(InputError, match="no _atom_site.missing"):
        read_atom_site_column(out, "missing")


def test_write_pdb_puts_score_in_bfactor(tmp_path, pdb_file):
    st = read_model(pdb_file)
    q = np.round(np.linspace(-0.5, 0.9, len(ROWS)), 2)
    out = tmp_path / "scored.pdb"
    write_model(out, st, {"Q-score": q})
    a = read_atoms(out)
    np.testing.assert_allclose(a.b_iso, q, atol=0.005)
    np.testing.assert_allclose(a.xyz, read_atoms(pdb_file).xyz)
    # the input structure is not modified
    np.testing.assert_allclose(atoms_from_structure(st).b_iso, [r[9] for r in ROWS])
    with pytest.raises(ValueError, match="bfactor_column"):
        write_model(tmp_path / "two.pdb", st, {"a": q, "b": q})
    write_model(tmp_path / "two.pdb", st, {"a": q, "b": -q}, bfactor_column="b")
    np.testing.assert_allclose(read_atoms(tmp_path / "two.pdb").b_iso, -q, atol=0.005)
    # fmt overrides the extension
    write_model(tmp_path / "as_cif.pdb", st, {"Q-score": q}, fmt="mmcif")
    assert (tmp_path / "as_cif.pdb").read_text().startswith("data_")


def test_write_model_checks_column_length(tmp_path, pdb_file):
    st = read_model(pdb_file)
    with pytest.raises(ValueError, match="atoms"):
        write_model(tmp_path / "x.cif", st, {"Q-score": np.zeros(3)})
    assert not (tmp_path / "x.cif").exists()


def test_write_model_round_trip_real(shared_data, tmp_path):
    src = shared_data / "qscore" / "emd30342_7cec_A" / "model.cif"
    st = read_model(src)
    a = atoms_from_structure(st)
    assert len(a) == 4308 and not a.is_hydrogen.any() and not a.is_hetero.any()
    q = np.sin(np.arange(len(a)))
    write_model(tmp_path / "q.cif", st, {"Q-score": q})
    np.testing.assert_allclose(read_atom_site_column(tmp_path / "q.cif", "Q-score"), q, atol=5e-7)
    # MapQ's own output uses the item name Q_score; the same reader gets it
    ref = read_atom_site_column(shared_data / "qscore" / "emd30342_7cec_A" / "mapq_sigma0.6_single.cif", "Q_score")
    assert ref.size == 4308 and -1 <= np.nanmin(ref) and np.nanmax(ref) <= 1


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------
def test_missing_model(tmp_path):
    with pytest.raises(InputError) as exc:
        read_model(tmp_path / "nope.pdb")
    assert_input_error(exc, "nope.pdb", "not found")


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("empty.pdb", b"", ["no atoms"]),
        ("end_only.pdb", b"END\n", ["no atoms"]),
        ("notes.pdb", b"This is not a model.\nJust some text.\n", ["no atoms"]),
        ("empty_model.cif", b"data_x\n_cell.length_a 10\n", ["no atoms"]),
        ("broken.cif", b"data_x\nloop_\n_atom_site.id\n_atom_site.type_symbol\n1\n", ["cannot parse", "mmCIF"]),
        ("binary.cif", bytes(range(256)) * 4, ["binary"]),
    ],
)
def test_bad_models(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as exc:
        read_model(path)
    assert_input_error(exc, path, *words)


# ------------------------------------------------------------------------------------------
# model inside the map
# ------------------------------------------------------------------------------------------
def test_check_model_in_map(pdb_file, tmp_path):
    a = read_atoms(pdb_file)
    m = MapData(np.zeros((10, 10, 10), np.float32), voxel_size=1.0, origin=(0.0, 0.0, 0.0), path="m.mrc")
    # box x, y, z in [0, 9]: atoms with all coordinates <= 9 are inside
    inside = np.all((a.xyz >= 0) & (a.xyz <= 9), axis=1).mean()
    assert check_model_in_map(a, m) == pytest.approx(inside)
    assert 0 < inside < 1
    with pytest.raises(InputError, match="only"):
        check_model_in_map(a, m, path=pdb_file, min_fraction=0.99)
    far = MapData(np.zeros((10, 10, 10), np.float32), voxel_size=1.0, origin=(500.0, 0.0, 0.0), path="far.mrc")
    with pytest.raises(InputError) as exc:
        check_model_in_map(a, far, path=pdb_file)
    assert_input_error(exc, pdb_file, "model lies entirely outside the map", "far.mrc")
    assert check_model_in_map(np.array([[5.0, 5.0, 5.0]]), m) == 1.0


# ------------------------------------------------------------------------------------------
# real map + model pairs: origin and axis handling put the atoms on density
# ------------------------------------------------------------------------------------------
def _density_z(m: MapData, xyz: np.ndarray) -> float:
    """Mean trilinear map value at the atoms, in standard deviations above the map mean."""
    idx = m.xyz_to_index(xyz)  # (n, 3) as x, y, z
    vals = map_coordinates(m.data, idx[:, ::-1].T, order=1, mode="constant", cval=0.0)
    d = m.data.astype(np.float64)
    return float((vals.mean() - d.mean()) / d.std())


PAIRS = [
    ("maps/header_edge_cases/other_repos/cctbx_non_zero_origin_map.ccp4",
     "maps/header_edge_cases/other_repos/cctbx_non_zero_origin_model.pdb", 86, 5.0),
    ("maps/header_edge_cases/other_repos/cctbx_cctbx_D7.ccp4",
     "maps/header_edge_cases/other_repos/cctbx_cctbx_D7.pdb", 294, 4.5),
    ("qscore/emd30342_7cec_A/map.mrc", "qscore/emd30342_7cec_A/model.cif", 4308, 3.0),
    ("lowres/2dqj_10A_tempy.mrc", "lowres/2DQJ.pdb", 2721, 3.0),
]


@pytest.mark.parametrize("map_name, model_name, n_atoms, z_min", PAIRS)
def test_model_on_density(shared_data, map_name, model_name, n_atoms, z_min):
    m = read_map(shared_data / map_name)
    a = read_atoms(shared_data / model_name)
    assert len(a) == n_atoms
    assert check_model_in_map(a, m) > 0.5
    z = _density_z(m, a.xyz)
    assert z > z_min
    # ignoring the origin loses the fit (except D7, whose origin is 0 anyway)
    if np.any(m.origin != 0):
        shifted = MapData(m.data, m.voxel_size, np.zeros(3))
        assert _density_z(shifted, a.xyz) < 0.5


def test_axis_order_matters_for_d7(shared_data):
    """D7 is stored with mapc/mapr/maps = 3,2,1: the file-order array does not fit the model."""
    path = shared_data / "maps/header_edge_cases/other_repos/cctbx_cctbx_D7.ccp4"
    a = read_atoms(shared_data / "maps/header_edge_cases/other_repos/cctbx_cctbx_D7.pdb")
    m = read_map(path)
    with mrcfile.open(str(path), permissive=True) as mrc:
        file_order = np.array(mrc.data, dtype=np.float32)
    wrong = MapData(file_order, m.voxel_size, m.origin)
    assert _density_z(m, a.xyz) > 4.5
    assert _density_z(wrong, a.xyz) < 2.0


def test_nstart_would_misplace_tempy_model(shared_data):
    m = read_map(shared_data / "lowres" / "2dqj_10A_tempy.mrc")
    a = read_atoms(shared_data / "lowres" / "2DQJ.pdb")
    nstart_origin = np.array([-13, -13, -12]) * m.voxel_size
    assert _density_z(MapData(m.data, m.voxel_size, nstart_origin), a.xyz) < 1.0
    assert _density_z(m, a.xyz) > 3.0
