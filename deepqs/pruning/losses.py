"""The pruning multi-loss: cross-entropy + focal loss + supervised contrastive loss.

``L = w_ce · CE + w_focal · Focal(γ) + w_supcon · SupCon(τ)``

* **Cross-entropy** on the 3-class logits (optionally class-weighted).
* **Focal loss** (Lin et al. 2017): ``mean(-(1 - p_t)^γ · log p_t)``, γ = 2 by default; it
  down-weights the many easy boxes so the rare, hard ones (a particle beside a carbon edge,
  a small ice blob) drive the gradient, which is what class imbalance in auto-picks needs.
* **Supervised contrastive loss** (Khosla et al. 2020) on the L2-normalised embedding: for every
  box ``i`` with at least one other box of its class in the batch,
  ``-1/|P(i)| Σ_{p∈P(i)} log( exp(z_i·z_p/τ) / Σ_{a≠i} exp(z_i·z_a/τ) )``, averaged over such boxes;
  τ = 0.2.  It pulls boxes of one class together in embedding space, which helps most when
  fine-tuning on few labels.  It was chosen over a centre loss because it has no extra
  parameters (class centres) that would have to be re-learned for each new data set.

Default weights ``(1.0, 1.0, 1.0)`` with γ = 2, τ = 0.2 (:class:`LossWeights`), chosen among six settings
by few-label (50 per class) training from scratch scored on a simulated *validation* set (seed 303,
never the benchmark's test set; ``docs/benchmarks.md``, "Particle pruning"); the shipped pretrained
model was trained with (1.0, 1.0, 0.2), τ = 0.1.  ``(1, 0, 0)`` is plain cross-entropy.

Optional, off by default (:class:`LossWeights` fields): ``centre`` (weight of a centre loss on the
normalised embedding, learned class centres), ``proj_dim`` (SupCon on a 2-layer projection head of
that output size instead of on the raw embedding, as in Khosla et al.), ``warmup`` (epochs of
cross-entropy only before the other terms switch on).  The projection head and the centres live in a
:class:`LossHead` that only exists during training.

Paired few-label comparison (``benchmarks/bench_pruning.py --parts fewlabel``; from scratch, same boxes
and seeds for both losses, 8-10 draws, simulated test seed 202): no setting beat cross-entropy alone.
The default (1, 1, 1) was *worse* from scratch on 50 labels per class (accuracy −0.023 ± 0.006 s.e.,
CE better in 8 of 10 draws); SupCon on a projection head (1, 0, 1, ``proj_dim`` 32, τ 0.1), the best on the
validation seed (+0.009 ± 0.003, 4 draws), was −0.002 ± 0.005 on the 10 test draws; with imbalanced
labels (50/50/10) focal alone (1, 1, 0) gave −0.004 ± 0.004 and the default −0.015 ± 0.007 (8 draws):
probably because training samples the classes evenly, which already removes the imbalance focal loss
is meant for.  Fine-tuning the shipped model on 10 or 20 real labels per class (``--parts fewlabel-ft``:
cryoppp_dev test split, variant frozen on a DEV pool of micrographs, 10 paired draws on the TEST pool):
CE + 0.1 SupCon vs CE alone was +0.0008 ± 0.0005 and +0.0006 ± 0.0006 macro-F1, identical models in 7 and 9
of 10 draws.  With the ``deepqs prune train`` schedule an embedding term cannot change the linear head while
the backbone is frozen, and most runs keep an epoch of that phase.  See ``docs/benchmarks.md``, "Particle pruning".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ["LossWeights", "LossHead", "focal_loss", "supcon_loss", "centre_loss", "multi_loss"]


@dataclass
class LossWeights:
    """Weights of the terms and their parameters (γ of the focal loss, τ of SupCon; ``centre``,
    ``proj_dim``, ``warmup``: see the module doc, 0 = off)."""

    ce: float = 1.0
    focal: float = 1.0
    supcon: float = 1.0
    gamma: float = 2.0
    temperature: float = 0.2
    centre: float = 0.0
    proj_dim: int = 0
    warmup: int = 0

    def as_dict(self) -> Dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    def aux_scale(self, epoch: int) -> float:
        """Factor of the focal, SupCon and centre terms in 0-based ``epoch``: 0 during ``warmup`` epochs
        (cross-entropy only), then 1."""
        return 0.0 if epoch < int(self.warmup) else 1.0


class LossHead(torch.nn.Module):
    """Training-only parameters of the loss (discarded after training): the SupCon projection head
    (``embedding -> Linear -> ReLU -> Linear -> proj_dim``, used when ``proj_dim > 0``) and the class
    centres of the centre loss (used when ``centre > 0``)."""

    def __init__(self, dim: int, weights: LossWeights, n_classes: int = 3):
        super().__init__()
        self.proj = None
        if int(weights.proj_dim) > 0:
            self.proj = torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.ReLU(),
                                            torch.nn.Linear(dim, int(weights.proj_dim)))
        self.centres = torch.nn.Parameter(torch.zeros(n_classes, dim)) if weights.centre else None

    def project(self, embedding: torch.Tensor) -> torch.Tensor:
        return embedding if self.proj is None else self.proj(embedding)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
               weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean focal loss ``-(1 - p_t)^γ log p_t`` (γ = 0 gives cross-entropy); ``weight`` per class."""
    logp = F.log_softmax(logits, dim=1).gather(1, target[:, None])[:, 0]
    loss = -((1.0 - logp.exp()).clamp_min(0.0) ** gamma) * logp
    if weight is not None:
        w = weight[target]
        return (loss * w).sum() / w.sum()
    return loss.mean()


def supcon_loss(embedding: torch.Tensor, target: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss of (B, D) embeddings (normalised here) with labels (B,).

    Boxes without a positive partner in the batch are left out; 0 when no box has one.
    """
    z = F.normalize(embedding, dim=1)
    sim = z @ z.t() / temperature
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (target[:, None] == target[None, :]) & ~eye
    n_pos = pos.sum(dim=1)
    has = n_pos > 0
    if not bool(has.any()):
        return embedding.sum() * 0.0
    mean_pos = torch.where(pos, log_prob, torch.zeros_like(log_prob)).sum(dim=1)[has] / n_pos[has]
    return -mean_pos.mean()


def centre_loss(embedding: torch.Tensor, target: torch.Tensor, centres: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Centre loss (Wen et al. 2016) on the L2-normalised embedding: mean of ``½‖z_i - c_{y_i}‖²``.

    ``centres`` (n_classes, D) are learned (:class:`LossHead`); None uses the batch's class means
    (detached), i.e. the within-class scatter of the batch.
    """
    z = F.normalize(embedding, dim=1)
    if centres is None:
        c = torch.zeros(int(target.max()) + 1, z.shape[1], dtype=z.dtype, device=z.device)
        c = c.index_add(0, target, z.detach()) / torch.bincount(target).clamp_min(1)[:, None].to(z.dtype)
    else:
        c = centres
    return 0.5 * (z - c[target]).square().sum(dim=1).mean()


def multi_loss(logits: torch.Tensor, embedding: torch.Tensor, target: torch.Tensor, weights: LossWeights,
               class_weight: Optional[torch.Tensor] = None, head: Optional[LossHead] = None,
               aux_scale: float = 1.0) -> Tuple[torch.Tensor, Dict[str, float]]:
    """``(total, {"ce": .., "focal": .., "supcon": .., "centre": ..})`` for one batch (terms with weight 0
    are skipped); ``head`` supplies the projection / centres, ``aux_scale`` multiplies every term but CE."""
    total = logits.sum() * 0.0
    parts: Dict[str, float] = {}
    if weights.ce:
        ce = F.cross_entropy(logits, target, weight=class_weight)
        total = total + weights.ce * ce
        parts["ce"] = float(ce.detach())
    if weights.focal and aux_scale:
        fl = focal_loss(logits, target, weights.gamma, class_weight)
        total = total + aux_scale * weights.focal * fl
        parts["focal"] = float(fl.detach())
    if weights.supcon and aux_scale:
        sc = supcon_loss(head.project(embedding) if head is not None else embedding, target, weights.temperature)
        total = total + aux_scale * weights.supcon * sc
        parts["supcon"] = float(sc.detach())
    if weights.centre and aux_scale:
        cl = centre_loss(embedding, target, head.centres if head is not None else None)
        total = total + aux_scale * weights.centre * cl
        parts["centre"] = float(cl.detach())
    return total, parts
