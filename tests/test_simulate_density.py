"""Model maps and simulated reconstructions: grid, atoms on density, measurable resolution, determinism."""

import numpy as np
import pytest

from deepqs.errors import InputError
from deepqs.simulate import element_weights, model_map, protein_atoms, simulate_map
from deepqs.validation import fsc, resolution_at


@pytest.fixture(scope="module")
def atoms():
    return protein_atoms()


@pytest.fixture(scope="module")
def sim35(atoms):
    return simulate_map(atoms, voxel_size=1.0, resolution=3.5, seed=1)


@pytest.fixture(scope="module")
def sim6(atoms):
    return simulate_map(atoms, voxel_size=1.5, resolution=6.0, seed=1)


def _z_at_atoms(m, atoms):
    z = (m.data - m.data.mean()) / m.data.std()
    ijk = m.xyz_to_index(atoms.xyz)
    i = np.rint(ijk).astype(int)
    return z[i[:, 2], i[:, 1], i[:, 0]]


def test_element_weights():
    np.testing.assert_array_equal(element_weights(["C", "N", "O", "S", "P", "H", "D", "FE", "zn", "X"]),
                                  [6, 7, 8, 16, 15, 1, 1, 26, 30, 6])


def test_model_map_grid_and_integral(atoms):
    m = model_map(atoms, 1.2)
    assert m.data.dtype == np.float32
    np.testing.assert_array_equal(m.voxel_size, [1.2, 1.2, 1.2])
    nz, ny, nx = m.shape
    assert nz == ny == nx and nx % 2 == 0
    # box holds the model plus 10 Å padding, the model centred on voxel n // 2
    lo, hi = atoms.xyz.min(axis=0), atoms.xyz.max(axis=0)
    assert nx * 1.2 >= (hi - lo).max() + 20.0
    np.testing.assert_allclose(m.index_to_xyz(np.full(3, nx // 2)), 0.5 * (lo + hi), atol=1e-9)
    # each atom integrates to its atomic number
    assert m.data.sum() * 1.2 ** 3 == pytest.approx(element_weights(atoms.element).sum(), rel=1e-3)
    blurred = model_map(atoms, 1.2, resolution=5.0)
    assert blurred.data.sum() * 1.2 ** 3 == pytest.approx(element_weights(atoms.element).sum(), rel=2e-3)
    assert blurred.data.max() < m.data.max()


def test_model_map_explicit_grid(atoms):
    m = model_map(atoms, (0.9, 1.0, 1.1), shape=(50, 60, 70), origin=(-30.0, -31.0, -32.0))
    assert m.shape == (50, 60, 70)
    np.testing.assert_array_equal(m.voxel_size, [0.9, 1.0, 1.1])
    np.testing.assert_array_equal(m.origin, [-30.0, -31.0, -32.0])
    # density peaks on atoms: the voxel nearest each CA is well above the mean
    ca = atoms.select(atoms.name == "CA")
    i = np.rint(m.xyz_to_index(ca.xyz)).astype(int)
    inside = np.all((i >= 0) & (i < [70, 60, 50]), axis=1)
    vals = m.data[i[inside, 2], i[inside, 1], i[inside, 0]]
    assert inside.mean() > 0.9 and np.median(vals) > 10 * m.data.mean()


def test_simulated_grid_is_exact(sim35, sim6):
    for sm, v in ((sim35, 1.0), (sim6, 1.5)):
        assert sm.voxel_size_A == v
        for m in (sm.map, sm.half1, sm.half2, sm.noise_free, sm.model_map):
            np.testing.assert_array_equal(m.voxel_size, [v, v, v])
            assert m.shape == sm.map.shape and len(set(m.shape)) == 1
            np.testing.assert_array_equal(m.origin, sm.map.origin)
            assert m.data.dtype == np.float32


@pytest.mark.parametrize("name,res", [("sim35", 3.5), ("sim6", 6.0)])
def test_resolution_is_measurable(name, res, request):
    sm = request.getfixturevalue(name)
    v = sm.voxel_size_A
    half = fsc(sm.half1, sm.half2, v)
    assert resolution_at(half, 0.143) == pytest.approx(res, rel=0.03)
    # measured half-map FSC equals the design curve (exact_fsc)
    np.testing.assert_allclose(half.fsc, sm.expected_fsc.fsc, atol=1e-5)
    # full map against the noise-free map: 0.5 at R (Rosenthal & Henderson)
    ref = fsc(sm.map, sm.noise_free, v)
    assert resolution_at(ref, 0.5) == pytest.approx(res, rel=0.03)
    # high at low resolution, low well beyond R
    k = half.frequency_invA
    assert np.all(half.fsc[(k > 0) & (k < 0.5 / res)] > 0.9)
    assert np.all(half.fsc[k > 1.3 / res] < 0.05)


def test_resolution_with_plain_independent_noise(atoms):
    sm = simulate_map(atoms, voxel_size=1.0, resolution=4.0, seed=5, exact_fsc=False)
    assert resolution_at(fsc(sm.half1, sm.half2, 1.0), 0.143) == pytest.approx(4.0, rel=0.1)
    assert resolution_at(fsc(sm.map, sm.noise_free, 1.0), 0.5) == pytest.approx(4.0, rel=0.1)


@pytest.mark.parametrize("name", ["sim35", "sim6"])
def test_atoms_sit_on_density(name, atoms, request):
    sm = request.getfixturevalue(name)
    assert _z_at_atoms(sm.map, atoms).mean() > 3.0
    assert _z_at_atoms(sm.noise_free, atoms).mean() > 3.0
    # and not on random positions in the box
    rng = np.random.default_rng(0)
    n = sm.map.shape[0]
    i = rng.integers(0, n, size=(2000, 3))
    z = (sm.map.data - sm.map.data.mean()) / sm.map.data.std()
    assert abs(z[i[:, 0], i[:, 1], i[:, 2]].mean()) < 0.3


def test_full_map_is_mean_of_halves(sim35):
    np.testing.assert_allclose(sim35.map.data, 0.5 * (sim35.half1.data + sim35.half2.data), atol=1e-5)
    assert not np.allclose(sim35.half1.data, sim35.half2.data)


def test_determinism(atoms, sim35):
    again = simulate_map(atoms, voxel_size=1.0, resolution=3.5, seed=1)
    np.testing.assert_array_equal(again.half1.data, sim35.half1.data)
    np.testing.assert_array_equal(again.map.data, sim35.map.data)
    other = simulate_map(atoms, voxel_size=1.0, resolution=3.5, seed=2)
    assert not np.allclose(other.half1.data, sim35.half1.data)
    np.testing.assert_array_equal(other.noise_free.data, sim35.noise_free.data)


def test_noise_free_option(atoms):
    sm = simulate_map(atoms, voxel_size=1.5, resolution=5.0, noise=False)
    np.testing.assert_array_equal(sm.map.data, sm.noise_free.data)
    np.testing.assert_array_equal(sm.half1.data, sm.half2.data)
    curve = fsc(sm.map, sm.noise_free, 1.5)
    np.testing.assert_allclose(curve.fsc, 1.0, atol=1e-6)


def test_local_blur_hits_surface_not_core(atoms, sim35):
    r = np.linalg.norm(atoms.xyz - atoms.xyz.mean(axis=0), axis=1)
    core = r < np.median(r) * 0.8
    surface = r > np.quantile(r, 0.95)
    g = sim35.global_B
    assert g == pytest.approx(8 * np.pi ** 2 * (0.225 * 3.5) ** 2)       # default overall B
    assert np.all(sim35.extra_b >= g - 1e-9)
    assert np.median(sim35.extra_b[core] - g) < 5.0
    assert np.mean(sim35.extra_b[surface] - g) > 20.0
    assert np.max(sim35.extra_b - g) == pytest.approx(sim35.local_blur_B)
    flat = simulate_map(atoms, voxel_size=1.5, resolution=6.0, local_blur=False, global_B=0.0, noise=False)
    assert np.all(flat.extra_b == 0.0)


def test_model_map_at_resolution_for_map_model_fsc(sim35):
    # the map of the model at R correlates well with the noise-free signal at low resolution
    curve = fsc(sim35.model_map, sim35.noise_free, 1.0)
    k = curve.frequency_invA
    assert np.all(curve.fsc[(k > 0) & (k < 1 / 6.0)] > 0.8)


def test_bad_parameters(atoms):
    with pytest.raises(InputError, match="Nyquist"):
        simulate_map(atoms, voxel_size=2.0, resolution=3.0)
    with pytest.raises(InputError, match="cubic"):
        simulate_map(atoms, voxel_size=1.0, resolution=4.0, shape=(60, 60, 64))
    with pytest.raises(InputError):
        model_map(atoms, 0.0)
    with pytest.raises(InputError):
        model_map(atoms.select(np.zeros(len(atoms), bool)), 1.0)
