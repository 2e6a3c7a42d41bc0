"""The local-Q network: a compact 3D U-Net with a tanh output (local Q in [-1, 1]).

Input: one channel, the normalised map (:mod:`deepqs.localq.normalise`) at 1 Å/voxel, shape
(batch, 1, D, H, W) with D, H, W multiples of ``2 ** depth``.  Output: (batch, 1, D, H, W), the
Q-score an atom centred on each voxel would get (σ = 0.6 Å).

Architecture ``"deepqs_localq_unet3d"``: ``depth`` down-sampling levels; each level has two
3×3×3 convolutions with LeakyReLU (no normalisation layer, so a voxel's output does not depend
on the statistics of the tile it was predicted in); max-pooling down, trilinear up-sampling plus
skip concatenation up; a 1×1×1 convolution and tanh at the end.  Channels ``base · 2 ** level``.
With ``base=12, depth=3`` it has ~0.5 M parameters (2 MB) and a receptive field of ~60 Å.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["ARCHITECTURE", "LocalQUNet", "ARCHITECTURES", "DEFAULT_CONFIG", "build_network"]

ARCHITECTURE = "deepqs_localq_unet3d"
DEFAULT_CONFIG: Dict[str, int] = {"base": 12, "depth": 3}


class _Block(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv3d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                         nn.Conv3d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))


class LocalQUNet(nn.Module):
    """3D U-Net: (B, 1, D, H, W) normalised density -> (B, 1, D, H, W) local Q in [-1, 1]."""

    def __init__(self, base: int = 12, depth: int = 3):
        super().__init__()
        if base < 1 or depth < 0:
            raise ValueError(f"base must be >= 1 and depth >= 0, got {base}, {depth}")
        self.base, self.depth = int(base), int(depth)
        ch = [base * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([_Block(1 if i == 0 else ch[i - 1], ch[i]) for i in range(depth + 1)])
        self.up = nn.ModuleList([_Block(ch[i + 1] + ch[i], ch[i]) for i in reversed(range(depth))])
        self.head = nn.Conv3d(ch[0], 1, 1)

    @property
    def multiple(self) -> int:
        """Input sizes must be multiples of this (``2 ** depth``)."""
        return 2 ** self.depth

    def config(self) -> Dict[str, int]:
        """Constructor arguments (the weights header's ``config``)."""
        return {"base": self.base, "depth": self.depth}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < self.depth:
                skips.append(x)
                x = F.max_pool3d(x, 2)
        for block, skip in zip(self.up, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[2:], mode="trilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return torch.tanh(self.head(x))


#: Architecture name -> constructor, for :func:`deepqs.io.weights.load_network`.
ARCHITECTURES = {ARCHITECTURE: LocalQUNet}


def build_network(config: Dict[str, int] = None, seed: int = 0) -> LocalQUNet:
    """A randomly initialised network (deterministic for ``seed``)."""
    cfg = dict(DEFAULT_CONFIG if config is None else config)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return LocalQUNet(**cfg)
    finally:
        torch.random.set_rng_state(gen_state)
