"""Picking steps: preprocessing scale, NMS, std filter, and the coordinate convention (x = column)."""

import numpy as np
import pytest

from deepqs.errors import InputError
from deepqs.picking.model import PickerModel
from deepqs.picking.networks import build_network
from deepqs.picking.pick import find_peaks, refine_peaks, local_std, pick_prepared, std_filter, suppress_close
from deepqs.picking.preprocess import (WORKING_DIAMETER_PX, fourier_resample, particle_diameter_px, prepare_array,
                                       read_image)
from deepqs.picking.score import ScoreMap
from deepqs.picking.train import extract_windows


def test_find_peaks_nms():
    s = np.zeros((40, 40), np.float32)
    s[10, 10] = 0.9
    s[10, 13] = 0.8          # within radius 4 of a higher peak: suppressed
    s[30, 25] = 0.7
    s[10, 20] = 0.6          # 10 px away: kept
    rows, cols, vals = find_peaks(s, 4.0, min_score=0.1)
    assert list(zip(rows.tolist(), cols.tolist())) == [(10, 10), (30, 25), (10, 20)]
    assert vals.tolist() == pytest.approx([0.9, 0.7, 0.6])


def test_refine_peaks_subpixel():
    yy, xx = np.mgrid[0:30, 0:30]
    s = np.exp(-((xx - 12.3) ** 2 + (yy - 17.8) ** 2) / 8.0)
    r, c = refine_peaks(s, np.array([18]), np.array([12]))
    assert abs(c[0] - 12.3) < 0.1 and abs(r[0] - 17.8) < 0.1
    r, c = refine_peaks(s, np.array([0]), np.array([12]))       # border row: kept
    assert r[0] == 0


def test_plateau_resolved_by_second_pass():
    s = np.zeros((20, 20), np.float32)
    s[5, 5:8] = 1.0           # a plateau gives 3 equal maxima
    rows, cols, vals = find_peaks(s, 3.0, 0.5)
    assert len(rows) == 3
    keep = suppress_close(cols.astype(float), rows.astype(float), vals, 3.0)
    assert len(keep) == 1
    keep = suppress_close(np.array([0.0, 2.0, 4.0]), np.zeros(3), np.array([0.5, 0.9, 0.8]), 2.5)
    assert keep.tolist() == [1]                # 0 and 2 lie within 2.5 of the best one (index 1)


def test_std_filter_and_local_std():
    img = np.zeros((50, 50), np.float32)
    img[:, 25:] = np.random.default_rng(0).standard_normal((50, 25)) * 3.0
    sd = local_std(img, 9)
    assert sd[25, 5] == pytest.approx(0.0, abs=1e-6)
    assert 2.0 < sd[25, 40] < 4.0
    mask = std_filter(np.array([0.1, 1.0, 5.0]), (0.5, 2.0))
    assert mask.tolist() == [False, True, False]
    assert std_filter(np.array([0.1, 5.0]), None).all()


def test_coordinate_convention_x_is_column():
    """A peak in score-map row i, column j comes out at x = column, y = row of the micrograph."""
    img = np.random.default_rng(0).standard_normal((200, 300)).astype(np.float32)
    prep = prepare_array(img, diameter_px=48.0)          # working scale: half size
    assert prep.image.shape == (100, 150)
    assert prep.scale == (2.0, 2.0)
    model = PickerModel(build_network("deepem"), WORKING_DIAMETER_PX, 2, None, 0.5)
    scores = np.zeros((51, 76), np.float32)
    scores[10, 60] = 0.95                                 # row 10, column 60 of the map
    sm = ScoreMap(scores, 2, -0.5)
    picks = pick_prepared(model, prep, threshold=0.5, std_range=None, score_map=sm)
    assert len(picks) == 1
    assert picks.x[0] == pytest.approx((60 * 2 - 0.5) * 2.0)   # x from the column
    assert picks.y[0] == pytest.approx((10 * 2 - 0.5) * 2.0)   # y from the row
    assert picks.score[0] == pytest.approx(0.95)


def test_windows_are_centred_on_x_column():
    img = np.zeros((60, 80), np.float32)
    img[20, 50] = 1.0                                     # row 20, column 50
    w = extract_windows(img, np.array([50.0]), np.array([20.0]), 36)
    r, c = np.unravel_index(np.argmax(w[0]), w[0].shape)
    assert (r, c) == (18, 18)                            # centre of a 36 box: (box - 1) / 2 rounded up


def test_fourier_resample_keeps_pixel_zero_and_mean():
    yy, xx = np.mgrid[0:64, 0:96]
    img = np.cos(2 * np.pi * xx / 32.0).astype(np.float32) + 3
    out = fourier_resample(img, (32, 48))
    assert out.shape == (32, 48)
    np.testing.assert_allclose(out[0, :4], [4.0, np.cos(np.pi / 8) + 3, np.cos(np.pi / 4) + 3, np.cos(3 * np.pi / 8) + 3],
                               atol=1e-4)


def test_prepare_normalises_and_diameter_rules(tmp_path):
    img = np.random.default_rng(1).standard_normal((256, 256)).astype(np.float32) * 7 + 100
    prep = prepare_array(img, 36.0)
    assert abs(float(np.median(prep.image))) < 1e-3 and prep.image.std() == pytest.approx(1.0, abs=0.05)
    assert particle_diameter_px(diameter_A=150.0, pixel_size_A=1.5) == pytest.approx(100.0)
    assert particle_diameter_px(diameter_px=80.0) == 80.0
    with pytest.raises(InputError, match="pixel size"):
        particle_diameter_px(diameter_A=150.0, pixel_size_A=None)


def test_read_png(tmp_path):
    from PIL import Image

    arr = (np.random.default_rng(2).random((64, 80)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    img, ps = read_image(tmp_path / "a.png")
    assert img.shape == (64, 80) and ps is None
    assert img[3, 7] == arr[3, 7]
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="unreadable"):
        read_image(tmp_path / "bad.png")
