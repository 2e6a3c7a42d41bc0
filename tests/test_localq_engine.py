"""DeepQs engine: resampling, normalisation, tiling, labels."""

import numpy as np
import pytest
import torch

from deepqs.io.mapdata import MapData
from deepqs.localq.labels import label_map
from deepqs.localq.normalise import normalise_map, robust_stats
from deepqs.localq.resample import resample_onto, resample_to_spacing
from deepqs.localq.tiling import predict_tiled, tile_starts


def _smooth_map(shape, voxel, origin, seed=0):
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    vx, vy, vz = voxel
    z, y, x = np.meshgrid(np.arange(nz) * vz, np.arange(ny) * vy, np.arange(nx) * vx, indexing="ij")
    data = np.zeros(shape)
    for _ in range(6):
        c = rng.uniform(0, 1, 3) * np.array([nx * vx, ny * vy, nz * vz])
        data += np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) / (2 * 4.0 ** 2))
    return MapData(data.astype(np.float32), voxel, origin)


def test_resample_round_trip_keeps_grid_non_cubic_origin():
    m = _smooth_map((30, 36, 40), (0.8, 0.7, 1.3), (-12.3, 45.6, 7.89))
    m1 = resample_to_spacing(m, 1.0)
    assert np.allclose(m1.voxel_size, 1.0) and np.allclose(m1.origin, m.origin)
    assert np.all(m1.grid_size >= np.ceil((m.grid_size - 1) * m.voxel_size))
    back = resample_onto(m1, m)
    assert back.shape == m.shape
    assert np.allclose(back.voxel_size, m.voxel_size) and np.allclose(back.origin, m.origin)
    # smooth density (σ 4 Å) survives the trip
    r = np.corrcoef(back.data.ravel(), m.data.ravel())[0, 1]
    assert r > 0.99
    assert np.abs(back.data - m.data).max() < 0.05 * m.data.max()


def test_resample_places_a_feature_at_the_same_position():
    m = _smooth_map((40, 40, 40), (0.6, 0.6, 0.6), (100.0, -50.0, 3.3), seed=3)
    m1 = resample_to_spacing(m, 1.0)
    peak = np.array(np.unravel_index(np.argmax(m.data), m.shape))[::-1]
    peak1 = np.array(np.unravel_index(np.argmax(m1.data), m1.shape))[::-1]
    assert np.all(np.abs(m.index_to_xyz(peak) - m1.index_to_xyz(peak1)) <= 1.0)


def test_normalisation_invariant_to_scale_and_offset():
    rng = np.random.default_rng(1)
    d = rng.standard_normal((24, 24, 24)).astype(np.float32)
    d[8:16, 8:16, 8:16] += 10
    a = normalise_map(d)
    b = normalise_map(d * 37.5 - 1234.0)
    assert np.allclose(a, b, atol=1e-4)
    # masked map: mostly constant -> falls back to the varying voxels
    m = np.zeros_like(d)
    m[8:16, 8:16, 8:16] = d[8:16, 8:16, 8:16]
    st = robust_stats(m)
    assert st.masked and st.noise > 0
    assert np.allclose(normalise_map(m), normalise_map(m * 0.01 + 5), atol=1e-4)
    assert np.all(np.isfinite(normalise_map(np.zeros((4, 4, 4), np.float32))))


def test_tile_starts_cover():
    for n in (64, 65, 100, 130):
        s = tile_starts(n, 32, 8)
        assert s[0] == 0 and s[-1] + 32 == n
        assert all(b - a <= 24 for a, b in zip(s, s[1:]))


def test_tiling_identity_and_known_conv_match_untiled():
    rng = np.random.default_rng(2)
    vol = rng.standard_normal((50, 41, 70)).astype(np.float32)
    ident = torch.nn.Identity()
    out = predict_tiled(ident, vol, tile=16, overlap=8, batch=3)
    assert np.allclose(out, vol, atol=1e-6)
    conv = torch.nn.Conv3d(1, 1, 3, padding=1, bias=True)
    torch.manual_seed(0)
    torch.nn.init.normal_(conv.weight)
    with torch.no_grad():
        ref = conv(torch.from_numpy(vol)[None, None])[0, 0].numpy()
    tiled = predict_tiled(conv, vol, tile=16, overlap=8, batch=2)
    assert np.allclose(tiled, ref, atol=1e-4)
    # a mask that selects nothing in some tiles: those tiles are skipped (0)
    mask = np.zeros(vol.shape, bool)
    mask[:10, :10, :10] = True
    part = predict_tiled(ident, vol, tile=16, overlap=8, mask=mask)
    assert np.allclose(part[:10, :10, :10], vol[:10, :10, :10]) and np.all(part[40:, 30:, 60:] == 0)


def test_labels_rule_nearest_atom_within_radius():
    grid = MapData(np.zeros((10, 10, 10), np.float32), 1.0, (0.0, 0.0, 0.0))
    xyz = np.array([[3.0, 3.0, 3.0], [5.0, 3.0, 3.0], [8.0, 8.0, 8.0]])
    q = np.array([0.9, 0.2, np.nan])
    lab, w = label_map(grid, xyz, q)
    assert w[3, 3, 3] == 1 and lab[3, 3, 3] == pytest.approx(0.9)
    assert lab[3, 3, 5] == pytest.approx(0.2)
    assert lab[3, 3, 2] == pytest.approx(0.9)        # 1 Å from atom 0
    assert w[3, 3, 1] == 0 and w[3, 3, 0] == 0        # 2 Å away: excluded
    assert w[8, 8, 8] == 0                             # NaN-Q atom ignored
    assert w[4, 4, 3] == 1                             # sqrt(2) < 1.5 Å
    assert w[4, 4, 4] == 0                             # sqrt(3) > 1.5 Å
    assert set(np.unique(w)) <= {0.0, 1.0}
