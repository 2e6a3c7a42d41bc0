"""Batched inference: class probabilities per box and the keep/reject decision.

Threshold "balanced" (the default) is the threshold stored with the model: chosen on the model's
validation data to maximise balanced accuracy (mean of particle recall and junk rejection) of
``p_particle >= threshold``; "adaptive" is chosen on the boxes being pruned, without labels: the
share of particles among them is estimated (EM on the posteriors) and the cut maximises the
expected good-vs-bad macro-F1 at that share
(:func:`deepqs.pruning.metrics.expected_f1_threshold`; better plain accuracy and F1 when most
boxes are particles, as in a decent auto-pick); a number in [0, 1] is used as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np
import torch

from deepqs.errors import InputError
from deepqs.pruning.model import PruningModel
from deepqs.pruning.network import normalise_boxes

__all__ = ["Prediction", "predict_proba", "prune", "resolve_threshold"]


@dataclass
class Prediction:
    """Per-box results.

    Attributes
    ----------
    proba : ndarray float32 (n, 3)
        Probabilities of (particle, ice, carbon); rows sum to 1.
    kept : ndarray bool (n,)
        ``proba[:, 0] >= threshold``.
    threshold : float
        The threshold on ``p_particle`` that was applied.
    """

    proba: np.ndarray
    kept: np.ndarray
    threshold: float

    @property
    def p_particle(self) -> np.ndarray:
        return self.proba[:, 0]


def _dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k``-th (0..7) of the 8 rotations/flips of the square boxes ``x`` (B, 1, S, S)."""
    if k >= 4:
        x = torch.flip(x, dims=(3,))
    return torch.rot90(x, k % 4, dims=(2, 3))


def predict_proba(model: PruningModel, boxes: np.ndarray, batch_size: int = 256,
                  progress: Optional[Callable[[int, int], None]] = None, device: str = "cpu",
                  tta: bool = False) -> np.ndarray:
    """Probabilities ``(n, 3)`` for boxes ``(n, S, S)`` at the network size (normalised here).

    Eval mode, ``torch.inference_mode``, batches of ``batch_size`` boxes on ``device`` ("cpu",
    "cuda[:N]" or "auto"; a GPU that is not visible falls back to the CPU with a warning).
    ``tta``: test-time augmentation, the mean of the probabilities over the 8 rotations by 90° and
    flips of each box (the labels do not depend on orientation; 8× slower, a little more accurate:
    ``docs/benchmarks.md``, "Particle pruning").
    """
    from deepqs.device import resolve_device

    dev = resolve_device(device) if device != "cpu" else torch.device("cpu")
    arr = np.asarray(boxes, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[1:] != (model.box_size, model.box_size):
        raise InputError(None, f"boxes must be (n, {model.box_size}, {model.box_size}), got {arr.shape}")
    net = model.net.fused().to(dev)      # BatchNorm folded: same outputs, faster
    out = np.empty((arr.shape[0], net.n_classes), np.float32)
    with torch.inference_mode():
        for s in range(0, arr.shape[0], batch_size):
            x = normalise_boxes(torch.from_numpy(arr[s:s + batch_size]).to(dev))
            if tta:
                pr = sum(torch.softmax(net(_dihedral(x, k)), dim=1) for k in range(8)) / 8.0
            else:
                pr = torch.softmax(net(x), dim=1)
            out[s:s + batch_size] = pr.float().cpu().numpy()
            if progress is not None:
                progress(min(s + batch_size, arr.shape[0]), arr.shape[0])
    return out


def resolve_threshold(model: PruningModel, threshold: Union[str, float, None],
                      p_particle: Optional[np.ndarray] = None) -> float:
    """"balanced"/None -> the model's stored threshold; "adaptive" -> chosen on ``p_particle`` (module
    doc; needs the scores of the boxes being pruned); a number in [0, 1] as given."""
    if threshold is None or threshold == "balanced":
        return float(model.threshold)
    if threshold == "adaptive":
        if p_particle is None:
            raise InputError(None, "threshold 'adaptive' needs the scores of the boxes being pruned")
        from deepqs.pruning.metrics import expected_f1_threshold

        return expected_f1_threshold(p_particle) if len(p_particle) >= 2 else float(model.threshold)
    t = float(threshold)
    if not 0.0 <= t <= 1.0:
        raise InputError(None, f"threshold must be in [0, 1], 'balanced' or 'adaptive', got {threshold}")
    return t


def prune(model: PruningModel, boxes: np.ndarray, threshold: Union[str, float, None] = "balanced",
          batch_size: int = 256, device: str = "cpu", tta: bool = False) -> Prediction:
    """Score ``boxes`` and keep those with ``p_particle >= threshold`` (``tta``: see :func:`predict_proba`)."""
    proba = predict_proba(model, boxes, batch_size, device=device, tta=tta)
    t = resolve_threshold(model, threshold, proba[:, 0])
    return Prediction(proba, proba[:, 0] >= t, t)
