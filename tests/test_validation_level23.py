"""Validation levels 2 (class averages vs map projections) and 3 (particles within classes)."""

import numpy as np
import pytest
from scipy import ndimage

from deepqs.io import write_stack
from deepqs.validation import align2d, level2, level3
from deepqs.validation import checks as C
from deepqs.validation.inputs import read_particles_star

from validation_data import BOX, VOXEL_A, clean, inputs

N_GOOD = 4


@pytest.fixture(scope="module")
def data():
    """Clean class averages (projections of the noise-free map at random views, rotated, shifted,
    lightly noisy), junk classes (smooth noise), particles (noisier views; in the last two classes a
    third are contamination disks) and the projections of the map, computed once."""
    _, sim, _ = clean()
    rng = np.random.default_rng(0)
    d = rng.standard_normal((N_GOOD, 3))
    d /= np.linalg.norm(d, axis=1)[:, None]
    pr = align2d.project(sim.noise_free.data.astype(np.float64), d)
    sd = pr.std()

    def view(p, noise):
        p = ndimage.rotate(p, rng.uniform(0, 360), reshape=False, order=1)
        p = ndimage.shift(p, rng.uniform(-3, 3, 2), order=1)
        return p + noise * sd * rng.standard_normal(p.shape)

    good = np.array([view(p, 0.3) for p in pr], np.float32)
    junk = np.array([ndimage.gaussian_filter(rng.standard_normal((BOX, BOX)), 2) for _ in range(2)], np.float32)
    yy, xx = np.mgrid[:BOX, :BOX]
    parts, lab = [], []
    for k, p in enumerate(pr):
        for i in range(30):
            if k >= N_GOOD - 2 and i % 3 == 0:
                c, r = rng.uniform(10, 54, 2), rng.uniform(3, 10)
                img = 4 * sd * ((yy - c[0]) ** 2 + (xx - c[1]) ** 2 < r * r) + sd * rng.standard_normal((BOX, BOX))
            else:
                img = view(p, 1.0)
            parts.append(img)
            lab.append(k)
    base = inputs(classes=good, classes_pixel_size=VOXEL_A)
    level2.map_projections(base)
    return dict(good=good, junk=junk, parts=np.array(parts, np.float32), labels=np.array(lab),
                projections=base.cache["projections"], sim=sim)


def _inp(data, classes, **kw):
    sim = data["sim"]
    inp = inputs(half1=sim.half1, half2=sim.half2, classes=classes, classes_pixel_size=VOXEL_A, **kw)
    inp.cache["projections"] = data["projections"]
    return inp


def test_clean_classes_match_projections(data):
    c = level2.check_2a(_inp(data, data["good"]))
    assert c.status == C.OK, c.warnings
    assert min(c.tables["classes"]["cc"]) > 0.9
    assert set(c.figures) == {"worst_classes", "cc"}


def test_junk_classes_warn(data):
    c = level2.check_2a(_inp(data, np.concatenate([data["good"], data["junk"]])))
    assert c.status == C.WARNING
    assert c.values["bad_classes"] == [N_GOOD + 1, N_GOOD + 2]
    assert max(c.tables["classes"]["cc"][N_GOOD:]) < C.MIN_CLASS_CC


def test_classes_at_another_pixel_size_are_resampled(data):
    """Class averages binned 2x (4 Å pixels) still match (two classes)."""
    binned = data["good"][:2].reshape(2, BOX // 2, 2, BOX // 2, 2).mean(axis=(2, 4))
    inp = _inp(data, binned)
    inp.classes_pixel_size = 2 * VOXEL_A
    c = level2.check_2a(inp)
    assert c.status == C.OK and min(c.tables["classes"]["cc"]) > 0.85


def test_particles_with_contaminated_classes_warn(data):
    inp = _inp(data, data["good"], particles=data["parts"], particle_classes=data["labels"],
               particles_pixel_size=VOXEL_A)
    c = level3.check_3a(inp)
    assert c.status == C.WARNING
    assert c.values["bad_classes"] == [N_GOOD - 1, N_GOOD]
    cf = c.tables["classes"]["core_fraction"]
    assert min(cf[:N_GOOD - 2]) > 0.85 and max(cf[N_GOOD - 2:]) < C.MIN_CORE_FRACTION


def test_clean_particles_pass(data):
    keep = data["labels"] < N_GOOD - 2
    inp = _inp(data, data["good"], particles=data["parts"][keep], particle_classes=data["labels"][keep],
               particles_pixel_size=VOXEL_A)
    c = level3.check_3a(inp)
    assert c.status == C.OK and c.values["classes_scored"] == N_GOOD - 2


def test_robust_mahalanobis_flags_a_third_of_far_points():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((90, 3))
    x[::3] += rng.uniform(6, 12, (30, 3)) * rng.choice([-1, 1], (30, 3))
    d = level3.robust_mahalanobis(x)
    assert np.all(d[::3] > 3) and np.mean(np.delete(d, np.s_[::3]) <= 3) > 0.9


def test_particles_star_reader(tmp_path):
    imgs = np.random.default_rng(2).standard_normal((5, 16, 16)).astype(np.float32)
    write_stack(tmp_path / "p.mrcs", imgs, 1.5)
    lines = ["data_particles", "loop_", "_rlnImageName #1", "_rlnClassNumber #2"]
    lines += [f"{i + 1:06d}@p.mrcs {1 + i % 2}" for i in range(5)]
    (tmp_path / "p.star").write_text("\n".join(lines) + "\n")
    got, cls, ps = read_particles_star(str(tmp_path / "p.star"), n_classes=2)
    np.testing.assert_array_equal(got, imgs)
    assert list(cls) == [0, 1, 0, 1, 0] and ps == pytest.approx(1.5)
