"""Choosing the torch device: one rule for every command.

``"auto"`` takes the first visible CUDA GPU when there is one, else the CPU.  ``"cuda"`` or
``"cuda:N"`` asks for a GPU; when none is visible the work runs on the CPU with a warning on
stderr (never silently, never a crash), unless ``strict=True``.  GPU indices are relative to
the visible devices (``CUDA_VISIBLE_DEVICES``, which queue systems set): the engine never
changes that variable.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence, Union

from deepqs.errors import InputError


def resolve_device(requested: Union[str, "torch.device", None] = "auto", gpus: Optional[Sequence[int]] = None,
                   strict: bool = False, warn=None) -> "torch.device":
    """The torch device to run on.

    ``gpus`` (e.g. Scipion's ``%(GPU)s`` list) picks the first listed visible GPU and implies
    CUDA.  ``warn`` is called with the fallback message (default: print to stderr).
    """
    import torch

    name = "auto" if requested is None else str(requested)
    if gpus:
        name = f"cuda:{int(gpus[0])}"
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise InputError(None, f"unknown device {name!r}: use cpu, cuda, cuda:N or auto") from None
    if dev.type != "cuda":
        return dev
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = 0 if dev.index is None else dev.index
    if n == 0 or index >= n:
        reason = ("no CUDA GPU is visible" if n == 0 else f"GPU {index} is not visible ({n} visible)")
        if strict:
            raise InputError(None, f"--device {name}: {reason}")
        message = f"warning: --device {name} asked for a GPU but {reason}; running on the CPU (slower)"
        (warn or (lambda m: print(m, file=sys.stderr, flush=True)))(message)
        return torch.device("cpu")
    return torch.device("cuda", index)
