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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ["LossWeights", "focal_loss", "supcon_loss", "multi_loss"]


@dataclass
class LossWeights:
    """Weights of the three terms and their parameters (γ of the focal loss, τ of SupCon)."""

    ce: float = 1.0
    focal: float = 1.0
    supcon: float = 1.0
    gamma: float = 2.0
    temperature: float = 0.2

    def as_dict(self) -> Dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


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


def multi_loss(logits: torch.Tensor, embedding: torch.Tensor, target: torch.Tensor, weights: LossWeights,
               class_weight: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, float]]:
    """``(total, {"ce": .., "focal": .., "supcon": ..})`` for one batch (terms with weight 0 are skipped)."""
    total = logits.sum() * 0.0
    parts: Dict[str, float] = {}
    if weights.ce:
        ce = F.cross_entropy(logits, target, weight=class_weight)
        total = total + weights.ce * ce
        parts["ce"] = float(ce.detach())
    if weights.focal:
        fl = focal_loss(logits, target, weights.gamma, class_weight)
        total = total + weights.focal * fl
        parts["focal"] = float(fl.detach())
    if weights.supcon:
        sc = supcon_loss(embedding, target, weights.temperature)
        total = total + weights.supcon * sc
        parts["supcon"] = float(sc.detach())
    return total, parts
