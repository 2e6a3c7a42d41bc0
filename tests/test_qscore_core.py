"""Q-score engine on synthetic data: sphere points, sampling rule, interpolation, edge cases."""

import math

import numpy as np
import pytest

from deepqs.errors import InputError
from deepqs.io import MapData
from deepqs.io.atoms import Atoms
from deepqs.qscore import compute_qscores
from deepqs.qscore.core import QScorer, shell_samples
from deepqs.qscore.interp import Interpolator
from deepqs.qscore.sphere import shell_radii, spiral_points, spiral_table, try_sizes


# ----------------------------------------------------------------------------- helpers
def make_atoms(xyz, element=None, resseq=None, name=None, resname=None, chain=None, altloc=None):
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    n = xyz.shape[0]
    element = np.array(element if element is not None else ["C"] * n)
    resname = np.array(resname if resname is not None else ["ALA"] * n)
    return Atoms(
        xyz=xyz, element=element, b_iso=np.full(n, 30.0), occupancy=np.ones(n),
        chain=np.array(chain if chain is not None else ["A"] * n),
        resseq=np.array(resseq if resseq is not None else np.arange(1, n + 1), dtype=np.int64),
        icode=np.array([""] * n), resname=resname,
        name=np.array(name if name is not None else ["CA"] * n),
        altloc=np.array(altloc if altloc is not None else [""] * n),
        is_hetero=np.zeros(n, dtype=bool), is_water=np.isin(resname, ["HOH"]),
        is_hydrogen=np.isin(element, ["H", "D"]))


def gaussian_map(centres, sigma=0.6, voxel=0.25, size=64, origin=(-8.0, -8.0, -8.0), height=1.0):
    """A map holding Gaussians of width ``sigma`` at ``centres`` (Å)."""
    ax = np.arange(size) * voxel
    z, y, x = np.meshgrid(ax + origin[2], ax + origin[1], ax + origin[0], indexing="ij")
    data = np.zeros((size, size, size))
    for c in np.atleast_2d(centres):
        d2 = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2
        data += height * np.exp(-d2 / (2 * sigma ** 2))
    return MapData(data.astype(np.float32), voxel, origin)


def brute_shell(centre, others, r):
    """MapQ's rule for one shell, point by point (the reference for the vectorised code)."""
    out = 0.9 * r
    for n in try_sizes():
        pts = np.asarray(centre) + spiral_points(n) * r
        keep = []
        for p in pts:
            v = p - others
            d2 = (v[:, 0] * v[:, 0] + v[:, 1] * v[:, 1]) + v[:, 2] * v[:, 2]
            if not np.any(d2 < out * out):
                keep.append(p)
        if len(keep) >= 8:
            return np.array(keep)
    return np.zeros((0, 3))


def brute_q(mapdata, xyz, i, sigma=0.6):
    """Reference Q for atom ``i`` with scipy's trilinear interpolation (float64)."""
    from scipy.ndimage import map_coordinates

    def values(p):
        idx = (np.atleast_2d(p) - mapdata.origin) / mapdata.voxel_size
        inside = np.all((idx >= 0) & (idx <= mapdata.grid_size - 1), axis=1)
        v = map_coordinates(mapdata.data.astype(np.float64), idx[:, ::-1].T, order=1, mode="nearest")
        return np.where(inside, v, 0.0)

    vals = [values(xyz[i])[0]] * 8
    rs = [0.0] * 8
    for r in shell_radii():
        pts = brute_shell(xyz[i], xyz, r)
        if len(pts):
            vals += list(values(pts))
            rs += [r] * len(pts)
    v = np.array(vals)
    g = np.exp(-0.5 * (np.array(rs) / sigma) ** 2)
    a, b = v - v.mean(), g - g.mean()
    den = math.sqrt((a * a).sum() * (b * b).sum())
    return 0.0 if den == 0 else float((a * b).sum() / den)


# ----------------------------------------------------------------------------- sphere points
def test_shell_radii_accumulate_like_mapq():
    r = shell_radii()
    assert len(r) == 20
    assert r[0] == 0.1 and r[1] == 0.2
    assert r[2] == 0.30000000000000004          # 0.1 + 0.1 + 0.1, not 0.3
    assert r[2] != 0.3
    assert r[-1] == 2.0000000000000004


def test_spiral_points_saff_kuijlaars():
    sizes = try_sizes()
    assert sizes[0] == 8 and sizes[-1] == 106 and len(sizes) == 50
    table = spiral_table()
    assert sum(len(t) for t in table) == 2850
    for n, pts in zip(sizes, table):
        assert pts.shape == (n, 3)
        np.testing.assert_allclose(np.linalg.norm(pts, axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(pts[0], [0.0, 0.0, -1.0], atol=1e-15)   # south pole first
        np.testing.assert_allclose(pts[-1], [0.0, 0.0, 1.0], atol=1e-15)   # north pole last
        # heights are evenly spaced
        np.testing.assert_allclose(np.diff(pts[:, 2]), 2.0 / (n - 1), atol=1e-12)
    # the azimuth recurrence for N = 8, k = 2 and 3
    n = 8
    h2, h3 = -1 + 2 / 7, -1 + 4 / 7
    t2 = 3.6 / math.sqrt(n * (1 - h2 * h2)) % (2 * math.pi)
    t3 = (t2 + 3.6 / math.sqrt(n * (1 - h3 * h3))) % (2 * math.pi)
    p = spiral_points(8)
    assert math.atan2(p[1, 1], p[1, 0]) % (2 * math.pi) == pytest.approx(t2)
    assert math.atan2(p[2, 1], p[2, 0]) % (2 * math.pi) == pytest.approx(t3)


# ----------------------------------------------------------------------------- sampling rule
def test_neighbour_at_one_angstrom_removes_points():
    centre = np.zeros(3)
    nb = np.array([1.0, 0.0, 0.0])
    others = np.stack([centre, nb])
    changed = []
    for r in shell_radii():
        pts = shell_samples(centre, others, r)
        ref = brute_shell(centre, others, r)
        np.testing.assert_array_equal(pts[np.lexsort(pts.T)], ref[np.lexsort(ref.T)])
        assert len(pts) >= 8
        np.testing.assert_allclose(np.linalg.norm(pts - centre, axis=1), r, atol=1e-12)
        assert np.all(np.linalg.norm(pts - nb, axis=1) >= 0.9 * r)
        if not (len(pts) == 8 and np.array_equal(pts, centre + spiral_points(8) * r)):
            changed.append(r)
    # shells up to 0.5 Å cannot see the neighbour (1.9 r < 1 Å); larger ones lose points
    assert changed and min(changed) > 0.5 and len(changed) >= 10


def test_shell_samples_match_point_by_point_reference_in_a_cluster():
    rng = np.random.default_rng(3)
    xyz = rng.normal(scale=1.6, size=(14, 3))
    for i in (0, 5, 9):
        for r in shell_radii()[5::2]:
            pts = shell_samples(xyz[i], xyz, r)
            ref = brute_shell(xyz[i], xyz, r)
            assert pts.shape == ref.shape
            np.testing.assert_array_equal(pts[np.lexsort(pts.T)], ref[np.lexsort(ref.T)])


def test_all_tries_failing_adds_nothing():
    # the atom sits inside a tight shell of neighbours: at 2 Å every point is near another atom
    centre = np.zeros(3)
    shell = spiral_points(40) * 1.2
    pts = shell_samples(centre, np.vstack([centre, shell]), shell_radii()[-1])
    assert pts.shape == (0, 3)


def test_float32_search_tree_decides_ties():
    """A point 1e-5 Å inside 0.9 r in double precision, outside with float32 coordinates, stays."""
    r = shell_radii()[8]
    out = 0.9 * r
    # Centre at a large coordinate so that float32 rounding of the neighbour is ~3e-5 Å.
    for cz in np.arange(700.0, 701.0, 0.01):
        centre = np.array([0.0, 0.0, cz])
        pole = centre + np.array([0.0, 0.0, 1.0]) * r       # the last point of every try
        nb_z = pole[2] + out - 1e-5
        x32 = float(np.float32(nb_z))
        if x32 - pole[2] > out + 5e-6:                     # float32 puts it outside 0.9 r
            break
    else:
        pytest.fail("no suitable coordinate found")
    nb = np.array([0.0, 0.0, nb_z])
    assert (nb_z - pole[2]) ** 2 < out * out                # double: strictly inside
    pts = shell_samples(centre, np.vstack([centre, nb]), r)
    assert len(pts) == 8                                     # try 0 kept all 8, pole included
    assert np.any(np.all(np.isclose(pts, pole), axis=1))
    # with the neighbour a little closer both precisions agree: the pole goes, try 1 is used
    nb2 = nb - np.array([0.0, 0.0, 1e-3])
    pts2 = shell_samples(centre, np.vstack([centre, nb2]), r)
    assert len(pts2) == 9


# ----------------------------------------------------------------------------- interpolation
def test_interpolation_matches_scipy_and_reads_zero_outside():
    from scipy.ndimage import map_coordinates
    rng = np.random.default_rng(0)
    data = rng.normal(size=(9, 11, 13)).astype(np.float32)
    m = MapData(data, (1.1, 0.9, 1.3), (145.825, -12.3, 7.7))
    interp = Interpolator(m)
    idx = rng.uniform(0, 1, (500, 3)) * (m.grid_size - 1)
    pts = m.index_to_xyz(idx)
    ref = map_coordinates(data.astype(np.float64), idx[:, ::-1].T, order=1)
    # single precision like Chimera: index error ~1e-5 voxel at coordinates of ~150 Å
    np.testing.assert_allclose(interp(pts), ref, atol=2e-4)
    # grid points read the voxel; just inside the last plane is inside; beyond it reads 0
    corner = m.index_to_xyz(np.array([[11.9999, 9.9999, 7.9999], [1e-4, 1e-4, 1e-4], [12.01, 10, 8], [-0.01, 0, 0]]))
    v = interp(corner)
    assert v[0] == pytest.approx(data[8, 10, 12], abs=2e-3)
    assert v[1] == pytest.approx(data[0, 0, 0], abs=2e-3)
    assert v[2] == 0.0 and v[3] == 0.0


def test_flat_map_gives_exactly_zero():
    xyz = np.array([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.0, 1.4, 0.3]])
    for value in (3.7, 0.0, -1e-3, 1234.5):
        m = MapData(np.full((40, 40, 40), value, dtype=np.float32), 0.37, (-7.1, -7.3, -7.05))
        res = compute_qscores(m, make_atoms(xyz), threads=1)
        assert np.all(res.q == 0.0)


# ----------------------------------------------------------------------------- whole atoms
def test_isolated_gaussian_atom_scores_close_to_one():
    m = gaussian_map([[0.0, 0.0, 0.0]], sigma=0.6)
    res = compute_qscores(m, make_atoms([[0.0, 0.0, 0.0]]), sigma=0.6, threads=1)
    assert res.q[0] > 0.99
    wide = gaussian_map([[0.0, 0.0, 0.0]], sigma=1.5)
    assert 0.3 < compute_qscores(wide, make_atoms([[0.0, 0.0, 0.0]]), threads=1).q[0] < res.q[0]
    # an atom 1.5 Å off the density correlates negatively
    off = compute_qscores(m, make_atoms([[1.5, 0.0, 0.0]]), threads=1).q[0]
    assert off < 0.0


def test_engine_matches_point_by_point_reference():
    rng = np.random.default_rng(1)
    xyz = rng.normal(scale=2.0, size=(12, 3))
    m = gaussian_map(xyz + rng.normal(scale=0.2, size=xyz.shape), sigma=0.8, voxel=0.3,
                     size=48, origin=(-7.0, -7.1, -6.9))
    res = compute_qscores(m, make_atoms(xyz), threads=1)
    ref = np.array([brute_q(m, xyz, i) for i in range(len(xyz))])
    np.testing.assert_allclose(res.q, ref, atol=2e-5)


def test_atom_outside_the_map_is_scored_and_counted():
    m = gaussian_map([[0.0, 0.0, 0.0]])
    xyz = [[0.0, 0.0, 0.0], [30.0, 0.0, 0.0], [0.5, 0.5, 0.5]]
    res = compute_qscores(m, make_atoms(xyz), threads=1)
    assert res.n_outside == 1 and res.outside.tolist() == [False, True, False]
    assert res.q[1] == 0.0                      # every value it sees is outside: 0
    assert res.n_scored == 3


def test_model_entirely_outside_raises_input_error_naming_both_files():
    m = gaussian_map([[0.0, 0.0, 0.0]])
    m.path = "some_map.mrc"
    with pytest.raises(InputError) as exc:
        compute_qscores(m, make_atoms([[100.0, 0.0, 0.0]]), model_path="model.cif")
    assert "model.cif" in str(exc.value) and "some_map.mrc" in str(exc.value)


def test_hydrogens_take_the_q_of_their_heavy_atom_and_never_reject():
    heavy = np.array([[0.0, 0.0, 0.0], [1.52, 0.0, 0.0]])
    m = gaussian_map(heavy, sigma=0.7)
    base = compute_qscores(m, make_atoms(heavy, resseq=[1, 1]), threads=1)
    h_xyz = np.array([[-0.4, 1.0, 0.0], [1.9, -0.5, 0.9], [5.0, 5.0, 5.0]])
    xyz = np.vstack([heavy, h_xyz])
    atoms = make_atoms(xyz, element=["C", "C", "H", "H", "H"], resseq=[1, 1, 1, 1, 2],
                       name=["CA", "CB", "HA", "HB1", "H"])
    res = compute_qscores(m, atoms, threads=1)
    np.testing.assert_array_equal(res.q[:2], base.q)          # H atoms reject nothing
    assert res.q[2] == res.q[0] and res.q[3] == res.q[1]        # bonded heavy atom's Q
    assert np.isnan(res.q[4])                                    # no heavy atom near it
    assert res.scored.tolist() == [True, True, False, False, False]
    assert res.hydrogen_parent.tolist() == [-1, -1, 0, 1, -1]


def test_altlocs_reject_points_and_are_all_scored():
    xyz = np.array([[0.0, 0.0, 0.0], [1.4, 0.0, 0.0], [0.0, 1.4, 0.0]])
    m = gaussian_map(xyz, sigma=0.7)
    atoms = make_atoms(xyz, resseq=[1, 2, 2], altloc=["", "A", "B"], name=["CA", "CB", "CB"])
    res = compute_qscores(m, atoms, threads=1)
    only_a = compute_qscores(m, make_atoms(xyz[:2], resseq=[1, 2]), threads=1)
    assert res.n_scored == 3
    assert res.q[0] != only_a.q[0]             # altloc B also rejects points around atom 0


def test_worker_processes_give_identical_results(monkeypatch):
    import deepqs.qscore.core as core
    monkeypatch.setattr(core, "MIN_PARALLEL_ATOMS", 0)
    rng = np.random.default_rng(7)
    xyz = rng.uniform(-6, 6, size=(600, 3))
    m = gaussian_map(xyz[::3], sigma=0.9, voxel=0.5, size=32, origin=(-8.0, -8.0, -8.0))
    scorer = QScorer(Interpolator(m), xyz)
    one = scorer.score(xyz, threads=1, chunk=100)
    seen = []
    two = scorer.score(xyz, threads=2, chunk=100, progress=seen.append)
    np.testing.assert_array_equal(one, two)
    assert sum(seen) == len(xyz)


def test_bad_arguments():
    m = gaussian_map([[0.0, 0.0, 0.0]])
    atoms = make_atoms([[0.0, 0.0, 0.0]])
    with pytest.raises(InputError):
        compute_qscores(m, atoms, sigma=0.0)
    with pytest.raises(InputError):
        compute_qscores(m, atoms, device="tpu")
    with pytest.raises(InputError):
        compute_qscores(MapData(np.zeros((4, 4), np.float32), 1.0), atoms)
    with pytest.raises(InputError):
        compute_qscores(m, make_atoms([[0.0, 0.0, 0.0]], element=["H"]))


# ----------------------------------------------------------------------------- torch path
def test_torch_path_matches_numpy_on_cpu():
    pytest.importorskip("torch")
    from deepqs.qscore.torch_backend import score_torch
    rng = np.random.default_rng(11)
    xyz = rng.uniform(-5, 5, size=(150, 3))
    m = gaussian_map(xyz[::2] + 0.2, sigma=0.8, voxel=0.4, size=36, origin=(-7.3, -7.1, -6.9))
    numpy_q = compute_qscores(m, make_atoms(xyz), threads=1).q
    torch_q = score_torch(m, xyz, device="cpu", chunk=64)
    np.testing.assert_allclose(torch_q, numpy_q, atol=1e-12)


def test_cuda_device_without_gpu_falls_back_to_the_cpu_with_a_warning(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    m = gaussian_map([[0.0, 0.0, 0.0]])
    atoms = make_atoms([[0.0, 0.0, 0.0]])
    q = compute_qscores(m, atoms, device="cuda:0").q
    assert "running on the CPU" in capsys.readouterr().err      # never silently
    np.testing.assert_allclose(q, compute_qscores(m, atoms).q)  # the CPU numbers
    with pytest.raises(InputError, match="unknown device"):
        compute_qscores(m, atoms, device="gpu7")
