"""Fourier shell correlation: identities, noise, an analytic case and the resolution read-out."""

import numpy as np
import pytest

from deepqs.errors import InputError
from deepqs.io.mapdata import MapData
from deepqs.validation import FSCCurve, fsc, resolution_at
from deepqs.validation.fsc import shell_index


def _noise(n, seed):
    return np.random.default_rng(seed).standard_normal((n, n, n)).astype(np.float32)


def test_identical_maps_correlate_one_in_every_shell():
    m = _noise(32, 0)
    curve = fsc(m, m, 1.2)
    assert curve.fsc.shape == (17,)
    np.testing.assert_allclose(curve.fsc, 1.0, atol=1e-6)
    # shells: 0 .. N/2, frequency s / (N · voxel), last one Nyquist = 1 / (2 voxel)
    np.testing.assert_allclose(curve.frequency_invA, np.arange(17) / (32 * 1.2))
    assert curve.frequency_invA[-1] == pytest.approx(1.0 / 2.4)
    assert curve.n_voxels[0] == 1 and np.all(curve.n_voxels[1:] > 0)


def test_sign_and_scale():
    m = _noise(24, 1)
    np.testing.assert_allclose(fsc(m, -m, 1.0).fsc[1:], -1.0, atol=1e-6)
    np.testing.assert_allclose(fsc(m, 3.0 * m + 0.0, 1.0).fsc, 1.0, atol=1e-6)


def test_independent_noise_is_near_zero():
    curve = fsc(_noise(48, 2), _noise(48, 3), 1.0)
    shells = slice(3, None)
    # each shell's FSC of independent noise has standard deviation ~ 1/sqrt(n)
    assert np.all(np.abs(curve.fsc[shells]) < 5.0 / np.sqrt(curve.n_voxels[shells]))
    assert abs(curve.fsc[shells].mean()) < 0.02


def test_analytic_signal_plus_noise():
    """s + n1 vs s + n2 with white s, n1, n2 of variances 1, v, v: FSC = 1 / (1 + v) in every shell."""
    n = 48
    rng = np.random.default_rng(4)
    s = rng.standard_normal((n, n, n))
    for v, expected in ((1.0, 0.5), (3.0, 0.25)):
        a = s + np.sqrt(v) * rng.standard_normal((n, n, n))
        b = s + np.sqrt(v) * rng.standard_normal((n, n, n))
        curve = fsc(a, b, 1.0)
        big = curve.n_voxels > 2000
        assert abs(curve.fsc[big].mean() - expected) < 0.01
        assert np.all(np.abs(curve.fsc[big] - expected) < 0.06)


def test_accepts_mapdata_and_rejects_bad_input():
    m = _noise(16, 5)
    md = MapData(m, 1.0)
    assert np.allclose(fsc(md, md, 1.0).fsc, 1.0)
    with pytest.raises(InputError, match="cubic"):
        fsc(np.zeros((16, 16, 18)), np.zeros((16, 16, 18)), 1.0)
    with pytest.raises(InputError, match="shape"):
        fsc(np.zeros((16, 16, 16)), np.zeros((18, 18, 18)), 1.0)
    bad = m.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fsc(bad, m, 1.0)
    with pytest.raises(InputError, match="positive"):
        fsc(m, m, 0.0)


def test_zero_power_shell_reads_zero():
    z = np.zeros((16, 16, 16))
    assert np.all(fsc(z, z, 1.0).fsc == 0.0)


def test_shell_index_radius():
    sh = shell_index(8)
    assert sh.shape == (8, 8, 5)
    assert sh[0, 0, 0] == 0 and sh[0, 0, 4] == 4 and sh[4, 0, 0] == 4 and sh[1, 1, 1] == 2
    assert sh[4, 4, 4] == round(np.sqrt(48))


def test_resolution_at_interpolates_and_handles_edges():
    f = np.arange(11) / 20.0                 # Nyquist 0.5 1/Å -> 2 Å
    c = np.array([1.0, 0.95, 0.9, 0.8, 0.5, 0.1, 0.05, 0.0, 0.0, 0.0, 0.0])
    curve = FSCCurve(f, c, np.ones(11, dtype=int))
    # 0.143 lies between shell 4 (0.5) and 5 (0.1): f = 0.2 + (0.143 - 0.5) / (0.1 - 0.5) * 0.05
    assert resolution_at(curve, 0.143) == pytest.approx(1.0 / (0.2 + 0.357 / 0.4 * 0.05))
    assert resolution_at(curve, 0.5) == pytest.approx(1.0 / 0.2)       # equal is not below
    never = FSCCurve(f, np.ones(11), np.ones(11, dtype=int))
    assert resolution_at(never, 0.143) == pytest.approx(2.0)           # Nyquist
    at_once = FSCCurve(f, np.r_[1.0, np.zeros(10)], np.ones(11, dtype=int))
    assert resolution_at(at_once, 0.143) == pytest.approx(20.0)        # 1 / frequency of shell 1
    # the DC shell is ignored even when it is low
    dc_low = FSCCurve(f, np.r_[-1.0, c[1:]], np.ones(11, dtype=int))
    assert resolution_at(dc_low, 0.143) == resolution_at(curve, 0.143)
    np.testing.assert_allclose(curve.resolution_A[1:], 1.0 / f[1:])
