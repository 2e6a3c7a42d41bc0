"""Hungarian matching and picking metrics on hand-made cases (exact numbers)."""

import numpy as np
import pytest

from deepqs.picking.evaluate import best_f2_threshold, evaluate, f_beta, match_picks, plot_pr_curve


def test_hungarian_beats_greedy():
    # greedy (best score first, nearest truth) would match P1-T1 and leave P2 unmatched
    picks = np.array([[0.0, 0.0], [1.9, 0.0]])
    truth = np.array([[0.9, 0.0], [-1.2, 0.0]])
    m = match_picks(picks, truth, 1.25, scores=np.array([0.9, 0.8]))
    assert m.matched.tolist() == [True, True]
    assert sorted(zip(m.pick_index.tolist(), m.truth_index.tolist())) == [(0, 1), (1, 0)]


def test_one_to_one():
    picks = np.array([[0.0, 0.0], [0.5, 0.0], [0.2, 0.1]])
    truth = np.array([[0.1, 0.0]])
    m = match_picks(picks, truth, 1.0, scores=np.array([0.5, 0.9, 0.1]))
    assert m.matched.sum() == 1
    assert m.matched.tolist() == [False, True, False]        # the best-scoring pick takes it


def test_metrics_exact():
    picks = np.array([[0, 0], [1, 0], [10, 10], [50, 50]], float)
    truth = np.array([[0.5, 0], [10, 12], [30, 30]], float)
    ev = evaluate(picks, truth, 2.0, scores=np.array([0.9, 0.8, 0.7, 0.6]))
    assert (ev.n_picks, ev.n_truth, ev.true_positives) == (4, 3, 2)
    assert ev.precision == pytest.approx(0.5)
    assert ev.recall == pytest.approx(2 / 3)
    assert ev.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert ev.f2 == pytest.approx(5 * 0.5 * (2 / 3) / (4 * 0.5 + 2 / 3))
    # picks by score: hit, miss, hit, miss -> AP = 1 * 1/3 + 2/3 * 1/3
    assert ev.average_precision == pytest.approx(5 / 9)
    # a truth exactly at the radius matches; just beyond does not
    assert evaluate(np.array([[0, 0.0]]), np.array([[2.0, 0]]), 2.0).true_positives == 1
    assert evaluate(np.array([[0, 0.0]]), np.array([[2.01, 0]]), 2.0).true_positives == 0


def test_empty_cases():
    ev = evaluate(np.zeros((0, 2)), np.array([[1.0, 1.0]]), 2.0)
    assert (ev.precision, ev.recall, ev.f1, ev.average_precision) == (0.0, 0.0, 0.0, 0.0)
    ev = evaluate(np.array([[1.0, 1.0]]), np.zeros((0, 2)), 2.0)
    assert ev.true_positives == 0 and ev.precision == 0.0
    assert f_beta(0, 0, 2) == 0.0


def test_best_f2_threshold(tmp_path):
    picks = np.array([[0, 0], [10, 0], [20, 0], [30, 0]], float)
    truth = np.array([[0, 0], [10, 0], [30, 0]], float)
    m = match_picks(picks, truth, 1.0, scores=np.array([0.9, 0.8, 0.7, 0.6]))
    thr, f2 = best_f2_threshold([m])
    # keeping all 4 picks: P 0.75, R 1 -> F2 = 15/16 beats 2 picks (P 1, R 2/3 -> F2 = 5/7)
    assert thr == pytest.approx(0.6)
    assert f2 == pytest.approx(5 * 0.75 / (4 * 0.75 + 1))
    plot_pr_curve(str(tmp_path / "pr.png"), [("test", [m])])
    assert (tmp_path / "pr.png").stat().st_size > 1000
