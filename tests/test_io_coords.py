"""deepqs.io.coords: particle coordinate formats, the y-flip rule and the on-density check."""

import csv

import numpy as np
import pytest
from helpers import assert_input_error

from deepqs.errors import InputError
from deepqs.io import (
    Coordinates,
    flip_y_coordinates,
    fraction_on_density,
    micrograph_key,
    read_coordinates,
    read_coordinates_by_micrograph,
    read_micrograph,
    write_coordinates,
    y_flip_report,
)
from deepqs.io.coords import coordinate_format




def _coords(n=5, seed=0, score=True, mic=None):
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(50, 900, n), 2)
    y = np.round(rng.uniform(50, 700, n), 2)
    s = np.round(rng.uniform(0, 1, n), 6) if score else None
    return Coordinates(x, y, s, mic)


# ------------------------------------------------------------------------------------------
# the dataclass
# ------------------------------------------------------------------------------------------
def test_coordinates_dataclass():
    c = Coordinates([1, 2, 3], [4, 5, 6], None, "mic.mrc")
    assert len(c) == 3 and c.x.dtype == np.float64
    np.testing.assert_array_equal(c.xy, [[1, 4], [2, 5], [3, 6]])
    assert len(c.select(c.x > 1)) == 2
    np.testing.assert_array_equal(c.scaled(2.0).y, [8, 10, 12])
    with pytest.raises(ValueError):
        Coordinates([1, 2], [1])
    assert micrograph_key("MotionCorr/job003/Movies/mic_001.mrc") == "mic_001"
    assert micrograph_key("mic_001") == "mic_001"


# ------------------------------------------------------------------------------------------
# EMAN2 .box
# ------------------------------------------------------------------------------------------
def test_box_read_corner_to_centre(tmp_path):
    path = tmp_path / "mic01.box"
    path.write_text("100\t200\t64\t64\n10 20 64 64\n\n")
    c = read_coordinates(path)
    np.testing.assert_array_equal(c.x, [132.0, 42.0])
    np.testing.assert_array_equal(c.y, [232.0, 52.0])
    assert c.score is None and c.box_size == 64.0 and c.micrograph is None
    assert list(read_coordinates_by_micrograph(path)) == ["mic01"]
    scored = tmp_path / "scored.box"
    scored.write_text("0 0 10 20 0.75\n")
    s = read_coordinates(scored)
    assert (s.x[0], s.y[0], s.score[0]) == (5.0, 10.0, 0.75)
    assert s.box_size is None  # not square


def test_box_round_trip(tmp_path):
    c = _coords(7)
    write_coordinates(tmp_path / "out.box", c, box_size=80)
    text = (tmp_path / "out.box").read_text().splitlines()
    first = text[0].split("\t")
    assert float(first[0]) == pytest.approx(c.x[0] - 40) and first[2] == "80"
    back = read_coordinates(tmp_path / "out.box")
    np.testing.assert_allclose(back.x, c.x, atol=1e-3)
    np.testing.assert_allclose(back.y, c.y, atol=1e-3)
    np.testing.assert_allclose(back.score, c.score, atol=1e-6)
    assert back.box_size == 80
    # box_size is remembered from a .box read
    write_coordinates(tmp_path / "again.box", back)
    assert (tmp_path / "again.box").read_text() == (tmp_path / "out.box").read_text()
    with pytest.raises(ValueError, match="box_size"):
        write_coordinates(tmp_path / "nosize.box", c)
    assert not (tmp_path / "nosize.box").exists()


def test_empty_box_is_zero_particles(tmp_path):
    path = tmp_path / "empty.box"
    path.write_text("")
    assert len(read_coordinates(path)) == 0
    path.write_text("\n  \n")
    assert len(read_coordinates(path)) == 0


@pytest.mark.parametrize(
    "content, words",
    [
        ("10 20 64 64\n10 abc 64 64\n", ["line 2", "non-numeric"]),
        ("10 20 64\n", ["line 1", "3 columns"]),
        ("10 20 64 64\n10 20 64 64 0.5\n", ["line 2", "5 columns"]),
        ("10 20 0 64\n", ["line 1", "positive"]),
        ("10 20 64 64\n1 nan 64 64\n", ["line 2", "nan"]),
    ],
)
def test_malformed_box(tmp_path, content, words):
    path = tmp_path / "bad.box"
    path.write_text(content)
    with pytest.raises(InputError) as exc:
        read_coordinates(path)
    assert_input_error(exc, path, *words)


# ------------------------------------------------------------------------------------------
# RELION .star
# ------------------------------------------------------------------------------------------
def test_star_round_trip_single(tmp_path):
    c = _coords(6)
    write_coordinates(tmp_path / "mic_autopick.star", c)
    text = (tmp_path / "mic_autopick.star").read_text()
    assert "# version 30001" in text and "data_\n" in text and "_rlnCoordinateX #1" in text
    assert "_rlnAutopickFigureOfMerit #3" in text and "rlnMicrographName" not in text
    back = read_coordinates(tmp_path / "mic_autopick.star")
    np.testing.assert_allclose(back.x, c.x, atol=1e-6)
    np.testing.assert_allclose(back.y, c.y, atol=1e-6)
    np.testing.assert_allclose(back.score, c.score, atol=1e-6)
    c0 = _coords(3, score=False)
    write_coordinates(tmp_path / "noscore.star", c0)
    assert read_coordinates(tmp_path / "noscore.star").score is None


def test_star_round_trip_multi(tmp_path):
    groups = {"Movies/a.mrc": _coords(3, 1), "Movies/b dir/b.mrc": _coords(4, 2)}
    write_coordinates(tmp_path / "all.star", groups)
    back = read_coordinates_by_micrograph(tmp_path / "all.star")
    assert list(back) == list(groups)
    for k in groups:
        np.testing.assert_allclose(back[k].x, groups[k].x, atol=1e-6)
        np.testing.assert_allclose(back[k].score, groups[k].score, atol=1e-6)
        assert back[k].micrograph == k
    with pytest.raises(InputError, match="2 micrographs"):
        read_coordinates(tmp_path / "all.star")
    b = read_coordinates(tmp_path / "all.star", micrograph="b")
    assert len(b) == 4
    assert len(read_coordinates(tmp_path / "all.star", micrograph="absent.mrc")) == 0


RELION30_PARTICLES = """
data_

loop_
_rlnCoordinateX #1
_rlnCoordinateY #2
_rlnImageName #3
_rlnMicrographName #4
_rlnAngleRot #5
  100.5  200.25  000001@Extract/job007/Movies/m1.mrcs  Movies/m1.mrc  10.0
  300.0  400.0   000002@Extract/job007/Movies/m1.mrcs  Movies/m1.mrc  20.0
  50.0   60.0    000001@Extract/job007/Movies/m2.mrcs  Movies/m2.mrc  30.0
"""

RELION31_PARTICLES = """
# version 30001

data_optics

loop_
_rlnOpticsGroup #1
_rlnOpticsGroupName #2
_rlnImagePixelSize #3
_rlnImageSize #4
1 opticsGroup1 1.244 256

# version 30001

data_particles

loop_
_rlnCoordinateX #1
_rlnCoordinateY #2
_rlnAutopickFigureOfMerit #3
_rlnMicrographName #4
_rlnOpticsGroup #5
_rlnOriginXAngst #6
_rlnOriginYAngst #7
 1000.000000  2000.000000  0.9  MotionCorr/job002/m1.mrc 1 1.5 -2.0
 1500.000000   500.000000  0.8  MotionCorr/job002/m2.mrc 1 0.0 0.0
 1600.000000   510.000000  0.7  MotionCorr/job002/m2.mrc 1 0.0 0.0
"""


def test_relion30_particle_file(tmp_path):
    path = tmp_path / "particles.star"
    path.write_text(RELION30_PARTICLES)
    g = read_coordinates_by_micrograph(path)
    assert list(g) == ["Movies/m1.mrc", "Movies/m2.mrc"]
    np.testing.assert_array_equal(g["Movies/m1.mrc"].x, [100.5, 300.0])
    np.testing.assert_array_equal(g["Movies/m1.mrc"].y, [200.25, 400.0])
    assert g["Movies/m2.mrc"].score is None


def test_relion31_particle_file(tmp_path):
    path = tmp_path / "run_data.star"
    path.write_text(RELION31_PARTICLES)
    g = read_coordinates_by_micrograph(path)
    assert list(g) == ["MotionCorr/job002/m1.mrc", "MotionCorr/job002/m2.mrc"]
    m2 = g["MotionCorr/job002/m2.mrc"]
    np.testing.assert_array_equal(m2.x, [1500.0, 1600.0])
    np.testing.assert_array_equal(m2.score, [0.8, 0.7])
    # origins are not applied
    assert g["MotionCorr/job002/m1.mrc"].x[0] == 1000.0


def test_star_empty_and_bad(tmp_path):
    empty = tmp_path / "empty.star"
    empty.write_text("")
    assert len(read_coordinates(empty)) == 0
    header_only = tmp_path / "none.star"
    header_only.write_text("data_\n\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n")
    assert len(read_coordinates(header_only)) == 0
    cases = {
        "nonnum.star": ("data_\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n1 2\nfoo 3\n", ["row 2", "not a number"]),
        "ragged.star": ("data_\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n1 2\n3\n", ["row 2", "_rlnCoordinateY"]),
        "noy.star": ("data_\nloop_\n_rlnCoordinateX\n_rlnAnglePsi\n1 2\n", ["lacks", "_rlnCoordinateY"]),
        "nocoords.star": ("data_\nloop_\n_rlnImageName\n_rlnAnglePsi\na 2\n", ["no _rlnCoordinateX"]),
        "text.star": ("just some words\n", ["not a STAR file"]),
    }
    for name, (content, words) in cases.items():
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(InputError) as exc:
            read_coordinates(path)
        assert_input_error(exc, path, *words)


def test_real_relion_autopick_star(shared_data):
    path = shared_data / "micrographs" / "ucsf_stack_1142" / "Ucsf_stack_1142_DW_autopick.star"
    c = read_coordinates(path)
    assert len(c) == 45
    assert (c.x[0], c.y[0], c.score[0]) == (839.125024, 19.979167, 0.624705)
    assert c.x.max() < 930 and c.y.max() < 890
    assert coordinate_format(path) == "star"


# ------------------------------------------------------------------------------------------
# Topaz, CSV, cryoSPARC
# ------------------------------------------------------------------------------------------
def test_topaz_round_trip(tmp_path):
    groups = {"mic_a": _coords(3, 3), "Movies/mic_b.mrc": _coords(2, 4)}
    write_coordinates(tmp_path / "picks.txt", groups)
    lines = (tmp_path / "picks.txt").read_text().splitlines()
    assert lines[0] == "image_name\tx_coord\ty_coord\tscore"
    assert lines[-1].startswith("mic_b\t")
    back = read_coordinates_by_micrograph(tmp_path / "picks.txt")
    assert list(back) == ["mic_a", "mic_b"]
    np.testing.assert_allclose(back["mic_b"].x, groups["Movies/mic_b.mrc"].x, atol=1e-3)
    np.testing.assert_allclose(back["mic_a"].score, groups["mic_a"].score, atol=1e-6)
    # integer output for integer coordinates, like Topaz itself
    write_coordinates(tmp_path / "ints.txt", Coordinates([10, 20], [30, 40], None, "m"))
    assert (tmp_path / "ints.txt").read_text() == "image_name\tx_coord\ty_coord\nm\t10\t30\nm\t20\t40\n"
    assert read_coordinates(tmp_path / "ints.txt").score is None


def test_topaz_bad(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert len(read_coordinates(empty, fmt="topaz")) == 0
    bad_header = tmp_path / "bad_header.txt"
    bad_header.write_text("name\tx\ty\nm\t1\t2\n")
    with pytest.raises(InputError) as exc:
        read_coordinates(bad_header, fmt="topaz")
    assert_input_error(exc, bad_header, "image_name")
    bad_row = tmp_path / "bad_row.txt"
    bad_row.write_text("image_name\tx_coord\ty_coord\tscore\nm\t1\tbad\t0.5\n")
    with pytest.raises(InputError) as exc:
        read_coordinates(bad_row)
    assert_input_error(exc, bad_row, "line 2", "non-numeric")
    short = tmp_path / "short.txt"
    short.write_text("image_name\tx_coord\ty_coord\tscore\nm\t1\t2\n")
    with pytest.raises(InputError, match="line 2"):
        read_coordinates(short)


def test_csv_round_trip(tmp_path):
    c = _coords(4, score=False)
    write_coordinates(tmp_path / "c.csv", c)
    assert (tmp_path / "c.csv").read_text().splitlines()[0] == "x,y"
    back = read_coordinates(tmp_path / "c.csv")
    np.testing.assert_allclose(back.xy, c.xy, atol=1e-3)
    groups = {"m1": _coords(2, 5), "m2": _coords(3, 6)}
    write_coordinates(tmp_path / "g.csv", groups)
    back = read_coordinates_by_micrograph(tmp_path / "g.csv")
    assert list(back) == ["m1", "m2"]
    np.testing.assert_allclose(back["m2"].score, groups["m2"].score, atol=1e-6)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="x and y"):
        read_coordinates(bad)


def _write_cs(path, arr):
    with open(path, "wb") as fh:  # np.save on a path would append .npy
        np.save(fh, arr)


def test_cryosparc_cs(tmp_path):
    dtype = [
        ("uid", "<u8"),
        ("location/micrograph_path", "S64"),
        ("location/micrograph_shape", "<u4", (2,)),
        ("location/center_x_frac", "<f4"),
        ("location/center_y_frac", "<f4"),
        ("pick_stats/ncc_score", "<f4"),
    ]
    arr = np.zeros(3, dtype=dtype)
    arr["uid"] = [1, 2, 3]
    arr["location/micrograph_path"] = [b"J3/imported/m1.mrc", b"J3/imported/m2.mrc", b"J3/imported/m1.mrc"]
    arr["location/micrograph_shape"] = [(3000, 4000), (1000, 2000), (3000, 4000)]  # (height, width)
    arr["location/center_x_frac"] = [0.25, 0.5, 0.75]
    arr["location/center_y_frac"] = [0.5, 0.25, 0.125]
    arr["pick_stats/ncc_score"] = [0.5, 0.25, 0.125]
    path = tmp_path / "particles.cs"
    _write_cs(path, arr)
    assert coordinate_format(path) == "cs"
    g = read_coordinates_by_micrograph(path)
    assert list(g) == ["J3/imported/m1.mrc", "J3/imported/m2.mrc"]
    np.testing.assert_allclose(g["J3/imported/m1.mrc"].x, [1000.0, 3000.0])  # frac * width
    np.testing.assert_allclose(g["J3/imported/m1.mrc"].y, [1500.0, 375.0])   # frac * height
    np.testing.assert_allclose(g["J3/imported/m2.mrc"].xy, [[1000.0, 250.0]])
    np.testing.assert_allclose(g["J3/imported/m2.mrc"].score, [0.25])
    # flip_y uses each micrograph's own height when none is given
    f = read_coordinates_by_micrograph(path, flip_y=True)
    np.testing.assert_allclose(f["J3/imported/m1.mrc"].y, [3000 - 1 - 1500.0, 3000 - 1 - 375.0])
    with pytest.raises(ValueError, match="not supported"):
        write_coordinates(tmp_path / "x.cs", g["J3/imported/m2.mrc"])


def test_cryosparc_bad(tmp_path):
    obj = np.zeros(2, dtype=[("location/micrograph_path", "O"), ("location/center_x_frac", "<f4")])
    obj["location/micrograph_path"] = ["a", "b"]
    path = tmp_path / "pickled.cs"
    _write_cs(path, obj)
    with pytest.raises(InputError) as exc:
        read_coordinates(path)
    assert_input_error(exc, path, "pickled")
    lacking = tmp_path / "lacking.cs"
    _write_cs(lacking, np.zeros(2, dtype=[("location/center_x_frac", "<f4")]))
    with pytest.raises(InputError, match="micrograph_shape"):
        read_coordinates(lacking)
    garbage = tmp_path / "garbage.cs"
    garbage.write_bytes(b"not numpy at all")
    with pytest.raises(InputError) as exc:
        read_coordinates(garbage)
    assert_input_error(exc, garbage, "not a cryoSPARC")


def test_missing_and_unknown(tmp_path):
    with pytest.raises(InputError) as exc:
        read_coordinates(tmp_path / "nope.box")
    assert_input_error(exc, "nope.box", "not found")
    odd = tmp_path / "odd.dat"
    odd.write_text("hello there\n")
    with pytest.raises(InputError, match="unknown coordinate format"):
        read_coordinates(odd)
    # content detection without a telling extension
    star = tmp_path / "picks.dat"
    star.write_text("data_\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n1 2\n")
    assert coordinate_format(star) == "star" and len(read_coordinates(star)) == 1
    box = tmp_path / "picks.coords"
    box.write_text("1 2 10 10\n")
    assert coordinate_format(box) == "box" and read_coordinates(box).x[0] == 6.0


# ------------------------------------------------------------------------------------------
# y flip and on-density check
# ------------------------------------------------------------------------------------------
def test_flip_rule_matches_flipud():
    """flip_y maps y -> H - 1 - y, the row mapping of numpy.flipud (pixel centres at integers)."""
    h, w = 50, 60
    img = np.zeros((h, w), np.float32)
    img[7, 11] = 1.0
    c = Coordinates([11.0], [7.0])
    f = flip_y_coordinates(c, h)
    assert (f.x[0], f.y[0]) == (11.0, h - 1 - 7.0)
    assert np.flipud(img)[int(f.y[0]), int(f.x[0])] == 1.0
    np.testing.assert_array_equal(flip_y_coordinates(f, h).y, c.y)


def test_read_with_flip_y(tmp_path):
    path = tmp_path / "m.box"
    path.write_text("90 10 20 20\n")
    c = read_coordinates(path, flip_y=True, micrograph_height=100)
    assert (c.x[0], c.y[0]) == (100.0, 100 - 1 - 20.0)
    with pytest.raises(InputError, match="height"):
        read_coordinates(path, flip_y=True)
    star = tmp_path / "multi.star"
    write_coordinates(star, {"a.mrc": Coordinates([1.0], [2.0]), "b.mrc": Coordinates([3.0], [4.0])})
    g = read_coordinates_by_micrograph(star, flip_y=True, micrograph_height={"a": 10, "b.mrc": 20})
    assert g["a.mrc"].y[0] == 7.0 and g["b.mrc"].y[0] == 15.0


def _synthetic_micrograph(seed=0):
    rng = np.random.default_rng(seed)
    h, w = 200, 300
    img = rng.normal(0.0, 1.0, (h, w)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    centres = [(40.0, 30.0), (150.0, 45.0), (250.0, 60.0), (80.0, 20.0)]  # (x, y), all in the top third
    for cx, cy in centres:
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= 10 ** 2] -= 3.0  # dark particles
    xs, ys = zip(*centres)
    return img, Coordinates(np.array(xs), np.array(ys))


def test_fraction_on_density_and_flip_report():
    img, c = _synthetic_micrograph()
    assert fraction_on_density(img, c, radius_px=8) == 1.0
    flipped = flip_y_coordinates(c, img.shape[0])
    assert fraction_on_density(img, flipped, radius_px=8) <= 0.5
    assert fraction_on_density(-img, c, radius_px=8, particle_sign=+1) == 1.0
    assert fraction_on_density(img, Coordinates([], []), 5) == 0.0
    assert fraction_on_density(img, Coordinates([-100.0], [-100.0]), 5) == 0.0  # off the image
    rep = y_flip_report(img, c, radius_px=8)
    assert rep["fraction_on_density"] == 1.0 and rep["y_seems_flipped"] is False
    rep_f = y_flip_report(np.flipud(img), c, radius_px=8)
    assert rep_f["fraction_on_density_flipped"] == 1.0 and rep_f["y_seems_flipped"] is True


def test_real_picks_land_on_density(shared_data):
    folder = shared_data / "micrographs" / "ucsf_stack_1142"
    mic, _ = read_micrograph(folder / "Ucsf_stack_1142_DW.mrc")
    c = read_coordinates(folder / "Ucsf_stack_1142_DW_autopick.star")
    rep = y_flip_report(mic, c, radius_px=15)
    assert rep["n_coordinates"] == 45
    assert rep["fraction_on_density"] > 0.9
    assert rep["fraction_on_density_flipped"] < 0.5 and rep["y_seems_flipped"] is False


def test_cryoppp_csv_centres(shared_data):
    root = shared_data / "picking" / "cryoppp_dev"
    expected = {}
    with open(root / "coords_summary.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            expected[(row["dataset"], row["split"], row["file"][:-4])] = int(row["n_particles"])
    files = sorted(root.glob("*/*/coords/*.csv"))
    assert len(files) == len(expected) == 30
    total = 0
    for f in files:
        c = read_coordinates(f)
        assert len(c) == expected[(f.parents[2].name, f.parents[1].name, f.stem)]
        assert c.x.min() >= 33 and c.x.max() <= 991 and c.y.min() >= 33 and c.y.max() <= 991
        total += len(c)
    assert total == 10849
    # EMPIAR-10028 PNG: the centres sit on (dark) particles, the y-flipped ones much less so
    from PIL import Image

    f = root / "10028" / "test" / "coords" / "311_10028.csv"
    img = np.asarray(Image.open(root / "10028" / "test" / "images" / "311_10028.png"), dtype=np.float32)
    rep = y_flip_report(img, read_coordinates(f), radius_px=28)
    assert rep["fraction_on_density"] > 0.95
    assert rep["fraction_on_density_flipped"] < rep["fraction_on_density"] - 0.2
