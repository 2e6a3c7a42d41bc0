"""Simulated micrographs: particles where the ground truth says, no overlaps, junk truth, determinism."""

import numpy as np
import pytest

from deepqs.errors import InputError
from deepqs.simulate import (
    ctf,
    default_particle,
    electron_wavelength_A,
    euler_matrix,
    particle_stack,
    protein_atoms,
    simulate_micrographs,
)

SHAPE = (768, 896)
JUNK = {"ice_blobs": 2, "carbon_edge": 1, "aggregates": 1}


@pytest.fixture(scope="module")
def noisy():
    return simulate_micrographs(n=2, shape=SHAPE, pixel_size=1.5, n_particles=25, seed=7, junk=JUNK)


@pytest.fixture(scope="module")
def clean():
    return simulate_micrographs(n=2, shape=SHAPE, pixel_size=1.5, n_particles=25, seed=7, junk=JUNK, noise=False)


def _disk_means(img, xy, radius):
    """Mean of ``img`` within ``radius`` pixels of each (x, y) (vectorised over a small box)."""
    r = int(np.ceil(radius))
    off = np.arange(-r, r + 1)
    inside = (off[:, None] ** 2 + off[None, :] ** 2) <= radius ** 2
    boxes = particle_stack(img, xy, 2 * r + 1)
    return (boxes * inside).sum(axis=(1, 2)) / inside.sum()


def _background_points(m, n, seed):
    """Random points whose disk of one particle radius avoids particles and junk."""
    rng = np.random.default_rng(seed)
    r = m.particle_diameter_px / 2
    ny, nx = m.image.shape
    pts = rng.uniform([r, r], [nx - 1 - r, ny - 1 - r], size=(20 * n, 2))
    busy = m.particle_mask | m.junk_mask
    ok = ~_disk_means(busy.astype(np.float32), pts, r).astype(bool)
    return pts[ok][:n]


def test_basic_properties(noisy):
    assert len(noisy) == 2
    for m in noisy:
        assert m.image.shape == SHAPE and m.image.dtype == np.float32
        assert m.pixel_size_A == 1.5
        assert m.coordinates.shape == (25, 2) and m.angles_deg.shape == (25, 3)
        assert 1.0 <= m.defocus_um <= 2.5
        assert 60.0 < m.particle_diameter_A < 110.0          # the C4 tetramer
        assert m.particle_diameter_px == pytest.approx(m.particle_diameter_A / 1.5)
        assert m.particle_mask.shape == m.carbon_mask.shape == m.junk_mask.shape == SHAPE
        assert np.all((m.angles_deg[:, 1] >= 0) & (m.angles_deg[:, 1] <= 180))


def test_particles_do_not_overlap_and_keep_off_edges(noisy):
    for m in noisy:
        d = m.particle_diameter_px
        xy = m.coordinates
        dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
        dist[np.diag_indices(len(xy))] = np.inf
        assert dist.min() >= d - 1e-6
        ny, nx = m.image.shape
        assert np.all(xy[:, 0] >= d / 2) and np.all(xy[:, 0] <= nx - 1 - d / 2)
        assert np.all(xy[:, 1] >= d / 2) and np.all(xy[:, 1] <= ny - 1 - d / 2)
        # good particles sit clear of the junk
        i = np.rint(xy).astype(int)
        assert not m.junk_mask[i[:, 1], i[:, 0]].any()


@pytest.mark.parametrize("which", ["clean", "noisy"])
def test_coordinates_land_on_dark_particles(which, request):
    for m in request.getfixturevalue(which):
        r = m.particle_diameter_px / 2
        at_particles = _disk_means(m.image, m.coordinates, r / 2)
        background = _disk_means(m.image, _background_points(m, 60, 1), r / 2)
        assert len(background) >= 30
        # protein is darker than the background, for at least 90 % of the particles
        assert np.mean(at_particles < np.median(background)) >= 0.9
        if which == "clean":   # without noise, darker than nearly all background spots
            assert np.mean(at_particles < np.percentile(background, 5)) >= 0.9


def test_same_layout_with_and_without_noise(noisy, clean):
    for a, b in zip(noisy, clean):
        np.testing.assert_array_equal(a.coordinates, b.coordinates)
        np.testing.assert_array_equal(a.angles_deg, b.angles_deg)
        assert a.defocus_um == b.defocus_um
        noise = a.image - b.image
        assert noise.std() == pytest.approx(1.0, rel=0.02) and abs(noise.mean()) < 0.01
        # the particle signal has the requested SNR over the particle disks
        assert b.image[b.particle_mask].var() == pytest.approx(0.1, rel=0.35)


def test_determinism_and_independence_of_n(noisy):
    again = simulate_micrographs(n=1, shape=SHAPE, pixel_size=1.5, n_particles=25, seed=7, junk=JUNK)
    np.testing.assert_array_equal(again[0].image, noisy[0].image)
    np.testing.assert_array_equal(again[0].coordinates, noisy[0].coordinates)
    other = simulate_micrographs(n=1, shape=SHAPE, pixel_size=1.5, n_particles=25, seed=8, junk=JUNK)
    assert not np.allclose(other[0].coordinates, noisy[0].coordinates)
    assert not np.array_equal(noisy[0].image, noisy[1].image)


def test_junk_ground_truth(clean):
    for m in clean:
        kinds = [j["kind"] for j in m.junk]
        assert kinds.count("carbon_edge") == 1 and kinds.count("ice_blob") == 2 and kinds.count("aggregate") >= 1
        ny, nx = m.image.shape
        yy, xx = np.mgrid[:ny, :nx]
        for j in m.junk:
            assert len(j["center_xy"]) == 2
            if j["kind"] == "carbon_edge":
                # the mask is exactly one side of the edge
                if j["shape"] == "line":
                    nrm = np.array(j["normal_xy"])
                    sd = (xx - j["center_xy"][0]) * nrm[0] + (yy - j["center_xy"][1]) * nrm[1]
                else:
                    cx, cy = j["circle_center_xy"]
                    sd = np.hypot(xx - cx, yy - cy) - j["radius_px"]
                assert np.all(m.carbon_mask[sd > 1.0]) and not np.any(m.carbon_mask[sd < -1.0])
                assert m.carbon_mask.mean() == pytest.approx(j["area_fraction"])
                assert 0.1 < j["area_fraction"] < 0.4
                # carbon is darker than the open ice, away from blobs and particles
                free = ~(m.junk_mask & ~m.carbon_mask) & ~m.particle_mask
                assert m.image[m.carbon_mask & free].mean() < m.image[~m.carbon_mask & free].mean() - 0.5
            elif j["kind"] == "ice_blob":
                x, y = np.rint(j["center_xy"]).astype(int)
                assert j["radius_px"] > 0
                assert np.sign(m.image[y, x]) == np.sign(j["contrast"])
                assert abs(m.image[y, x]) > 0.8
                assert m.junk_mask[y, x] and not m.carbon_mask[y, x]
            else:
                members = np.array(j["member_xy"])
                assert j["n_particles"] == len(members) >= 3
                assert np.all(np.linalg.norm(members - j["center_xy"], axis=1) < j["radius_px"])
                # members overlap: each has a neighbour closer than one particle diameter
                d = np.linalg.norm(members[:, None] - members[None], axis=-1)
                d[np.diag_indices(len(members))] = np.inf
                assert np.all(d.min(axis=1) < m.particle_diameter_px)
                # the aggregate is dark like particles
                assert _disk_means(m.image, members, m.particle_diameter_px / 4).mean() < 0


def test_no_junk_by_default():
    m = simulate_micrographs(n=1, shape=(256, 256), n_particles=3, atoms=protein_atoms(), seed=0)[0]
    assert m.junk == [] and not m.carbon_mask.any() and not m.junk_mask.any()
    assert len(m.coordinates) == 3


def test_particle_stack():
    img = np.arange(100, dtype=np.float32).reshape(10, 10)
    boxes = particle_stack(img, np.array([[4.2, 5.0], [0.0, 0.0], [9.0, 9.0]]), 4)
    assert boxes.shape == (3, 4, 4) and boxes.dtype == np.float32
    assert boxes[0, 2, 2] == img[5, 4]                      # box centre = nearest pixel to (x, y)
    np.testing.assert_array_equal(boxes[0], img[3:7, 2:6])
    assert np.all(boxes[1, :2, :] == 0) and np.all(boxes[1, :, :2] == 0) and boxes[1, 2, 2] == img[0, 0]
    assert np.all(boxes[2, 3, :] == 0) and boxes[2, 2, 2] == img[9, 9]
    with pytest.raises(InputError):
        particle_stack(img[0], np.zeros((1, 2)), 4)


def test_euler_matrix_and_ctf():
    m = euler_matrix(np.array([10.0, 0.0]), np.array([20.0, 0.0]), np.array([30.0, 0.0]))
    np.testing.assert_allclose(m[1], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(m[0] @ m[0].T, np.eye(3), atol=1e-12)
    assert np.linalg.det(m[0]) == pytest.approx(1.0)

    def rz(a):
        c, s = np.cos(np.radians(a)), np.sin(np.radians(a))
        return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])

    def ry(a):
        c, s = np.cos(np.radians(a)), np.sin(np.radians(a))
        return np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])

    np.testing.assert_allclose(m[0], rz(30) @ ry(20) @ rz(10), atol=1e-12)
    assert electron_wavelength_A(300) == pytest.approx(0.01969, abs=1e-5)
    assert electron_wavelength_A(200) == pytest.approx(0.02508, abs=1e-5)
    assert ctf(np.array(0.0), 2.0, amplitude_contrast=0.1) == pytest.approx(-0.1)
    # first zero of the CTF (Cs negligible at low k): sqrt(1 - A²) sin χ = -A cos χ
    k2 = np.linspace(0, 1 / 15.0 ** 2, 2000)
    c = ctf(k2, 2.0)
    assert np.all(c[:50] < 0)                               # protein dark at low frequency


def test_bad_parameters():
    atoms = protein_atoms()
    with pytest.raises(InputError, match="junk"):
        simulate_micrographs(shape=(64, 64), n_particles=0, atoms=atoms, junk=["dust"])
    with pytest.raises(InputError):
        simulate_micrographs(shape=(64, 64), pixel_size=0.0, atoms=atoms)
    with pytest.raises(InputError):
        simulate_micrographs(shape=(64, 64), defocus_um=-1.0, atoms=atoms)


def test_default_particle_is_cached():
    assert default_particle() is default_particle()
