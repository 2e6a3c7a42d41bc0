"""The multi-loss terms are wired: each changes the gradient when weighted, none does at weight 0."""

import math

import pytest
import torch

from deepqs.pruning.losses import LossHead, LossWeights, centre_loss, multi_loss
from deepqs.pruning.network import build_network

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"box_size": 32, "widths": [6, 12], "n_classes": 3}


def _grads(weights: LossWeights, epoch: int = 0):
    torch.manual_seed(0)
    net = build_network(TINY, seed=0)
    head = LossHead(net.embedding_dim, weights, net.n_classes)
    torch.manual_seed(1)
    x = torch.randn(12, 1, 32, 32)
    y = torch.arange(12) % 3
    logits, emb = net.forward_with_embedding(x)
    loss, parts = multi_loss(logits, emb, y, weights, head=head, aux_scale=weights.aux_scale(epoch))
    loss.backward()
    return torch.cat([p.grad.flatten() for p in net.parameters()]), parts, head


def test_centre_loss_values():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1])
    # batch means: class 0 (0.5, 0.5), class 1 (1, 0): ½ (0.5 + 0.5 + 0 + 0) / 4
    assert centre_loss(z, y).item() == pytest.approx(0.125, rel=1e-6)
    assert centre_loss(z, y, torch.tensor([[1.0, 0.0], [1.0, 0.0]])).item() == pytest.approx(0.5 * 2 / 4, rel=1e-6)


@pytest.mark.parametrize("term", [dict(focal=1.0), dict(supcon=1.0), dict(supcon=1.0, proj_dim=8),
                                  dict(centre=1.0)])
def test_each_term_changes_the_gradient(term):
    ce, _, _ = _grads(LossWeights(1.0, 0.0, 0.0))
    g, parts, head = _grads(LossWeights(**{"ce": 1.0, "focal": 0.0, "supcon": 0.0, **term}))
    assert not torch.allclose(g, ce)
    name = [k for k in ("focal", "supcon", "centre") if term.get(k)][0]
    assert name in parts and math.isfinite(parts[name])
    if term.get("proj_dim"):                    # the projection head is trained (gets gradients)
        assert head.proj is not None and all(p.grad is not None for p in head.proj.parameters())
    if term.get("centre"):
        assert head.centres is not None and head.centres.grad is not None


def test_zero_weight_and_warmup_leave_cross_entropy():
    ce, parts, head = _grads(LossWeights(1.0, 0.0, 0.0, centre=0.0, proj_dim=0))
    assert set(parts) == {"ce"} and head.proj is None and head.centres is None
    # every auxiliary term on, but inside the warm-up: the gradient is cross-entropy's
    w = LossWeights(1.0, 1.0, 1.0, centre=1.0, proj_dim=8, warmup=2)
    g, parts, _ = _grads(w, epoch=1)
    assert set(parts) == {"ce"} and torch.allclose(g, ce)
    g2, parts2, _ = _grads(w, epoch=2)
    assert set(parts2) == {"ce", "focal", "supcon", "centre"} and not torch.allclose(g2, ce)
