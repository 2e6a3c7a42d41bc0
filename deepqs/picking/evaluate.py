"""Evaluate picks against ground truth: one-to-one (Hungarian) matching within a radius.

A pick and a true particle match when their centres are at most ``radius`` pixels apart; the
matching maximises the number of matches (``scipy.optimize.linear_sum_assignment``), then prefers
higher-scoring picks and shorter distances.  Precision, recall, F1, F2 (recall weighted) and
average precision (non-interpolated: sum of precision × recall increments over the picks sorted
by decreasing score) follow.  Radii are usually 0.5× and 1.0× the particle radius.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

__all__ = ["Match", "Evaluation", "match_picks", "evaluate", "evaluate_many", "f_beta", "best_f2_threshold",
           "plot_pr_curve"]


def f_beta(precision: float, recall: float, beta: float) -> float:
    """F-beta score (beta = 1: F1, 2: F2); 0 when precision and recall are 0."""
    b2 = beta * beta
    den = b2 * precision + recall
    return float((1 + b2) * precision * recall / den) if den > 0 else 0.0


@dataclass
class Match:
    """Matching of one micrograph: ``matched[k]`` True when pick k matched a true particle."""

    matched: np.ndarray
    scores: np.ndarray
    n_truth: int
    pick_index: np.ndarray
    truth_index: np.ndarray


def match_picks(picks_xy: np.ndarray, truth_xy: np.ndarray, radius: float,
                scores: Optional[np.ndarray] = None) -> Match:
    """One-to-one matching of picks (n, 2) to truth (m, 2) within ``radius`` pixels."""
    p = np.asarray(picks_xy, dtype=np.float64).reshape(-1, 2)
    t = np.asarray(truth_xy, dtype=np.float64).reshape(-1, 2)
    s = np.ones(len(p)) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    matched = np.zeros(len(p), dtype=bool)
    empty = np.zeros(0, dtype=int)
    if len(p) == 0 or len(t) == 0:
        return Match(matched, s, len(t), empty, empty)
    pairs = cKDTree(p).sparse_distance_matrix(cKDTree(t), radius, output_type="ndarray")
    if len(pairs) == 0:
        return Match(matched, s, len(t), empty, empty)
    pi, ti, d = pairs["i"], pairs["j"], pairs["v"]
    # restrict to picks/truths that have a candidate partner
    up, pinv = np.unique(pi, return_inverse=True)
    ut, tinv = np.unique(ti, return_inverse=True)
    big = 1e6
    cost = np.full((len(up), len(ut)), big)
    rank = np.argsort(np.argsort(-s[up], kind="stable"), kind="stable") / max(len(up), 1)  # 0 = best score
    # each match costs < 1; a missing match costs big, so the number of matches is maximised first
    cost[pinv, tinv] = 0.5 * d / max(radius, 1e-12) + 0.49 * rank[pinv]
    r, c = linear_sum_assignment(cost)
    ok = cost[r, c] < big
    pick_idx, truth_idx = up[r[ok]], ut[c[ok]]
    matched[pick_idx] = True
    return Match(matched, s, len(t), pick_idx, truth_idx)


@dataclass
class Evaluation:
    """Picking quality at one matching radius (pixels)."""

    radius_px: float
    n_picks: int
    n_truth: int
    true_positives: int
    precision: float
    recall: float
    f1: float
    f2: float
    average_precision: float

    def as_dict(self) -> dict:
        return {k: (float(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _curve(matches: Sequence[Match]) -> Tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Scores (descending), precision and recall after each pick, and the number of true particles."""
    n_truth = int(sum(m.n_truth for m in matches))
    if not matches:
        return np.zeros(0), np.zeros(0), np.zeros(0), 0
    scores = np.concatenate([m.scores for m in matches])
    hits = np.concatenate([m.matched for m in matches])
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    k = np.arange(1, len(order) + 1)
    precision = tp / k
    recall = tp / n_truth if n_truth else np.zeros(len(k))
    return scores[order], precision, recall, n_truth


def _ap(precision: np.ndarray, recall: np.ndarray) -> float:
    if len(recall) == 0:
        return 0.0
    drec = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(precision * drec))


def evaluate_many(matches: Sequence[Match], radius: float) -> Evaluation:
    """Pooled figures over several micrographs' matchings."""
    n_picks = int(sum(len(m.matched) for m in matches))
    n_truth = int(sum(m.n_truth for m in matches))
    tp = int(sum(int(m.matched.sum()) for m in matches))
    prec = tp / n_picks if n_picks else 0.0
    rec = tp / n_truth if n_truth else 0.0
    _, p, r, _ = _curve(matches)
    return Evaluation(float(radius), n_picks, n_truth, tp, float(prec), float(rec), f_beta(prec, rec, 1),
                      f_beta(prec, rec, 2), _ap(p, r))


def evaluate(picks_xy: np.ndarray, truth_xy: np.ndarray, radius: float,
             scores: Optional[np.ndarray] = None) -> Evaluation:
    """Precision, recall, F1, F2 and AP of one micrograph's picks (all picks count)."""
    return evaluate_many([match_picks(picks_xy, truth_xy, radius, scores)], radius)


def best_f2_threshold(matches: Sequence[Match], beta: float = 2.0) -> Tuple[float, float]:
    """The score threshold with the highest F-beta over the pooled picks: ``(threshold, f_beta)``.

    Matching is done once with all picks; keeping picks with ``score >= threshold`` then gives
    the precision/recall of the curve at that point.
    """
    s, p, r, _ = _curve(matches)
    if len(s) == 0:
        return 0.5, 0.0
    b2 = beta * beta
    f = np.where((b2 * p + r) > 0, (1 + b2) * p * r / np.maximum(b2 * p + r, 1e-12), 0.0)
    # only thresholds between distinct scores are realisable
    last_of_value = np.r_[s[1:] != s[:-1], True]
    f = np.where(last_of_value, f, -1.0)
    k = int(np.argmax(f))
    return float(s[k]), float(f[k])


def plot_pr_curve(path: str, curves: Iterable[Tuple[str, Sequence[Match]]], title: str = "Precision-recall") -> None:
    """Write a precision-recall PNG: one line per ``(label, matches)``; atomic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepqs.io.atomic import atomic_output

    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=100)
    for label, matches in curves:
        _, p, r, _ = _curve(list(matches))
        ax.plot(np.r_[0.0, r], np.r_[1.0, p] if len(p) else [1.0], label=f"{label} (AP {_ap(p, r):.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
