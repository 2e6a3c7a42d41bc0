"""Classification figures for pruning: accuracy, macro-F1, balanced accuracy, the balanced threshold."""

from __future__ import annotations

from typing import Dict

import numpy as np

__all__ = ["confusion", "accuracy", "macro_f1", "balanced_accuracy", "balanced_threshold", "binary_report"]


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
    """Accuracy, macro-F1 and balanced accuracy of ``p_particle >= threshold`` as good-vs-bad."""
    g = np.asarray(good, bool)
    k = np.asarray(p_particle) >= threshold
    return {"accuracy": accuracy(g, k), "macro_f1": macro_f1(g.astype(int), k.astype(int), 2),
            "balanced_accuracy": balanced_accuracy(g, k), "threshold": float(threshold), "n": int(g.size)}
