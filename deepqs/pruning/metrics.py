"""Classification figures for pruning: accuracy, macro-F1, balanced accuracy, the balanced threshold."""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

__all__ = ["confusion", "accuracy", "macro_f1", "balanced_accuracy", "balanced_threshold", "binary_report",
           "estimate_good_fraction", "prior_shifted_threshold", "expected_f1_threshold"]


def confusion(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts, rows = truth, columns = prediction."""
    t = np.asarray(truth, np.int64)
    p = np.asarray(pred, np.int64)
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def accuracy(truth: np.ndarray, pred: np.ndarray) -> float:
    t = np.asarray(truth)
    return float(np.mean(t == np.asarray(pred))) if t.size else float("nan")


def macro_f1(truth: np.ndarray, pred: np.ndarray, n_classes: int = 2) -> float:
    """Mean over the classes present in ``truth`` of F1 = 2·TP / (2·TP + FP + FN)."""
    c = confusion(truth, pred, n_classes)
    tp = np.diag(c).astype(float)
    denom = 2 * tp + (c.sum(0) - tp) + (c.sum(1) - tp)
    present = c.sum(1) > 0
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return float(f1[present].mean()) if present.any() else float("nan")


def balanced_accuracy(good: np.ndarray, kept: np.ndarray) -> float:
    """Mean of the recall of good items and the rejection rate of bad items."""
    g = np.asarray(good, bool)
    k = np.asarray(kept, bool)
    parts = [np.mean(k[g])] if g.any() else []
    parts += [np.mean(~k[~g])] if (~g).any() else []
    return float(np.mean(parts)) if parts else float("nan")


def balanced_threshold(p_particle: np.ndarray, good: np.ndarray) -> float:
    """The threshold on ``p_particle`` maximising balanced accuracy (midpoint between scores; 0.5 if one class)."""
    p = np.asarray(p_particle, np.float64)
    g = np.asarray(good, bool)
    if g.all() or not g.any():
        return 0.5
    order = np.argsort(p)
    ps, gs = p[order], g[order]
    # threshold between ps[k-1] and ps[k]: items k.. kept
    n_good, n_bad = gs.sum(), (~gs).sum()
    bad_below = np.concatenate([[0], np.cumsum(~gs)])           # rejected bad for cut k
    good_above = n_good - np.concatenate([[0], np.cumsum(gs)])  # kept good for cut k
    bacc = 0.5 * (good_above / n_good + bad_below / n_bad)
    distinct = np.concatenate([[True], ps[1:] > ps[:-1], [True]])  # cuts between equal scores are not possible
    bacc = np.where(distinct, bacc, -1)
    k = int(np.argmax(bacc))
    if k == 0:
        return float(ps[0])
    if k == len(ps):
        return float(np.nextafter(ps[-1], np.inf))
    return float(0.5 * (ps[k - 1] + ps[k]))


def binary_report(p_particle: np.ndarray, good: np.ndarray, threshold: float) -> Dict[str, float]:
    """Accuracy, macro-F1, balanced accuracy and the F1 of each class of ``p_particle >= threshold`` (good vs bad)."""
    g = np.asarray(good, bool)
    k = np.asarray(p_particle) >= threshold
    tp, fp, fn, tn = (int(np.sum(g & k)), int(np.sum(~g & k)), int(np.sum(g & ~k)), int(np.sum(~g & ~k)))
    return {"accuracy": accuracy(g, k), "macro_f1": macro_f1(g.astype(int), k.astype(int), 2),
            "balanced_accuracy": balanced_accuracy(g, k),
            "f1_good": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan"),
            "f1_bad": 2 * tn / (2 * tn + fn + fp) if tn + fn + fp else float("nan"),
            "threshold": float(threshold), "n": int(g.size)}


def estimate_good_fraction(p_particle: np.ndarray, train_prior: float = 0.5, iters: int = 500,
                           tol: float = 1e-7) -> float:
    """Share of particles in a set of boxes, from their ``p_particle`` (EM of Saerens et al. 2002).

    The classifier's posteriors were learned at class prior ``train_prior`` (0.5: class-balanced
    training); the EM re-weights them to a prior ``π``, sets ``π`` to the mean adjusted posterior
    and repeats until it settles.  Assumes roughly calibrated posteriors.
    """
    p = np.clip(np.asarray(p_particle, np.float64), 1e-6, 1 - 1e-6)
    if p.size == 0:
        return float(train_prior)
    pi = float(train_prior)
    for _ in range(iters):
        a = pi / train_prior * p
        b = (1.0 - pi) / (1.0 - train_prior) * (1.0 - p)
        new = float(np.mean(a / (a + b)))
        new = min(max(new, 1e-4), 1 - 1e-4)
        if abs(new - pi) < tol:
            pi = new
            break
        pi = new
    return pi


def prior_shifted_threshold(threshold: float, good_fraction: float, train_prior: float = 0.5) -> float:
    """The threshold on ``p_particle`` moved from the training prior to ``good_fraction``.

    Bayes' rule: the log-odds of ``p_particle`` move by ``logit(good_fraction) - logit(train_prior)``,
    so a cut at ``threshold`` under the training prior becomes ``sigmoid(logit(threshold) -
    logit(good_fraction) + logit(train_prior))``.  With ``threshold`` at the balanced point this
    maximises the expected accuracy on a set with that share of particles.
    """
    def logit(v: float) -> float:
        v = min(max(float(v), 1e-6), 1 - 1e-6)
        return float(np.log(v / (1 - v)))

    z = logit(threshold) - logit(good_fraction) + logit(train_prior)
    return float(1.0 / (1.0 + np.exp(-z)))


def expected_f1_threshold(p_particle: np.ndarray, good_fraction: Optional[float] = None,
                          train_prior: float = 0.5) -> float:
    """The threshold on ``p_particle`` that maximises the *expected* good-vs-bad macro-F1 of this set.

    The posteriors are moved from ``train_prior`` to ``good_fraction`` (estimated with
    :func:`estimate_good_fraction` when None) and used as soft labels: for each cut, expected
    TP/FP/FN/TN are sums of the adjusted posteriors of the kept / rejected boxes.  No labels are
    needed, only the boxes being pruned: on a set that is mostly particles the cut moves down (fewer
    particles lost), on a balanced set it stays near the balanced point.
    """
    p = np.clip(np.asarray(p_particle, np.float64), 1e-6, 1 - 1e-6)
    if p.size < 2:
        return 0.5
    pi = estimate_good_fraction(p, train_prior) if good_fraction is None else float(good_fraction)
    a = pi / train_prior * p
    q = a / (a + (1.0 - pi) / (1.0 - train_prior) * (1.0 - p))
    order = np.argsort(-p)
    ps, qs = p[order], q[order]
    tp = np.cumsum(qs)                      # keep the first k+1 boxes (highest p)
    fp = np.cumsum(1.0 - qs)
    fn = qs.sum() - tp
    tn = (1.0 - qs).sum() - fp
    f1_good = 2 * tp / np.maximum(2 * tp + fp + fn, 1e-12)
    f1_bad = 2 * tn / np.maximum(2 * tn + fn + fp, 1e-12)
    score = f1_good + f1_bad
    distinct = np.concatenate([ps[1:] < ps[:-1], [True]])      # cuts only between different scores
    k = int(np.argmax(np.where(distinct, score, -1.0)))
    if k + 1 >= ps.size:
        return float(ps[-1])
    return float(0.5 * (ps[k] + ps[k + 1]))
