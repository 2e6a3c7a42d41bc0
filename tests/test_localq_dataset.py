"""DeepQs training data: realism (mean Q vs resolution follows MapQ's relation), seeding, exclusions."""

import numpy as np
import pytest

from deepqs.localq import dataset as D


def _small_models():
    paths = D.list_structures(max_atoms=1500)
    if len(paths) >= 3:
        return [D.load_structure_atoms(p) for p in paths[1::max(1, len(paths) // 3)][:3]]
    return [D.load_structure_atoms(s) for s in (1, 2)]


@pytest.mark.parametrize("resolution", [2.0, 4.0, 6.0])
def test_mean_q_follows_mapq_relation(resolution):
    q = D.mean_q_nominal(_small_models(), resolution, seed=7, crop=32)
    assert abs(q - D.mapq_relation(resolution)) <= 0.08, (resolution, q)


def test_real_map_check_structure_is_never_listed():
    for p in D.list_structures(max_atoms=10 ** 6):
        assert "7CEC" not in p.upper()


def test_examples_are_seeded_and_labelled():
    at = D.load_structure_atoms(1)
    ds = D.LocalQDataset([1], n_examples=3, seed=5, crop=24)
    x1, y1, w1 = ds[1]
    x2, y2, w2 = D.LocalQDataset([1], n_examples=3, seed=5, crop=24)[1]
    assert x1.shape == (1, 24, 24, 24)
    assert np.array_equal(x1.numpy(), x2.numpy()) and np.array_equal(y1.numpy(), y2.numpy())
    assert float(w1.sum()) > 0 and set(np.unique(w1.numpy())) <= {0.0, 1.0}
    assert np.all(np.abs(y1.numpy()) <= 1)
    assert not np.array_equal(ds[0][0].numpy(), x1.numpy())
    ex = D.simulate_example(at, np.random.default_rng(0), resolution=3.0, crop=24)
    assert ex.map.shape == ex.labels.shape == ex.weights.shape
    assert np.allclose(ex.map.voxel_size, 1.0)
