"""Training the pruning classifier: pretraining on the simulated set, fine-tuning on few labels.

One function, :func:`train_classifier`, does both:

* **class balance**: every epoch draws ``samples_per_epoch`` boxes with replacement, each class
  equally likely (so p_particle = 0.5 is the natural decision point);
* **augmentation**: a random multiple of 90° rotation and a random flip per box (the labels do
  not depend on orientation), drawn per batch from ``(seed, epoch, batch)`` so the result does not
  depend on the number of loader workers;
* **validation split**: ``val_fraction`` of the micrographs (groups) when there are at least 5,
  else of the boxes of each class; early stopping on the validation loss (cross-entropy) with
  ``patience`` epochs, the best epoch's weights are kept;
* **fine-tuning schedule**: ``freeze_epochs`` epochs train only the head (backbone frozen,
  BatchNorm statistics fixed), then everything, the backbone at ``lr · backbone_lr_factor``;
* **the starting point counts** (fine-tuning, ``keep_init`` True): the pretrained model's own
  validation loss is "epoch 0" of the early stopping, so when no fine-tuning epoch does better on
  the validation labels the pretrained weights (and threshold) are returned unchanged: with few
  labels fine-tuning can then not make the model worse on them (``best_epoch`` 0);
* **too few labels to judge** (fine-tuning, ``keep_init`` True, a validation split asked for): when a
  labelled class has fewer than ``min_val_per_class`` validation boxes, nothing is trained and the pretrained model is returned
  unchanged (``skipped`` says why).  On real boxes (cryoppp_dev, 10 and 20 labels per class, i.e. 2 and
  4 validation boxes per class) early stopping on so few boxes kept epochs that lowered the ranking
  quality, and fine-tuning ended 0.05-0.07 macro-F1 *below* the pretrained model (``docs/benchmarks.md``);
* **threshold**: the p_particle threshold that maximises balanced accuracy on the validation boxes
  (when every class has at least ``MIN_VAL_FOR_THRESHOLD`` of them), else the pretrained model's
  threshold when fine-tuning (the head starts from it), else 0.5;
* **time budget**: ``max_seconds`` stops after the epoch that exceeds it (the best epoch is kept);
* **determinism**: the network initialisation, the split, the sampling and the augmentation come
  from ``seed``; loader workers get ``seed + worker_id`` for numpy and torch.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from deepqs.pruning.losses import LossHead, LossWeights, multi_loss
from deepqs.pruning.metrics import balanced_threshold, binary_report, macro_f1
from deepqs.pruning.model import PruningModel
from deepqs.pruning.network import DEFAULT_CONFIG, build_network, normalise_boxes
from deepqs.pruning.simulated import LabelledBoxes

__all__ = ["TrainConfig", "TrainResult", "train_classifier", "augment", "split_validation", "MIN_VAL_FOR_THRESHOLD",
           "MIN_VAL_FOR_FINETUNE"]

MIN_VAL_FOR_THRESHOLD = 30
MIN_VAL_FOR_FINETUNE = 10


@dataclass
class TrainConfig:
    """Training settings (see the module doc)."""

    epochs: int = 20
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    loss: LossWeights = field(default_factory=LossWeights)
    val_fraction: float = 0.2
    patience: int = 6
    freeze_epochs: int = 0
    backbone_lr_factor: float = 1.0
    samples_per_epoch: Optional[int] = None
    augment: bool = True
    seed: int = 0
    threads: Optional[int] = None
    num_workers: int = 0
    max_seconds: Optional[float] = None
    keep_init: bool = True
    #: fine-tuning with ``keep_init``: fewer validation boxes than this in a labelled class -> keep the
    #: pretrained model untouched (0: always fine-tune)
    min_val_per_class: int = MIN_VAL_FOR_FINETUNE
    network: Dict = field(default_factory=lambda: dict(DEFAULT_CONFIG))


@dataclass
class TrainResult:
    """The trained model and its history.

    ``history``: one dict per epoch (``epoch``, ``train_loss``, ``val_loss``, ``val_macro_f1``,
    ``seconds``); ``validation``: good-vs-bad figures of the kept model on the validation boxes at
    its threshold; ``best_epoch`` (1-based).
    """

    model: PruningModel
    history: List[Dict[str, float]]
    validation: Dict[str, float]
    best_epoch: int
    n_train: int
    n_val: int
    #: why nothing was trained (the pretrained model returned unchanged), else None
    skipped: Optional[str] = None


def augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random 90°-multiple rotation and horizontal flip per box of ``x`` (B, 1, S, S); 8 vectorised ops."""
    k = rng.integers(0, 4, x.shape[0])
    flip = rng.random(x.shape[0]) < 0.5
    out = x.clone()
    for r in range(4):
        for f in (False, True):
            sel = np.nonzero((k == r) & (flip == f))[0]
            if sel.size == 0:
                continue
            idx = torch.from_numpy(sel)
            v = x[idx]
            if f:
                v = torch.flip(v, dims=(3,))
            out[idx] = torch.rot90(v, r, dims=(2, 3))
    return out


def split_validation(data: LabelledBoxes, fraction: float, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices): by group when there are >= 5 groups, else stratified by class."""
    n = len(data)
    if fraction <= 0 or n < 4:
        return np.arange(n), np.zeros(0, np.int64)
    groups = np.unique(data.group)
    if groups.size >= 5:
        val_groups = rng.permutation(groups)[: max(1, int(round(fraction * groups.size)))]
        val = np.isin(data.group, val_groups)
        if all(np.any(data.labels[~val] == c) for c in np.unique(data.labels)):
            return np.nonzero(~val)[0], np.nonzero(val)[0]
    val_idx = []
    for c in np.unique(data.labels):                      # per class (3)
        idx = rng.permutation(np.nonzero(data.labels == c)[0])
        k = int(round(fraction * idx.size)) if idx.size >= 3 else 0
        val_idx.append(idx[:k])
    val = np.sort(np.concatenate(val_idx)).astype(np.int64)
    return np.setdiff1d(np.arange(n), val), val


def _balanced_indices(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    classes, counts = np.unique(labels, return_counts=True)
    w = (1.0 / counts)[np.searchsorted(classes, labels)]
    return rng.choice(labels.size, size=n, replace=True, p=w / w.sum())


class _Batches(torch.utils.data.Dataset):
    """Item ``b`` = augmented, normalised batch ``b`` of one epoch (indices fixed in advance)."""

    def __init__(self, boxes: np.ndarray, labels: np.ndarray, batches: List[np.ndarray], seed: int, epoch: int,
                 do_augment: bool):
        self.boxes, self.labels, self.batches = boxes, labels, batches
        self.seed, self.epoch, self.do_augment = seed, epoch, do_augment

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int):
        idx = self.batches[b]
        x = normalise_boxes(torch.from_numpy(self.boxes[idx]))
        if self.do_augment:
            x = augment(x, np.random.default_rng([self.seed, self.epoch, b]))
        return x, torch.from_numpy(self.labels[idx])


def _seed_worker(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    base = info.dataset.seed if info is not None else 0
    np.random.seed((base + worker_id) % 2**32)
    torch.manual_seed(base + worker_id)
    torch.set_num_threads(1)


def _unchanged(init: PruningModel, train: LabelledBoxes, val: LabelledBoxes, cfg: TrainConfig, reason: str,
               log: Optional[Callable[[str], None]]) -> TrainResult:
    """The pretrained model, untouched, as a :class:`TrainResult` (``skipped`` = ``reason``); its figures on the
    validation boxes when there are any."""
    if log is not None:
        log(reason)
    validation: Dict[str, float] = {}
    if len(val):
        _, vprob = _evaluate(init.net, val.boxes, val.labels)
        validation = binary_report(vprob[:, 0], val.labels == 0, float(init.threshold))
        validation["best_epoch"] = 0
    info = {**copy.deepcopy(init.info),
            "training": {"skipped": reason, "n_train": len(train), "n_val": len(val),
                         "class_counts_train": train.counts(), "seed": cfg.seed},
            "validation": validation,
            "fine_tuned_from": init.info.get("training_data", "a pretrained model")}
    model = PruningModel(net=copy.deepcopy(init.net), threshold=float(init.threshold),
                         threshold_rule=init.threshold_rule, box_to_diameter=init.box_to_diameter, info=info)
    return TrainResult(model, [], validation, 0, len(train), len(val), skipped=reason)


def _evaluate(net, boxes: np.ndarray, labels: np.ndarray, batch: int = 512) -> Tuple[float, np.ndarray]:
    """(mean cross-entropy, probabilities) on boxes, eval mode."""
    net.eval()
    probs, loss = [], 0.0
    with torch.inference_mode():
        for s in range(0, len(labels), batch):
            x = normalise_boxes(torch.from_numpy(boxes[s:s + batch]))
            logits = net(x)
            y = torch.from_numpy(labels[s:s + batch])
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            probs.append(torch.softmax(logits, 1).numpy())
    return loss / max(1, len(labels)), (np.concatenate(probs) if probs else np.zeros((0, 3), np.float32))


def _set_backbone_trainable(net, trainable: bool) -> None:
    for p in net.backbone_parameters():
        p.requires_grad_(trainable)


def _train_mode(net, backbone_frozen: bool) -> None:
    net.train()
    if backbone_frozen:                 # frozen backbone: BatchNorm running statistics stay as pretrained
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()


def train_classifier(data: LabelledBoxes, cfg: Optional[TrainConfig] = None, init: Optional[PruningModel] = None,
                     log: Optional[Callable[[str], None]] = None, val_data: Optional[LabelledBoxes] = None
                     ) -> TrainResult:
    """Train (``init`` None: from scratch) or fine-tune (``init``: a pretrained model) on ``data``.

    ``val_data`` replaces the internal validation split when given.  Returns a :class:`TrainResult`
    whose model carries the balanced threshold (module doc).  Deterministic for ``cfg.seed``.
    """
    cfg = TrainConfig() if cfg is None else cfg
    if len(data) == 0:
        raise ValueError("no training boxes")
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    if val_data is None:
        tr, va = split_validation(data, cfg.val_fraction, rng)
        train, val = data.select(tr), data.select(va)
    else:
        train, val = data, val_data
    if init is not None:
        net = copy.deepcopy(init.net)
        if net.box_size != train.boxes.shape[1]:
            raise ValueError(f"boxes are {train.boxes.shape[1]} px but the model takes {net.box_size} px")
        if cfg.keep_init and cfg.min_val_per_class > 0 and (val_data is not None or cfg.val_fraction > 0):
            classes = np.unique(data.labels if val_data is None else np.concatenate([data.labels, val_data.labels]))
            n_val_min = min(int(np.sum(val.labels == c)) for c in classes)
            if n_val_min < cfg.min_val_per_class:
                return _unchanged(init, train, val, cfg,
                                  f"{n_val_min} validation boxes in a labelled class (< {cfg.min_val_per_class}): too "
                                  "few to tell whether fine-tuning helps, so the pretrained model is kept unchanged", log)
    else:
        net = build_network({**cfg.network, "box_size": int(train.boxes.shape[1])}, seed=cfg.seed)
    head = list(net.head.parameters())
    loss_head = LossHead(net.embedding_dim, cfg.loss, net.n_classes)      # training-only loss parameters
    groups = [{"params": net.backbone_parameters(), "lr": cfg.lr * cfg.backbone_lr_factor},
              {"params": head, "lr": cfg.lr}]
    if list(loss_head.parameters()):
        groups.append({"params": list(loss_head.parameters()), "lr": cfg.lr})
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs), eta_min=cfg.lr * 0.05)
    n_per_epoch = int(cfg.samples_per_epoch or len(train))
    boxes = np.ascontiguousarray(train.boxes, dtype=np.float32)
    labels = train.labels.astype(np.int64)
    best = (np.inf, copy.deepcopy(net.state_dict()), 0)
    if init is not None and cfg.keep_init and len(val):          # epoch 0 = the pretrained model
        best = (_evaluate(net, val.boxes, val.labels)[0], copy.deepcopy(net.state_dict()), 0)
        if log is not None:
            log(f"pretrained model: val loss {best[0]:.4f}")
    history: List[Dict[str, float]] = []
    since_best = 0
    t_start = time.time()
    for epoch in range(cfg.epochs):                                       # per epoch
        t0 = time.time()
        frozen = epoch < cfg.freeze_epochs
        _set_backbone_trainable(net, not frozen)
        _train_mode(net, frozen)
        order = _balanced_indices(labels, n_per_epoch, rng)
        batches = [order[s:s + cfg.batch_size] for s in range(0, n_per_epoch, cfg.batch_size)]
        batches = [b for b in batches if b.size >= 2]
        ds = _Batches(boxes, labels, batches, cfg.seed, epoch, cfg.augment)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, shuffle=False, num_workers=cfg.num_workers,
                                             worker_init_fn=_seed_worker if cfg.num_workers else None)
        total, count = 0.0, 0
        for x, y in loader:                                               # per batch
            logits, emb = net.forward_with_embedding(x)
            loss, _ = multi_loss(logits, emb, y, cfg.loss, head=loss_head, aux_scale=cfg.loss.aux_scale(epoch))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(y)
            count += len(y)
        sched.step()
        row = {"epoch": epoch + 1, "train_loss": total / max(1, count), "frozen_backbone": bool(frozen)}
        if len(val):
            vloss, vprob = _evaluate(net, val.boxes, val.labels)
            row.update(val_loss=vloss, val_macro_f1=macro_f1(val.labels, vprob.argmax(1), 3))
            score = vloss
        else:
            score = row["train_loss"]
        row["seconds"] = time.time() - t0
        history.append(row)
        if log is not None:
            extra = f", val loss {row['val_loss']:.4f}, val macro-F1 {row['val_macro_f1']:.3f}" if len(val) else ""
            log(f"epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f}{extra} ({row['seconds']:.1f} s)"
                + (" [backbone frozen]" if frozen else ""))
        if score < best[0] - 1e-4:
            best = (score, copy.deepcopy(net.state_dict()), epoch + 1)
            since_best = 0
        else:
            since_best += 1
            if since_best >= cfg.patience and epoch + 1 > cfg.freeze_epochs:
                if log is not None:
                    log(f"early stop: no validation improvement for {cfg.patience} epochs")
                break
        if cfg.max_seconds is not None and time.time() - t_start > cfg.max_seconds:
            if log is not None:
                log(f"time budget of {cfg.max_seconds:.0f} s used up after epoch {epoch + 1}")
            break
    _set_backbone_trainable(net, True)
    net.load_state_dict(best[1])
    net.eval()
    threshold, rule, validation = 0.5, "fixed 0.5 (too few validation boxes)", {}
    if len(val):
        _, vprob = _evaluate(net, val.boxes, val.labels)
        good = val.labels == 0
        if min(int(good.sum()), int((~good).sum())) >= MIN_VAL_FOR_THRESHOLD:
            threshold = balanced_threshold(vprob[:, 0], good)
            rule = "max balanced accuracy of p_particle on the validation boxes"
        elif init is not None and best[2] == 0:
            threshold, rule = float(init.threshold), "the pretrained model's (its weights were kept: fine-tuning " \
                                                     "did not lower the validation loss)"
        elif init is not None:
            threshold, rule = float(init.threshold), "the pretrained model's (too few validation boxes to choose one)"
        validation = binary_report(vprob[:, 0], good, threshold)
        validation["best_epoch"] = int(best[2])
        validation["macro_f1_3class"] = macro_f1(val.labels, vprob.argmax(1), 3)
    info = {"training": {"epochs_run": len(history), "best_epoch": best[2], "n_train": len(train), "n_val": len(val),
                         "class_counts_train": train.counts(), "loss_weights": cfg.loss.as_dict(),
                         "lr": cfg.lr, "batch_size": cfg.batch_size, "freeze_epochs": cfg.freeze_epochs,
                         "seed": cfg.seed, "augment": "rot90 x flip" if cfg.augment else "none"},
            "validation": validation}
    if init is not None:
        info["fine_tuned_from"] = init.info.get("training_data", "a pretrained model")
    model = PruningModel(net=net, threshold=float(threshold), threshold_rule=rule,
                         box_to_diameter=init.box_to_diameter if init is not None else 1.85, info=info)
    return TrainResult(model, history, validation, best[2], len(train), len(val))
