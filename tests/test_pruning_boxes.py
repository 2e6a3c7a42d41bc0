"""Box extraction (x = column, y = row, edge padding), particle stacks/.star and micrograph readers."""

import numpy as np
import pytest

from deepqs.errors import InputError
from deepqs.io import Coordinates, write_coordinates, write_micrograph, write_stack
from deepqs.pruning.boxes import extract_boxes, parse_image_name, read_micrograph_boxes, read_particle_boxes, \
    resample_boxes

from helpers import assert_input_error


def _ramp(ny=40, nx=50):
    yy, xx = np.mgrid[0:ny, 0:nx]
    return (1000.0 * yy + xx).astype(np.float32)          # value = 1000 * row + column


def test_x_is_column_y_is_row():
    img = _ramp()
    boxes, edge = extract_boxes(img, np.array([[7.0, 20.0], [30.2, 9.7]]), 6, out_size=None)
    assert boxes.shape == (2, 6, 6) and not edge.any()
    assert boxes[0, 3, 3] == 1000 * 20 + 7                  # centre pixel [b//2, b//2] = (row y, column x)
    assert boxes[1, 3, 3] == 1000 * 10 + 30                 # rounded to the nearest pixel
    assert boxes[0, 3, 4] - boxes[0, 3, 3] == 1             # along a row: x + 1
    assert boxes[0, 4, 3] - boxes[0, 3, 3] == 1000          # down a column: y + 1


def test_edge_padding_flag_and_fill():
    img = _ramp()
    boxes, edge = extract_boxes(img, np.array([[0.0, 0.0], [25.0, 20.0], [49.0, 39.0]]), 4, out_size=None)
    assert edge.tolist() == [True, False, True]
    inside = img[0:2, 0:2]                                   # the part of box 0 on the micrograph
    assert boxes[0, 2:, 2:].tolist() == inside.tolist()
    assert np.allclose(boxes[0, :2, :], inside.mean()) and np.allclose(boxes[0, :, :2], inside.mean())
    refl, edge2 = extract_boxes(img, np.array([[0.0, 0.0]]), 4, out_size=None, pad="reflect")
    assert edge2.tolist() == [True]
    assert refl[0, 2, 0] == img[0, 2] and refl[0, 0, 2] == img[2, 0]     # mirrored, edge pixel not repeated


def test_resample():
    const = np.full((3, 100, 100), 2.5, np.float32)
    out = resample_boxes(const, 64)
    assert out.shape == (3, 64, 64) and np.allclose(out, 2.5, atol=1e-5)
    b, _ = extract_boxes(_ramp(200, 200), np.array([[100.0, 100.0]]), 128, out_size=64)
    assert b.shape == (1, 64, 64)
    assert b[0, 32, 40] > b[0, 32, 20] and b[0, 40, 32] > b[0, 20, 32]   # orientation kept


def test_parse_image_name():
    assert parse_image_name("000012@Extract/stack.mrcs") == (11, "Extract/stack.mrcs")
    with pytest.raises(ValueError):
        parse_image_name("0@a.mrcs")


def _star(path, rows, stack_names, extra=True):
    lines = ["", "data_particles", "", "loop_", "_rlnImageName #1", "_rlnMicrographName #2",
             "_rlnCoordinateX #3", "_rlnCoordinateY #4"]
    for k, (i, s) in enumerate(zip(rows, stack_names)):
        lines.append(f"{i}@{s} mic{k % 2}.mrc {10 * k + 5} {7 * k + 3}")
    path.write_text("\n".join(lines) + "\n")


def test_stack_and_star(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.standard_normal((5, 48, 48)).astype(np.float32)
    write_stack(tmp_path / "a.mrcs", imgs, 1.5)
    bs = read_particle_boxes(tmp_path / "a.mrcs", 64)
    assert bs.boxes.shape == (5, 64, 64) and bs.pixel_size_A == pytest.approx(1.5) and bs.box_px == 48
    assert np.isnan(bs.x).all() and bs.index.tolist() == [0, 1, 2, 3, 4]
    _star(tmp_path / "p.star", [3, 1, 5], ["a.mrcs"] * 3)
    st = read_particle_boxes(tmp_path / "p.star", 48)
    assert np.allclose(st.boxes[0], imgs[2]) and np.allclose(st.boxes[2], imgs[4])
    assert st.x.tolist() == [5, 15, 25] and st.y.tolist() == [3, 10, 17] and list(st.micrograph[:2]) == ["mic0.mrc", "mic1.mrc"]
    _star(tmp_path / "bad.star", [6], ["a.mrcs"])
    with pytest.raises(InputError, match="stack holds 5"):
        read_particle_boxes(tmp_path / "bad.star")
    _star(tmp_path / "missing.star", [1], ["nowhere.mrcs"])
    with pytest.raises(InputError, match="not found"):
        read_particle_boxes(tmp_path / "missing.star")
    write_stack(tmp_path / "b.mrcs", imgs, 2.0)
    _star(tmp_path / "mixed.star", [1, 1], ["a.mrcs", "b.mrcs"])
    with pytest.raises(InputError, match="pixel size"):
        read_particle_boxes(tmp_path / "mixed.star")
    (tmp_path / "empty.star").write_text("data_particles\n\nloop_\n_rlnImageName #1\n")
    with pytest.raises(InputError) as exc:
        read_particle_boxes(tmp_path / "empty.star")
    assert_input_error(exc, tmp_path / "empty.star")
    (tmp_path / "junk.mrcs").write_bytes(b"not an mrc file at all" * 10)
    with pytest.raises(InputError) as exc:
        read_particle_boxes(tmp_path / "junk.mrcs")
    assert "\n" not in str(exc.value)


def test_micrograph_boxes_match_by_stem(tmp_path):
    img = _ramp(60, 80)
    write_micrograph(tmp_path / "m1.mrc", img, 1.2)
    write_micrograph(tmp_path / "m2.mrc", img + 1.0, 1.2)
    write_coordinates(tmp_path / "m2.box", Coordinates([10.0, 79.0], [20.0, 59.0]), box_size=8)
    write_coordinates(tmp_path / "m1.csv", Coordinates([40.0], [30.0]))
    warnings = []
    write_coordinates(tmp_path / "other.csv", Coordinates([1.0], [1.0]))
    bs = read_micrograph_boxes([tmp_path / "m1.mrc", tmp_path / "m2.mrc"],
                               [tmp_path / "m2.box", tmp_path / "m1.csv", tmp_path / "other.csv"], 8, out_size=None,
                               warn=warnings.append)
    assert len(bs) == 3 and list(bs.micrograph) == ["m2", "m2", "m1"]
    assert bs.boxes[0, 4, 4] == 1000 * 20 + 10 + 1.0 and bs.boxes[2, 4, 4] == 1000 * 30 + 40
    assert bs.off_edge.tolist() == [False, True, False]
    assert bs.source["unmatched"] == {"other": 1} and len(warnings) == 1
    write_micrograph(tmp_path / "m3.mrc", img, 2.0)
    with pytest.raises(InputError, match="pixel size"):
        read_micrograph_boxes([tmp_path / "m1.mrc", tmp_path / "m3.mrc"], [tmp_path / "m1.csv", tmp_path / "m3.csv"]
                              if (tmp_path / "m3.csv").write_text("x,y\n5,5\n") else [], 8)


def test_autopick_style_names_and_no_match(tmp_path):
    img = _ramp(60, 80)
    write_micrograph(tmp_path / "mic_01.mrc", img, 1.0)
    write_coordinates(tmp_path / "mic_01_autopick.star", Coordinates([40.0], [30.0]))
    bs = read_micrograph_boxes([tmp_path / "mic_01.mrc"], [tmp_path / "mic_01_autopick.star"], 8, out_size=None)
    assert len(bs) == 1 and bs.micrograph[0] == "mic_01" and bs.boxes[0, 4, 4] == 1000 * 30 + 40
    write_coordinates(tmp_path / "other.csv", Coordinates([1.0], [1.0]))
    with pytest.raises(InputError, match="no coordinates match"):
        read_micrograph_boxes([tmp_path / "mic_01.mrc"], [tmp_path / "other.csv"], 8)
