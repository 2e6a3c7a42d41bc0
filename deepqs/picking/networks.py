"""Window classifiers for particle picking, evaluable fully convolutionally.

Both networks classify a square window of ``box`` working pixels (particle or not) and use
*valid* convolutions only, so the score of every window of a micrograph comes out of one
convolutional pass (:meth:`WindowNet.score_map`): the fully connected layer is a convolution
with a kernel as large as its input, and pooling layers after the first ``n_real_pools`` are
evaluated at stride 1 with the following layers dilated ("à trous"), which gives exactly the
per-window scores on a grid of ``stride`` working pixels.

* :class:`DeepEMNet` (``"deepem"``): Zhu, Ouyang & Mao (2017) as published: conv(6) ->
  mean-pool -> conv(12) -> mean-pool -> conv(12) -> mean-pool -> fully connected -> sigmoid, with
  sigmoid activations and a squared-error loss.  Kernel sizes are those of the paper scaled to
  the working box (KLH: 272 px box, kernels 51/21/10).
* :class:`PickNet` (``"default"``): 3×3 convolutions with BatchNorm and ReLU, max-pooling, a
  fully connected layer as a convolution and a logit output trained with binary cross-entropy.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Pool", "WindowNet", "DeepEMNet", "PickNet", "ARCHITECTURES", "build_network"]


class Pool(nn.Module):
    """Non-overlapping ``k × k`` pooling (``mode`` "mean" or "max"); see :meth:`WindowNet.score_map`."""

    def __init__(self, k: int, mode: str = "mean"):
        super().__init__()
        if mode not in ("mean", "max"):
            raise ValueError(f"pool mode must be 'mean' or 'max', got {mode!r}")
        self.k = int(k)
        self.mode = mode

    def forward(self, x: torch.Tensor, dilation: int = 0) -> torch.Tensor:
        """Stride-k pooling (``dilation=0``), or stride-1 pooling with taps ``dilation`` apart."""
        k = self.k
        if dilation == 0:
            return F.avg_pool2d(x, k) if self.mode == "mean" else F.max_pool2d(x, k)
        if self.mode == "max":
            return F.max_pool2d(x, k, stride=1, dilation=dilation)
        c = x.shape[1]
        w = torch.full((c, 1, k, k), 1.0 / (k * k), dtype=x.dtype, device=x.device)
        return F.conv2d(x, w, dilation=dilation, groups=c)


class WindowNet(nn.Module):
    """A window classifier built from valid convolutions, pools and point-wise layers.

    Subclasses fill ``self.layers`` and set ``architecture``, ``output`` ("probability" or
    "logit") and ``config`` (the constructor's keyword arguments, stored in weights headers).
    """

    architecture = "window"
    output = "logit"

    def __init__(self, box: int):
        super().__init__()
        self.box = int(box)
        self.layers = nn.ModuleList()
        self.config: Dict = {}

    # ---- geometry -----------------------------------------------------------------------------
    @property
    def pool_sizes(self) -> List[int]:
        return [m.k for m in self.layers if isinstance(m, Pool)]

    def strides(self) -> List[int]:
        """Possible score-map strides (working px): products of the leading pool sizes."""
        out, s = [1], 1
        for k in self.pool_sizes:
            s *= k
            out.append(s)
        return out

    def _check_geometry(self) -> None:
        """Raise ValueError unless a ``box × box`` window reduces exactly to 1 × 1."""
        n = self.box
        for m in self.layers:
            if isinstance(m, nn.Conv2d):
                n = n - m.kernel_size[0] + 1
            elif isinstance(m, Pool):
                if n % m.k:
                    raise ValueError(f"box {self.box}: size {n} before a {m.k}x pool is not divisible")
                n //= m.k
            if n < 1:
                raise ValueError(f"box {self.box} is too small for these kernels")
        if n != 1:
            raise ValueError(f"box {self.box} reduces to {n} x {n}, not 1 x 1; adjust the kernels")

    # ---- evaluation ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw output (logit or probability, see ``output``) of ``(n, 1, box, box)`` windows: ``(n,)``.

        Larger inputs give the raw map at the stride of all pools, shape ``(n, 1, h', w')``.
        """
        for m in self.layers:
            x = m(x)
        if x.shape[-1] == 1 and x.shape[-2] == 1:
            return x.reshape(x.shape[0])
        return x

    def raw_map(self, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
        """Raw output of every window of ``x`` (n, 1, H, W) whose corner lies on a ``stride`` grid.

        Returns ``(n, 1, (H - box) // stride + 1, (W - box) // stride + 1)``; element ``[i, j]`` is
        the output for the window with top-left corner ``(row i*stride, column j*stride)``.
        """
        if stride not in self.strides():
            raise ValueError(f"stride {stride} not possible; choose one of {self.strides()}")
        real, dil = stride, 1
        for m in self.layers:
            if isinstance(m, Pool):
                if real > 1:
                    x = m(x)
                    real //= m.k
                else:
                    x = m(x, dilation=dil)
                    dil *= m.k
            elif isinstance(m, nn.Conv2d):
                x = F.conv2d(x, m.weight, m.bias, dilation=dil)
            else:
                x = m(x)
        return x

    def probability(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw outputs -> probabilities of 'particle'."""
        return raw if self.output == "probability" else torch.sigmoid(raw)

    def score_map(self, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
        """Probability of 'particle' for every window on the ``stride`` grid (see :meth:`raw_map`)."""
        return self.probability(self.raw_map(x, stride))

    def loss(self, raw: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Training loss: squared error on probabilities or binary cross-entropy on logits."""
        if self.output == "probability":
            per = (raw - target) ** 2
        else:
            per = F.binary_cross_entropy_with_logits(raw, target, reduction="none")
        if weight is not None:
            return (per * weight).sum() / weight.sum().clamp_min(1e-12)
        return per.mean()


class DeepEMNet(WindowNet):
    """DeepEM (Zhu et al. 2017): 3 × (conv + sigmoid + mean-pool), fully connected, sigmoid.

    Parameters (working pixels)
    ---------------------------
    box : int
        Window size; default 36 (1.5 particle diameters at 24 px per diameter).
    kernels : (k1, k2, k3)
        Convolution kernel sizes; default (7, 4, 3), the paper's 51/21/10 of a 272 box scaled
        and rounded so that the box reduces exactly.
    pools : (p1, p2, p3)
        Mean-pool sizes (paper: 3/2/2 for KLH; default 2/2/2).
    channels : (c1, c2, c3)
        Feature maps; the paper's 6/12/12.
    """

    architecture = "deepem"
    output = "probability"

    def __init__(self, box: int = 36, kernels: Sequence[int] = (7, 4, 3), pools: Sequence[int] = (2, 2, 2),
                 channels: Sequence[int] = (6, 12, 12)):
        super().__init__(box)
        self.config = {"box": int(box), "kernels": [int(k) for k in kernels], "pools": [int(p) for p in pools],
                       "channels": [int(c) for c in channels]}
        cin = 1
        size = int(box)
        for k, p, c in zip(kernels, pools, channels):
            self.layers.append(nn.Conv2d(cin, int(c), int(k)))
            self.layers.append(nn.Sigmoid())
            self.layers.append(Pool(int(p), "mean"))
            size = (size - int(k) + 1) // int(p)
            cin = int(c)
        if size < 1:
            raise ValueError(f"box {box} is too small for kernels {list(kernels)}")
        self.layers.append(nn.Conv2d(cin, 1, size))       # fully connected layer as a convolution
        self.layers.append(nn.Sigmoid())
        self._check_geometry()


class PickNet(WindowNet):
    """Modern default: (conv3-BN-ReLU) × 2 -> max-pool -> × 2 -> max-pool -> conv3 -> max-pool -> FC -> FC.

    Parameters (working pixels)
    ---------------------------
    box : int
        Window size, default 36; must reduce exactly (36 or 36 + 8·k).
    channels : (c1, c2, c3)
        Feature maps of the three stages.
    hidden : int
        Width of the hidden fully connected layer.
    """

    architecture = "default"
    output = "logit"

    def __init__(self, box: int = 36, channels: Sequence[int] = (16, 32, 64), hidden: int = 64):
        super().__init__(box)
        self.config = {"box": int(box), "channels": [int(c) for c in channels], "hidden": int(hidden)}
        c1, c2, c3 = (int(c) for c in channels)

        def block(cin: int, cout: int, k: int = 3) -> List[nn.Module]:
            return [nn.Conv2d(cin, cout, k, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        size = ((int(box) - 4) // 2 - 4) // 2 - 2
        if size < 2 or size % 2:
            raise ValueError(f"box {box} does not fit PickNet; use 36, 44, 52, ...")
        size //= 2
        layers: List[nn.Module] = []
        layers += block(1, c1) + block(c1, c1) + [Pool(2, "max")]
        layers += block(c1, c2) + block(c2, c2) + [Pool(2, "max")]
        layers += block(c2, c3) + [Pool(2, "max")]
        layers += [nn.Conv2d(c3, int(hidden), size), nn.ReLU(), nn.Conv2d(int(hidden), 1, 1)]
        self.layers.extend(layers)
        self._check_geometry()


#: Known architectures by name (for :func:`deepqs.io.load_network`).
ARCHITECTURES = {"deepem": DeepEMNet, "default": PickNet}


def build_network(arch: str = "default", **config) -> WindowNet:
    """A new network of architecture ``arch`` ("default" or "deepem") with ``config``."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**config)
