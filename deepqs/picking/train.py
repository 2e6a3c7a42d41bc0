"""Train a window classifier from micrographs and particle centres.

Positives are windows centred on the given particles (jittered by up to
:attr:`TrainConfig.jitter_px` working pixels); negatives are explicit ones (e.g. verified false
positives) plus windows sampled away from every positive: half anywhere at least
``neg_min_distance`` diameters from a particle, half in a ring just outside that distance (they
teach the network to localise).  Every sample is rotated by a random multiple of 90° and
randomly mirrored.  Each epoch draws as many negatives as positives (class balance).  Validation
uses held-out micrographs (3 or more micrographs) or held-out particles; training stops early when
the validation loss (or, with ``select_by="ap"``, the validation average precision of the picks)
stops improving and keeps the best weights.  The "auto" threshold is the score with the highest F2
on the validation micrographs (particle-free ones included: all their picks are false positives),
and the standard-deviation range is learned from the training positives.

Few labels: training from scratch (no ``init``) on fewer than :data:`FEW_LABELS` (1000) labelled
particles automatically uses :data:`FEW_LABEL_RECIPE` (``TrainConfig.few_labels``): every positive is
drawn 8 times per epoch (with as many negatives), each window is resampled from a larger one with a
rotation by any angle, a mirror, a scale within ±5 % and a contrast within ±20 %, and early stopping
keeps the weights with the best average precision of the picks on the held-out micrograph(s).  On
simulated micrographs (200 labels on 4 micrographs, 6 other micrographs tested; 6 development seed pairs
apart from the benchmark's) it raised the mean F1 at 0.5x radius from 0.90 to 0.94 (worst pair 0.86 ->
0.91) and the mean AP from 0.88 to 0.94.  On the benchmark's own seeds (``bench_picking.py --small-train``)
the AP rose from 0.78 to 0.90 but the F1 at the auto threshold fell from 0.81 to 0.78: the max-F2 threshold
chosen on one held-out micrograph was too low there (precision 0.65, recall 0.98).

Micrographs without particles (empty ice, pure noise, carbon) may be given as examples with no
positives: they contribute random negatives only.

Iterative retraining ("iteratively knowledgeable", DeepEM): pass ``init`` (a previous model) and
examples holding verified true positives as positives and verified false positives as
``negatives``.  :func:`mine_hard_negatives` collects such false positives automatically from
*fully labelled* micrographs (every pick scoring above a floor that is not near a labelled
particle: junk, carbon edges, ice, the gap between two neighbours).

Resuming: with ``checkpoint`` the weights and history go to the checkpoint file after every
epoch and the optimiser state, the random generator, the best weights so far and the
early-stopping counters to ``<checkpoint>.state``; a resumed run continues exactly where the
interrupted one stopped (on the CPU, the same result as an uninterrupted run).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from deepqs.picking.evaluate import Match, best_f2_threshold, match_picks
from deepqs.picking.model import PickerModel, load_model, save_model
from deepqs.picking.networks import WindowNet, build_network
from deepqs.picking.pick import STD_MARGIN, pick_prepared, sample_std
from deepqs.picking.preprocess import PreparedMicrograph

__all__ = ["TrainingExample", "TrainConfig", "TrainResult", "extract_windows", "sample_negatives", "train_picker",
           "finetune_picker", "learn_std_range", "calibrate_threshold", "mine_hard_negatives", "state_path",
           "freeze_layers", "FEW_LABELS", "FEW_LABEL_RECIPE", "few_label_config", "uses_few_label_recipe"]


@dataclass
class TrainingExample:
    """One micrograph at working scale with its labels, in *original* micrograph pixels.

    ``positives``: (n, 2) particle centres (x, y); ``negatives``: (m, 2) explicit non-particle
    centres (verified false positives, carbon, ice) or None.
    """

    prepared: PreparedMicrograph
    positives: np.ndarray
    negatives: Optional[np.ndarray] = None

    def working(self, xy: Optional[np.ndarray]) -> np.ndarray:
        if xy is None or len(xy) == 0:
            return np.zeros((0, 2))
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        xw, yw = self.prepared.to_working(xy[:, 0], xy[:, 1])
        return np.stack([xw, yw], axis=1)


@dataclass
class TrainConfig:
    """Training settings (lengths in working pixels unless a name says otherwise)."""

    arch: str = "default"
    config: Dict = field(default_factory=dict)
    epochs: int = 30
    max_windows_per_epoch: int = 8192
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    patience: int = 5
    seed: int = 0
    jitter_px: float = 1.5
    neg_min_distance: float = 0.4      # diameters
    ring_max_distance: float = 1.0     # diameters
    score_stride_px: int = 2
    device: str = "cpu"
    threads: Optional[int] = None
    progress: bool = True
    max_seconds: Optional[float] = None
    #: What early stopping and the kept weights follow: "loss" (validation loss) or "ap" (average
    #: precision at 0.5x radius of the picks on the validation micrographs; needs validation
    #: micrographs, falls back to "loss" otherwise).  Particle-free validation micrographs count
    #: all their picks as false positives.
    select_by: str = "loss"
    #: Fine-tuning: the first ``freeze_convs`` convolutions (and their BatchNorm layers) keep their
    #: weights; with ``freeze_bn_stats`` every BatchNorm layer keeps its running statistics (it stays in
    #: evaluation mode), so a few hundred labels cannot shift the features of a pretrained network.
    freeze_convs: int = 0
    freeze_bn_stats: bool = False
    #: Augmentation: "rot90" (random k·90° rotation and mirror of every window) or "full" (additionally
    #: a random rotation by any angle, a scale factor within ±``scale_jitter``, a contrast factor within
    #: ±``contrast_jitter`` and added Gaussian noise of up to ``noise_jitter`` working-image standard
    #: deviations; bilinear resampling from a larger window, so no zero corners).
    augment: str = "rot90"
    scale_jitter: float = 0.0
    contrast_jitter: float = 0.0
    noise_jitter: float = 0.0
    #: Each training positive is drawn this many times per epoch (each time with its own jitter and
    #: augmentation); negatives follow ``negatives_per_positive`` (their number per drawn positive).
    positive_repeats: int = 1
    negatives_per_positive: float = 1.0
    #: Training targets become ``label_smoothing`` (negatives) and ``1 - label_smoothing`` (positives):
    #: bounded logits, so the scores of a small training set do not saturate at 1.0 (ties in the ranking).
    label_smoothing: float = 0.0
    #: The few-label recipe (:data:`FEW_LABEL_RECIPE`, see :func:`few_label_config`): None = automatic
    #: (on when training from scratch, without ``init``, on fewer than :data:`FEW_LABELS` labelled
    #: particles), True / False = always / never.  When on, the recipe's values replace those fields.
    few_labels: Optional[bool] = None


#: Below this many labelled particles (all micrographs together) training from scratch uses the few-label recipe.
FEW_LABELS = 1000

#: Settings of the few-label recipe (chosen on simulated micrographs with 200 labels, seeds apart from the
#: benchmark's): every positive drawn 8 times per epoch with rotations by any angle, ±5 % scale and ±20 %
#: contrast, and early stopping / kept weights on the average precision of the picks on held-out micrographs.
FEW_LABEL_RECIPE: Dict = {"augment": "full", "scale_jitter": 0.05, "contrast_jitter": 0.2, "positive_repeats": 8,
                          "select_by": "ap"}


def few_label_config(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with the :data:`FEW_LABEL_RECIPE` values (and ``few_labels=True``)."""
    from dataclasses import replace

    return replace(cfg, few_labels=True, **FEW_LABEL_RECIPE)


def uses_few_label_recipe(cfg: TrainConfig, n_labels: int, init: Optional[PickerModel] = None) -> bool:
    """Whether :func:`train_picker` applies the few-label recipe for ``n_labels`` labelled particles."""
    if cfg.few_labels is not None:
        return bool(cfg.few_labels)
    return init is None and int(n_labels) < FEW_LABELS


@dataclass
class TrainResult:
    """What training produced."""

    model: PickerModel
    history: List[Dict[str, float]]
    best_epoch: int
    epochs_run: int
    n_train_positives: int
    n_val_positives: int
    threshold_source: str
    stopped_early: bool
    few_label_recipe: bool = False


def extract_windows(image: np.ndarray, xw: np.ndarray, yw: np.ndarray, box: int) -> np.ndarray:
    """``(n, box, box)`` windows of ``image`` centred on working-pixel ``(xw, yw)``; zero outside.

    The window of centre c starts at ``round(c - (box - 1) / 2)`` (same geometry as the score map).
    """
    img = np.asarray(image, dtype=np.float32)
    pad = box
    padded = np.pad(img, pad)
    x0 = np.rint(np.asarray(xw) - (box - 1) / 2.0).astype(int) + pad
    y0 = np.rint(np.asarray(yw) - (box - 1) / 2.0).astype(int) + pad
    h, w = padded.shape
    x0 = np.clip(x0, 0, w - box)
    y0 = np.clip(y0, 0, h - box)
    d = np.arange(box)
    return padded[(y0[:, None] + d)[:, :, None], (x0[:, None] + d)[:, None, :]]


def sample_negatives(shape: Tuple[int, int], positives: np.ndarray, n: int, min_dist: float,
                     rng: np.random.Generator, ring: Optional[Tuple[float, float]] = None) -> np.ndarray:
    """``(k <= n, 2)`` random working-pixel centres at least ``min_dist`` from every positive.

    With ``ring = (r0, r1)`` the candidates are drawn at a distance in [r0, r1) of a random positive.
    """
    from scipy.spatial import cKDTree

    h, w = shape
    if n <= 0:
        return np.zeros((0, 2))
    m = 4 * n + 16
    if ring is not None and len(positives):
        base = positives[rng.integers(0, len(positives), m)]
        ang = rng.uniform(0, 2 * np.pi, m)
        rad = rng.uniform(ring[0], ring[1], m)
        cand = base + np.stack([np.cos(ang), np.sin(ang)], 1) * rad[:, None]
    else:
        cand = np.stack([rng.uniform(0, w - 1, m), rng.uniform(0, h - 1, m)], 1)
    inside = (cand[:, 0] >= 0) & (cand[:, 1] >= 0) & (cand[:, 0] <= w - 1) & (cand[:, 1] <= h - 1)
    cand = cand[inside]
    if len(positives):
        d, _ = cKDTree(positives).query(cand, k=1)
        cand = cand[d >= min_dist]
    return cand[:n]


def _augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random rotation by k·90° and random mirror per sample (vectorised per group)."""
    k = torch.from_numpy(rng.integers(0, 4, len(x)))
    flip = torch.from_numpy(rng.random(len(x)) < 0.5)
    x = torch.where(flip[:, None, None, None], torch.flip(x, dims=(3,)), x)
    out = x.clone()
    for r in range(1, 4):
        sel = k == r
        if bool(sel.any()):
            out[sel] = torch.rot90(x[sel], r, dims=(2, 3))
    return out


def _augment_margin(box: int, cfg: TrainConfig) -> int:
    """Extra working pixels on each side of a window that the "full" augmentation resamples from."""
    if cfg.augment != "full":
        return 0
    return int(math.ceil(0.5 * box * (math.sqrt(2.0) * (1.0 + max(cfg.scale_jitter, 0.0)) - 1.0))) + 1


def _augment_full(x: torch.Tensor, box: int, cfg: TrainConfig, rng: np.random.Generator) -> torch.Tensor:
    """Windows ``(n, 1, big, big)`` -> ``(n, 1, box, box)`` rotated by any angle, mirrored, scaled, with
    contrast and noise jitter (one bilinear resampling of the whole batch)."""
    import torch.nn.functional as F

    n, big = len(x), x.shape[-1]
    ang = rng.uniform(0.0, 2.0 * np.pi, n)
    mirror = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    sj = max(cfg.scale_jitter, 0.0)
    scale = np.exp(rng.uniform(-math.log1p(sj), math.log1p(sj), n)) if sj > 0 else np.ones(n)
    f = scale * box / big                  # output normalised coordinates -> input normalised coordinates
    c, s = np.cos(ang) * f, np.sin(ang) * f
    theta = np.zeros((n, 2, 3), dtype=np.float32)
    theta[:, 0, 0], theta[:, 0, 1] = c * mirror, -s
    theta[:, 1, 0], theta[:, 1, 1] = s * mirror, c
    grid = F.affine_grid(torch.from_numpy(theta), [n, 1, box, box], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.contrast_jitter > 0:
        g = rng.uniform(1.0 - cfg.contrast_jitter, 1.0 + cfg.contrast_jitter, n).astype(np.float32)
        out = out * torch.from_numpy(g)[:, None, None, None]
    if cfg.noise_jitter > 0:
        sig = rng.uniform(0.0, cfg.noise_jitter, n).astype(np.float32)
        noise = rng.standard_normal((n, 1, box, box), dtype=np.float32) * sig[:, None, None, None]
        out = out + torch.from_numpy(noise)
    return out


def learn_std_range(examples: Sequence[TrainingExample], working_diameter_px: float,
                    margin: float = STD_MARGIN) -> Optional[Tuple[float, float]]:
    """The 1st-99th percentile range of the window std at the positives, widened by ``margin``."""
    vals = []
    for ex in examples:
        p = ex.working(ex.positives)
        if len(p):
            vals.append(sample_std(ex.prepared, p[:, 0], p[:, 1], working_diameter_px))
    if not vals:
        return None
    v = np.concatenate(vals)
    lo, hi = np.percentile(v, [1, 99])
    return float(lo / margin), float(hi * margin)


def _split(examples: Sequence[TrainingExample], frac: float, rng: np.random.Generator):
    """(train examples, val examples, by_micrograph)."""
    n = len(examples)
    if n >= 3 and frac > 0:
        n_val = max(1, int(round(frac * n)))
        idx = rng.permutation(n)
        val = set(idx[:n_val].tolist())
        return [e for i, e in enumerate(examples) if i not in val], [e for i, e in enumerate(examples) if i in val], True
    tr, va = [], []
    for e in examples:
        k = len(e.positives)
        perm = rng.permutation(k)
        n_val = int(round(frac * k)) if k >= 5 else 0
        tr.append(TrainingExample(e.prepared, e.positives[perm[n_val:]], e.negatives))
        va.append(TrainingExample(e.prepared, e.positives[perm[:n_val]], None))
    return tr, va, False


def _epoch_data(examples: Sequence[TrainingExample], box: int, d_work: float, cfg: TrainConfig,
                rng: np.random.Generator, cap: int, all_pos: Optional[Sequence[np.ndarray]] = None,
                jitter: bool = True, repeats: int = 1, neg_ratio: float = 1.0):
    """Windows, targets and weights of one balanced epoch.

    ``box``: window size in working pixels (the network box plus any augmentation margin);
    ``repeats``: draws of every positive; ``neg_ratio``: negatives per drawn positive.
    """
    xs, ys = [], []
    per = max(1, cap // max(1, 2 * len(examples)))
    for i, ex in enumerate(examples):
        pos = ex.working(ex.positives)
        avoid = all_pos[i] if all_pos is not None else pos
        if repeats > 1 and len(pos):
            pos = np.repeat(pos, int(repeats), axis=0)
        if len(pos) > per:
            pos = pos[rng.choice(len(pos), per, replace=False)]
        if jitter and len(pos):
            pos = pos + rng.uniform(-cfg.jitter_px, cfg.jitter_px, pos.shape)
        explicit = ex.working(ex.negatives)
        if len(pos) == 0:                       # micrograph without particles: random negatives only
            n_free = max(1, per)
            if len(explicit) > n_free:
                explicit = explicit[rng.choice(len(explicit), n_free, replace=False)]
            n_neg = n_free
        else:
            if len(explicit) > len(pos):        # at most one explicit negative per positive per epoch
                explicit = explicit[rng.choice(len(explicit), len(pos), replace=False)]
            n_neg = max(int(round(neg_ratio * len(pos))) - len(explicit), len(pos) // 2)
        md = cfg.neg_min_distance * d_work
        neg_ring = sample_negatives(ex.prepared.image.shape, avoid, n_neg // 2, md, rng,
                                    ring=(md, cfg.ring_max_distance * d_work))
        if len(pos) == 0:
            neg_ring = np.zeros((0, 2))
        neg_any = sample_negatives(ex.prepared.image.shape, avoid, n_neg - len(neg_ring), md, rng)
        neg = np.concatenate([explicit, neg_ring, neg_any]) if len(explicit) else np.concatenate([neg_ring, neg_any])
        for arr, lab in ((pos, 1.0), (neg, 0.0)):
            if len(arr):
                xs.append(extract_windows(ex.prepared.image, arr[:, 0], arr[:, 1], box))
                ys.append(np.full(len(arr), lab, dtype=np.float32))
    if not xs:
        return None
    x = torch.from_numpy(np.concatenate(xs))[:, None]
    y = torch.from_numpy(np.concatenate(ys))
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    w = torch.where(y > 0.5, 0.5 / max(n_pos, 1.0), 0.5 / max(n_neg, 1.0)) * len(y)
    return x, y, w


def _loss_on(net: WindowNet, data, device, batch: int) -> float:
    x, y, w = data
    net.eval()
    total, wsum = 0.0, 0.0
    with torch.no_grad():
        for i in range(0, len(x), 1024):
            xb, yb, wb = x[i:i + 1024].to(device), y[i:i + 1024].to(device), w[i:i + 1024].to(device)
            raw = net(xb)
            total += float(net.loss(raw, yb, wb) * wb.sum())
            wsum += float(wb.sum())
    return total / max(wsum, 1e-12)


def calibrate_threshold(model: PickerModel, examples: Sequence[TrainingExample],
                        device: str = "cpu") -> Tuple[float, float]:
    """The threshold with the highest F2 (at 0.5x the particle radius) on labelled micrographs: ``(threshold, F2)``."""
    return _auto_threshold(model, examples, device)


def _auto_threshold(model: PickerModel, examples: Sequence[TrainingExample], device) -> Tuple[float, float]:
    matches = _val_matches(model, examples, device)
    if not matches or sum(m.n_truth for m in matches) == 0:
        return 0.5, 0.0
    return best_f2_threshold(matches)


def _val_matches(model: PickerModel, examples: Sequence[TrainingExample], device) -> List[Match]:
    """Matchings at 0.5x radius of all picks (no threshold); particle-free micrographs give only false positives."""
    matches: List[Match] = []
    for ex in examples:
        picks = pick_prepared(model, ex.prepared, threshold=None, std_range="model", device=device)
        r = 0.5 * ex.prepared.diameter_px * 0.5          # 0.5 x particle radius, original pixels
        pos = np.asarray(ex.positives, float).reshape(-1, 2)
        matches.append(match_picks(np.stack([picks.x, picks.y], 1), pos, r, picks.score))
    return matches


def state_path(checkpoint: str) -> str:
    """The file holding the optimiser and loop state that goes with ``checkpoint``."""
    return os.fspath(checkpoint) + ".state"


def _save_state(checkpoint: str, epoch: int, opt, rng: np.random.Generator, best_state, best_val: float,
                best_epoch: int, bad: int) -> None:
    from deepqs.io.atomic import atomic_output

    obj = {"epoch": int(epoch), "optimizer": opt.state_dict(), "rng": json.dumps(rng.bit_generator.state),
           "best_state": {k: v.detach().cpu().clone() for k, v in best_state.items()},
           "best_val": float(best_val), "best_epoch": int(best_epoch), "bad": int(bad)}
    with atomic_output(state_path(checkpoint)) as tmp:
        torch.save(obj, tmp)


def _load_state(checkpoint: str, epoch: int) -> Optional[dict]:
    """The loop state saved with ``checkpoint`` at ``epoch``, or None (absent, stale or unreadable)."""
    p = state_path(checkpoint)
    if not os.path.exists(p):
        return None
    try:
        obj = torch.load(p, weights_only=True, map_location="cpu")
    except Exception:                       # a damaged state file: resume the weights only
        return None
    if not isinstance(obj, dict) or int(obj.get("epoch", -1)) != int(epoch):
        return None
    return obj


def mine_hard_negatives(model: PickerModel, examples: Sequence[TrainingExample], min_score: float = 0.1,
                        min_distance_diameters: float = 0.5, max_per_micrograph: Optional[int] = None,
                        device: str = "cpu") -> Tuple[List[TrainingExample], int]:
    """False positives of ``model`` on *fully labelled* micrographs, added to their explicit negatives.

    Every pick (std filter on, no threshold) scoring ``>= min_score`` whose centre lies at least
    ``min_distance_diameters`` particle diameters from every labelled particle becomes a negative
    (DeepEM's verified false positives, found from the labels).  Only use micrographs on which
    every particle is labelled: an unlabelled particle would be taught as a negative.
    Returns ``(new examples, number of negatives added)``; ``max_per_micrograph`` keeps the
    highest-scoring ones.
    """
    from scipy.spatial import cKDTree

    out, total = [], 0
    for ex in examples:
        picks = pick_prepared(model, ex.prepared, threshold=None, std_range="model", device=device)
        xy = np.stack([picks.x, picks.y], 1)
        keep = picks.score >= min_score
        if len(ex.positives) and len(xy):
            d, _ = cKDTree(np.asarray(ex.positives, float).reshape(-1, 2)).query(xy, k=1)
            keep &= d >= min_distance_diameters * ex.prepared.diameter_px
        new = xy[keep]                       # picks come sorted by decreasing score
        if max_per_micrograph is not None:
            new = new[:max_per_micrograph]
        total += len(new)
        old = np.zeros((0, 2)) if ex.negatives is None else np.asarray(ex.negatives, float).reshape(-1, 2)
        neg = np.concatenate([old, new]) if len(old) or len(new) else None
        out.append(TrainingExample(ex.prepared, ex.positives, neg))
    return out, total


def freeze_layers(net: WindowNet, n_convs: int) -> List[torch.nn.Module]:
    """Fix the weights of the first ``n_convs`` convolutions of ``net`` and of the layers up to the next one
    (BatchNorm); the last convolution (the output layer) always stays trainable.  Returns the frozen modules."""
    frozen: List[torch.nn.Module] = []
    n_total = sum(1 for m in net.layers if isinstance(m, torch.nn.Conv2d))
    n_convs = min(int(n_convs), n_total - 1)
    seen = 0
    for m in net.layers:
        if isinstance(m, torch.nn.Conv2d):
            if seen >= n_convs:
                break
            seen += 1
        if seen:
            for prm in m.parameters():
                prm.requires_grad_(False)
            frozen.append(m)
    return frozen


def _set_train_mode(net: WindowNet, frozen: Sequence[torch.nn.Module], bn_stats: bool) -> None:
    """``net.train()``, except frozen layers and (with ``bn_stats``) BatchNorm layers, which stay in eval mode."""
    net.train()
    for m in net.modules():
        if (bn_stats and isinstance(m, torch.nn.modules.batchnorm._BatchNorm)) or any(m is f for f in frozen):
            m.eval()


def train_picker(examples: Sequence[TrainingExample], cfg: TrainConfig = TrainConfig(),
                 init: Optional[PickerModel] = None, checkpoint: Optional[str] = None,
                 log: Callable[[str], None] = lambda s: None,
                 val_examples: Optional[Sequence[TrainingExample]] = None) -> TrainResult:
    """Train (or continue training ``init``) on ``examples``; see the module docstring.

    ``checkpoint``: a weights path written after every epoch (with ``<checkpoint>.state``: optimiser,
    random generator, best weights, early-stopping counters); when it exists the run resumes from it
    and continues exactly (an old checkpoint without the state file resumes the weights, epoch count
    and history with a fresh optimiser, which ``log`` reports).  Deterministic for a
    given ``cfg.seed`` on the CPU.  ``val_examples``: explicit validation micrographs (otherwise
    a split of ``examples``, see the module docstring).
    """
    if not examples:
        raise ValueError("no training micrographs")
    if sum(len(e.positives) for e in examples) == 0:
        raise ValueError("no positive particles to train on")
    if cfg.select_by not in ("loss", "ap"):
        raise ValueError(f"select_by must be 'loss' or 'ap', got {cfg.select_by!r}")
    if cfg.augment not in ("rot90", "full"):
        raise ValueError(f"augment must be 'rot90' or 'full', got {cfg.augment!r}")
    few = uses_few_label_recipe(cfg, sum(len(e.positives) for e in examples)
                                + sum(len(e.positives) for e in (val_examples or ())), init)
    if few:
        cfg = few_label_config(cfg)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    from deepqs.device import resolve_device

    device = resolve_device(cfg.device)
    d_work = init.working_diameter_px if init is not None else float(
        np.median([e.prepared.diameter_px / e.prepared.scale[1] for e in examples]))
    if init is not None:
        net = init.net
    else:
        net = build_network(cfg.arch, **cfg.config)
    start_epoch, history, resume_state = 0, [], None
    if checkpoint and os.path.exists(checkpoint):
        prev = load_model(checkpoint)
        net = prev.net
        start_epoch = int(prev.info.get("epoch", 0))
        history = list(prev.info.get("history", []))
        resume_state = _load_state(checkpoint, start_epoch)
        log(f"resuming from {checkpoint} after epoch {start_epoch}"
            + ("" if resume_state is not None else " (no optimiser state found: the optimiser restarts)"))
    net = net.to(device)
    box = net.box
    if val_examples:
        train_ex, val_ex, by_mic = list(examples), list(val_examples), True
    else:
        train_ex, val_ex, by_mic = _split(examples, cfg.val_fraction, rng)
    all_pos = [e.working(e.positives) for e in examples] if not by_mic else None
    val_rng = np.random.default_rng(cfg.seed + 1)
    val_data = None
    if sum(len(e.positives) for e in val_ex):
        val_data = _epoch_data(val_ex, box, d_work, cfg, val_rng, cap=4096, all_pos=all_pos, jitter=False)
    margin = _augment_margin(box, cfg)
    frozen = freeze_layers(net, cfg.freeze_convs) if cfg.freeze_convs > 0 else []
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=cfg.weight_decay)
    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    best_val, best_epoch, bad, stopped = math.inf, start_epoch, 0, False
    by_ap = cfg.select_by == "ap" and by_mic and any(len(e.positives) for e in val_ex)
    std_range = learn_std_range(train_ex, d_work)
    if resume_state is not None:
        opt.load_state_dict(resume_state["optimizer"])
        rng.bit_generator.state = json.loads(resume_state["rng"])
        best_state = {k: v.to(device) for k, v in resume_state["best_state"].items()}
        best_val = float(resume_state["best_val"])
        best_epoch, bad = int(resume_state["best_epoch"]), int(resume_state["bad"])
    t0 = time.time()
    bar = None
    if cfg.progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs, initial=start_epoch, unit="epoch", desc="train", file=sys.stderr, leave=False)
    epoch = start_epoch
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        data = _epoch_data(train_ex, box + 2 * margin, d_work, cfg, rng, cfg.max_windows_per_epoch, all_pos=all_pos,
                           repeats=max(1, int(cfg.positive_repeats)), neg_ratio=cfg.negatives_per_positive)
        x, y, w = data
        perm = torch.from_numpy(rng.permutation(len(x)))
        _set_train_mode(net, frozen, cfg.freeze_bn_stats)
        tot, n = 0.0, 0
        for i in range(0, len(x), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            if len(idx) < 2:
                continue
            xb = (_augment_full(x[idx], box, cfg, rng) if margin else _augment(x[idx], rng)).to(device)
            yb, wb = y[idx].to(device), w[idx].to(device)
            if cfg.label_smoothing > 0:
                yb = yb * (1.0 - 2.0 * cfg.label_smoothing) + cfg.label_smoothing
            loss = net.loss(net(xb), yb, wb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * len(idx)
            n += len(idx)
        train_loss = tot / max(n, 1)
        val_loss = _loss_on(net, val_data, device, cfg.batch_size) if val_data is not None else train_loss
        entry = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}
        crit = val_loss
        if by_ap:
            net.eval()
            probe = PickerModel(net, d_work, cfg.score_stride_px, std_range, 0.5)
            from deepqs.picking.evaluate import evaluate_many

            entry["val_ap"] = evaluate_many(_val_matches(probe, val_ex, device), 0.5).average_precision
            crit = -entry["val_ap"]
        history.append(entry)
        log(f"epoch {epoch}: train loss {train_loss:.4f}, validation loss {val_loss:.4f}"
            + (f", validation AP {entry['val_ap']:.4f}" if by_ap else ""))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}")
        if crit < best_val - 1e-4:
            best_val, best_epoch, bad = crit, epoch, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
        if checkpoint:
            _save_state(checkpoint, epoch, opt, rng, best_state, best_val, best_epoch, bad)
            save_model(checkpoint, PickerModel(net, d_work, cfg.score_stride_px,
                                               info={"epoch": epoch, "history": history}))
        if bad >= cfg.patience:
            stopped = True
            log(f"early stop: no improvement for {cfg.patience} epochs (best epoch {best_epoch})")
            break
        if cfg.max_seconds is not None and time.time() - t0 > cfg.max_seconds:
            stopped = True
            log(f"time limit reached after epoch {epoch}")
            break
    if bar is not None:
        bar.close()
    net.load_state_dict(best_state)
    for prm in net.parameters():
        prm.requires_grad_(True)
    net.eval()
    model = PickerModel(net.cpu(), d_work, cfg.score_stride_px, std_range, 0.5)
    thr_ex = val_ex if by_mic else [TrainingExample(e.prepared, e.positives) for e in examples]
    thr, f2 = _auto_threshold(model, thr_ex, "cpu")
    model.threshold = thr
    source = "validation micrographs" if by_mic else "training micrographs (fewer than 3 micrographs)"
    model.info.update({"history": history, "best_epoch": best_epoch, "threshold_source": source,
                       "threshold_f2": f2, "arch": net.architecture, "few_label_recipe": few})
    return TrainResult(model, history, best_epoch, epoch, sum(len(e.positives) for e in train_ex),
                       sum(len(e.positives) for e in val_ex), source, stopped, few)


@dataclass
class FinetuneResult:
    """What :func:`finetune_picker` produced: the kept model and how the candidates scored."""

    model: PickerModel
    kept: str                      # "fine-tuned" or "initial"
    heldout_f2: Dict[str, float]   # max F2 at 0.5x radius on the held-out micrographs, per candidate
    train: Optional[TrainResult]   # the last fine-tuning run (None when nothing could be fine-tuned)
    n_mined: int
    n_heldout_micrographs: int


def finetune_picker(examples: Sequence[TrainingExample], init: PickerModel, cfg: TrainConfig,
                    val_examples: Optional[Sequence[TrainingExample]] = None, mine_rounds: int = 0,
                    mine_min_score: float = 0.1, keep_init: bool = True, threshold_on: str = "all",
                    log: Callable[[str], None] = lambda s: None) -> FinetuneResult:
    """Fine-tune a pretrained picker on a few labels, and keep it only if it beats the pretrained one.

    Held-out micrographs: ``val_examples``, or a ``cfg.val_fraction`` share of ``examples`` (at least
    one micrograph; needs 2 or more).  The weights are fine-tuned on the rest (``cfg``: typically a low
    learning rate, frozen early convolutions and BatchNorm statistics, early stopping on the held-out
    average precision), followed by ``mine_rounds`` hard-negative rounds (the model's own false positives
    on the fully labelled training micrographs).  With ``keep_init`` the pretrained model (weights
    unchanged) is kept instead when its max F2 at 0.5x radius on the held-out micrographs is at least as
    high as the fine-tuned one's.  The kept model's auto threshold is then re-chosen at max F2 on
    ``threshold_on``: "all" labelled micrographs (held-out and training ones: with a few labels one held-out
    micrograph gives a noisy threshold, and light fine-tuning barely biases the training micrographs'
    scores) or "heldout" ones only.  ``init`` itself is not modified.
    """
    if threshold_on not in ("all", "heldout"):
        raise ValueError(f"threshold_on must be 'all' or 'heldout', got {threshold_on!r}")
    import copy
    from dataclasses import replace

    if not examples:
        raise ValueError("no training micrographs")
    rng = np.random.default_rng(cfg.seed)
    if val_examples:
        tr, va = list(examples), list(val_examples)
    elif len(examples) >= 2:
        n_val = max(1, int(round(cfg.val_fraction * len(examples))))
        idx = rng.permutation(len(examples))
        held = set(idx[:n_val].tolist())
        tr = [e for i, e in enumerate(examples) if i not in held]
        va = [e for i, e in enumerate(examples) if i in held]
    else:
        tr, va = list(examples), []
    if not va or sum(len(e.positives) for e in va) == 0:
        # one micrograph: held-out particles only (train_picker's split); nothing to compare on
        res = train_picker(examples, cfg, init=copy.deepcopy(init), log=log)
        return FinetuneResult(res.model, "fine-tuned", {}, res, 0, 0)
    res = train_picker(tr, cfg, init=copy.deepcopy(init), val_examples=va, log=log)
    n_mined = 0
    for r in range(mine_rounds):
        tr, n_new = mine_hard_negatives(res.model, tr, min_score=mine_min_score, device=cfg.device)
        n_mined += n_new
        log(f"hard-negative round {r + 1}: {n_new} false positives added as negatives")
        if n_new == 0:
            break
        res = train_picker(tr, replace(cfg, seed=cfg.seed + r + 1, lr=cfg.lr * 0.3), init=res.model,
                           val_examples=va, log=log)
    scores = {"fine-tuned": float(res.model.info.get("threshold_f2", 0.0))}
    model, kept = res.model, "fine-tuned"
    if keep_init:
        base = copy.deepcopy(init)
        _, f2_base = _auto_threshold(base, va, "cpu")
        scores["initial"] = float(f2_base)
        log(f"held-out max F2: fine-tuned {scores['fine-tuned']:.4f}, initial model {f2_base:.4f}")
        if f2_base >= scores["fine-tuned"]:
            model, kept = base, "initial"
    if threshold_on == "all":
        model.threshold, f2_all = _auto_threshold(model, [TrainingExample(e.prepared, e.positives)
                                                          for e in list(tr) + list(va)], "cpu")
        model.info.update({"threshold_source": "all labelled micrographs (training and held-out)", "threshold_f2": f2_all})
    elif kept == "initial":
        model.threshold, f2_v = _auto_threshold(model, va, "cpu")
        model.info.update({"threshold_source": "held-out micrographs (weights not fine-tuned)", "threshold_f2": f2_v})
    model.info.update({"finetune_kept": kept, "finetune_heldout_f2": scores})
    return FinetuneResult(model, kept, scores, res, n_mined, len(va))
