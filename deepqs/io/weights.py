"""Network weights: a ``state_dict`` plus a small JSON header, safe to load.

File layout (a regular ``torch.save`` zip file)::

    {"header": "<JSON text>", "state_dict": {"name": tensor, ...}}

It holds only tensors and strings, so it loads with ``torch.load(path, weights_only=True)``:
no pickled Python object is ever executed.  The header (a JSON object) must contain

* ``architecture`` (str): the network class/name the state_dict belongs to, e.g. ``"deepqs_unet3d"``;
* ``version`` (str or int): version of the weights (or of the architecture definition);

and should document

* ``training_data`` (str or object): what the network was trained on (data sets, sizes, simulation settings);
* ``input_pixel_size_A`` (float): the pixel/voxel size in Å the network expects its input at.

Any other JSON-able keys are kept.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
import zipfile
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import torch

from deepqs.errors import InputError, PathLike, check_input_file
from deepqs.io.atomic import atomic_output

__all__ = ["REQUIRED_HEADER_KEYS", "save_weights", "load_weights", "load_network"]

#: Keys every weights header must hold.
REQUIRED_HEADER_KEYS = ("architecture", "version")


def _check_header(header: Mapping[str, Any]) -> Dict[str, Any]:
    if not isinstance(header, Mapping):
        raise ValueError("the weights header must be a dict")
    missing = [k for k in REQUIRED_HEADER_KEYS if k not in header]
    if missing:
        raise ValueError(f"the weights header lacks {missing}")
    return dict(header)


def save_weights(path: PathLike, state_dict: Mapping[str, torch.Tensor], header: Mapping[str, Any]) -> None:
    """Write ``{"header": JSON text, "state_dict": tensors}`` with ``torch.save``, atomically.

    Tensors are detached, moved to the CPU and copied into compact storage (a view does not
    drag its whole base tensor into the file).  ``header`` must be JSON-able and hold
    ``architecture`` and ``version`` (see the module docstring for the documented keys).
    Raises ValueError for a non-tensor value or a bad header.
    """
    hdr = _check_header(header)
    try:
        text = json.dumps(hdr, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the weights header is not plain JSON: {exc}") from None
    clean: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise ValueError(f"state_dict key {key!r} is not a string")
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"state_dict[{key!r}] is a {type(value).__name__}, not a tensor")
        clean[key] = value.detach().to("cpu").contiguous().clone()
    with atomic_output(path) as tmp:
        torch.save({"header": text, "state_dict": clean}, tmp)


def load_weights(
    path: PathLike, expected_architecture: Optional[str] = None
) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Load ``(state_dict, header)`` from a file written by :func:`save_weights`.

    Uses ``torch.load(path, weights_only=True, map_location="cpu")``.

    Raises
    ------
    InputError
        Missing file; not a torch file (corrupt, truncated); a file holding arbitrary pickled
        objects (refused, never unpickled); no deepqs header or a header lacking
        ``architecture``/``version``; ``expected_architecture`` differing from the header's.
    """
    p = check_input_file(path, "weights file", allow_empty=False)
    with open(p, "rb") as fh:
        magic = fh.read(4)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4"
            obj = torch.load(p, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        text = str(exc)
        glob = re.search(r"GLOBAL ([\w.]+)", text)
        if glob:
            raise InputError(
                p,
                f"holds pickled Python objects ({glob.group(1)}) besides tensors and strings; refusing to load it "
                "(weights must load with torch.load(weights_only=True))",
            ) from None
        if magic[:1] == b"\x80" or magic.startswith(b"PK"):
            raise InputError(
                p,
                "is a pickle that weights_only=True cannot load safely (arbitrary Python objects, or not a "
                "deepqs weights file); refusing to unpickle it",
            ) from None
        raise InputError(p, "not a torch weights file (corrupt or unknown format)") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError, AttributeError, ImportError, TypeError) as exc:
        first = str(exc).splitlines()[0].split(". ")[0] if str(exc) else type(exc).__name__
        raise InputError(p, f"not a torch weights file (corrupt or truncated: {first})") from None
    if not isinstance(obj, dict) or "header" not in obj or "state_dict" not in obj:
        raise InputError(p, "not a deepqs weights file (expected a dict with 'header' and 'state_dict')")
    try:
        header = json.loads(obj["header"])
    except (TypeError, ValueError) as exc:
        raise InputError(p, f"the weights header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise InputError(p, "the weights header is not a JSON object")
    missing = [k for k in REQUIRED_HEADER_KEYS if k not in header]
    if missing:
        raise InputError(p, f"the weights header lacks {missing}")
    state = obj["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(p, "the state_dict must map names to tensors")
    if expected_architecture is not None and header["architecture"] != expected_architecture:
        raise InputError(
            p, f"weights are for architecture {header['architecture']!r}, expected {expected_architecture!r}"
        )
    return dict(state), header


def load_network(
    path: PathLike, architectures: Mapping[str, Callable[..., "torch.nn.Module"]]
) -> Tuple["torch.nn.Module", Dict[str, Any]]:
    """Build the network a weights file names and load its weights; return ``(network, header)``.

    ``architectures`` maps architecture names to constructors (the engine's known networks);
    the header's optional ``config`` object is passed to the constructor as keyword arguments.
    Only known architectures are built, and only tensors are loaded (``weights_only=True``).

    Raises InputError for an unknown architecture or weights that do not fit it (missing,
    unexpected or mis-shaped tensors).
    """
    state, header = load_weights(path)
    p = os.fspath(path)
    name = header["architecture"]
    if name not in architectures:
        known = ", ".join(sorted(architectures)) or "none"
        raise InputError(p, f"unknown architecture {name!r} (known: {known})")
    config = header.get("config", {})
    if not isinstance(config, dict):
        raise InputError(p, "the weights header 'config' must be a JSON object")
    try:
        net = architectures[name](**config)
    except TypeError as exc:
        raise InputError(p, f"the header's config does not fit architecture {name!r}: {exc}") from None
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise InputError(p, f"weights do not fit architecture {name!r}: {detail}") from None
    net.eval()
    return net, header


#: environment variable naming a folder of weights that replace the shipped defaults (a facility's
#: retrained models); the Scipion plugin sets it from its DEEPQS_WEIGHTS_DIR variable.
WEIGHTS_DIR_ENV = "DEEPQS_WEIGHTS_DIR"


def default_weights_file(name: str) -> str:
    """Path of the default weights file ``name`` (e.g. ``"picking_default.pt"``).

    ``$DEEPQS_WEIGHTS_DIR/name`` when that folder holds such a file, otherwise the copy shipped in
    ``deepqs/weights/``.  Read when the engine starts (each command is its own process).
    """
    folder = os.environ.get(WEIGHTS_DIR_ENV, "").strip()
    if folder:
        candidate = os.path.join(os.path.expanduser(folder), name)
        if os.path.isfile(candidate):
            return os.path.abspath(candidate)
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights", name)
