"""The pruning classifier: a compact ResNet-style CNN on normalised, resampled particle boxes.

Input: ``(batch, 1, S, S)`` float32 boxes, ``S = box_size`` (64 px by default), each box
normalised by :func:`normalise_boxes` (zero mean, unit standard deviation per box; values then
clipped to ±``CLIP_SIGMA``).  Because of that normalisation the scores do not depend on the
micrograph's intensity offset or scale (``a·box + b`` with ``a > 0`` scores like ``box``).
Protein is expected **dark** on a brighter background, as in raw micrographs (the sign is not
normalised away: inverted-contrast data must be inverted first).

Output: logits of 3 classes, in this order (:data:`CLASSES`):

0. ``particle``: a single particle centred in the box;
1. ``ice``: ice/contamination blobs, aggregates, crystalline-ice-like texture and empty ice;
2. ``carbon``: carbon film and carbon/hole edges.

The good/bad score is ``p_particle = softmax(logits)[0]``.

Architecture ``"deepqs_prune_resnet"``: stem (3×3 conv stride 2, BatchNorm, ReLU, 2×2 average pool:
64 → 16 px), then ``len(widths)`` stages of one basic residual block each (two 3×3 convs with
BatchNorm, identity or 1×1-stride-2 shortcut; every stage after the first halves the size), global
average pooling -> ``embedding`` (dimension ``widths[-1]``) -> linear 3-class head.  With the
default widths (16, 32, 64) it has ~0.08 M parameters and costs ~3 M multiply-adds per 64-px box.
For inference :meth:`PruneNet.fused` folds every BatchNorm into the convolution before it (same
outputs to float precision, ~10 % faster).
"""

from __future__ import annotations

import copy
from typing import Dict, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ARCHITECTURE", "ARCHITECTURES", "CLASSES", "CLIP_SIGMA", "DEFAULT_CONFIG", "PruneNet",
           "build_network", "normalise_boxes"]

ARCHITECTURE = "deepqs_prune_resnet"
#: Class names in output order; the good/bad score is the probability of class 0.
CLASSES: Tuple[str, str, str] = ("particle", "ice", "carbon")
#: Normalised box values are clipped to ± this many standard deviations (hot pixels, gold).
CLIP_SIGMA = 5.0
DEFAULT_CONFIG: Dict = {"box_size": 64, "widths": [16, 32, 64], "n_classes": 3}


def normalise_boxes(boxes: np.ndarray | torch.Tensor, clip: float = CLIP_SIGMA) -> torch.Tensor:
    """Per-box normalisation: subtract each box's mean, divide by its standard deviation, clip.

    ``boxes``: ``(n, S, S)`` or ``(n, 1, S, S)``; returns float32 ``(n, 1, S, S)``.  A constant box
    (standard deviation 0) becomes all zeros.  Vectorised over the batch.
    """
    x = torch.as_tensor(np.asarray(boxes, dtype=np.float32) if not isinstance(boxes, torch.Tensor) else boxes,
                        dtype=torch.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"boxes must be (n, S, S) or (n, 1, S, S), got {tuple(x.shape)}")
    flat = x.reshape(x.shape[0], -1)
    mean = flat.mean(dim=1, keepdim=True)
    centred = flat - mean
    std = centred.square().mean(dim=1, keepdim=True).sqrt_()
    out = centred / torch.where(std > 0, std, torch.ones_like(std))
    return out.clamp_(-clip, clip).reshape(x.shape)


class _Block(nn.Module):
    """Basic residual block: conv-BN-ReLU-conv-BN + shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.short is None else self.short(x)), inplace=True)


class PruneNet(nn.Module):
    """(B, 1, S, S) normalised boxes -> (B, n_classes) logits; :meth:`embed` gives the features."""

    architecture = ARCHITECTURE

    def __init__(self, box_size: int = 64, widths: Sequence[int] = (16, 32, 64), n_classes: int = 3):
        super().__init__()
        widths = [int(w) for w in widths]
        if box_size < 16 or not widths or min(widths) < 1 or n_classes < 2:
            raise ValueError(f"bad PruneNet config: box_size={box_size}, widths={widths}, n_classes={n_classes}")
        self.box_size, self.widths, self.n_classes = int(box_size), widths, int(n_classes)
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True), nn.AvgPool2d(2))
        blocks = []
        cin = widths[0]
        for i, w in enumerate(widths):
            blocks.append(_Block(cin, w, 1 if i == 0 else 2))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cin, self.n_classes)

    @property
    def embedding_dim(self) -> int:
        return self.widths[-1]

    @property
    def config(self) -> Dict:
        """Constructor arguments (the weights header's ``config``)."""
        return {"box_size": self.box_size, "widths": list(self.widths), "n_classes": self.n_classes}

    def backbone_parameters(self):
        """Every parameter but the classification head (frozen in the first fine-tuning phase)."""
        return [p for n, p in self.named_parameters() if not n.startswith("head.")]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) -> (B, embedding_dim) pooled features."""
        return self.blocks(self.stem(x)).mean(dim=(2, 3))

    def forward_with_embedding(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        e = self.embed(x)
        return self.head(e), e

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def fused(self) -> "PruneNet":
        """An eval-mode copy with each BatchNorm folded into its convolution (for inference only)."""
        net = copy.deepcopy(self).eval()
        _fold(net.stem, 0, 1)
        for blk in net.blocks:
            blk.conv1, blk.bn1 = _folded(blk.conv1, blk.bn1), nn.Identity()
            blk.conv2, blk.bn2 = _folded(blk.conv2, blk.bn2), nn.Identity()
            if blk.short is not None:
                _fold(blk.short, 0, 1)
        return net


def _folded(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """``bn(conv(x))`` as one convolution (eval-mode BatchNorm statistics)."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True)
    out.weight.data = conv.weight.detach() * scale[:, None, None, None]
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(scale)
    out.bias.data = (bias - bn.running_mean) * scale + bn.bias.detach()
    return out.eval()


def _fold(seq: nn.Sequential, i_conv: int, i_bn: int) -> None:
    seq[i_conv] = _folded(seq[i_conv], seq[i_bn])
    seq[i_bn] = nn.Identity()


#: Architecture name -> constructor, for :func:`deepqs.io.weights.load_network`.
ARCHITECTURES = {ARCHITECTURE: PruneNet}


def build_network(config: Dict | None = None, seed: int = 0) -> PruneNet:
    """A randomly initialised :class:`PruneNet` (deterministic for ``seed``; global RNG untouched)."""
    cfg = dict(DEFAULT_CONFIG if config is None else config)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return PruneNet(**cfg)
    finally:
        torch.random.set_rng_state(state)
