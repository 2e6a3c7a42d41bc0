"""A trained pruning classifier: network + decision threshold + settings, saved as one weights file.

Header (see :mod:`deepqs.io.weights`): ``architecture``/``version``/``config`` (rebuilt from
:data:`~deepqs.pruning.network.ARCHITECTURES`), ``task = "particle_pruning"``, ``classes``,
``input_box_size`` (network box in px), ``normalisation`` (text), ``threshold`` (on p_particle,
the "balanced" default), ``threshold_rule``, ``box_to_diameter`` (the box size, in particle
diameters, the model was trained with), ``input_pixel_size_A`` (null: boxes are resampled, only
the box-to-diameter ratio matters), ``training_data`` and ``info`` (figures, settings).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from deepqs.errors import InputError, PathLike
from deepqs.io.weights import default_weights_file
from deepqs.pruning.network import ARCHITECTURES, CLASSES, CLIP_SIGMA, PruneNet

__all__ = ["PruningModel", "save_model", "load_model", "DEFAULT_MODEL", "MODEL_VERSION", "TASK"]

MODEL_VERSION = 1
TASK = "particle_pruning"
#: The default classifier: ``$DEEPQS_WEIGHTS_DIR/pruning_default.pt`` when present, else the shipped one.
DEFAULT_MODEL = default_weights_file("pruning_default.pt")


@dataclass
class PruningModel:
    """A :class:`PruneNet` and the settings it goes with.

    Attributes
    ----------
    net : PruneNet
    threshold : float
        Default decision threshold on ``p_particle`` (keep when ``p_particle >= threshold``).
    threshold_rule : str
        How ``threshold`` was chosen (e.g. "max balanced accuracy on validation").
    box_to_diameter : float
        Box size in particle diameters the model was trained with (boxes should be cut similarly).
    info : dict
        Anything else (``training_data``, figures, settings), stored in the header.
    """

    net: PruneNet
    threshold: float = 0.5
    threshold_rule: str = "fixed 0.5"
    box_to_diameter: float = 1.85
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def box_size(self) -> int:
        """Network input size in pixels."""
        return self.net.box_size

    def header(self) -> Dict[str, Any]:
        return {
            "architecture": self.net.architecture,
            "version": MODEL_VERSION,
            "config": self.net.config,
            "task": TASK,
            "classes": list(CLASSES),
            "input_box_size": int(self.net.box_size),
            "normalisation": f"per box: subtract mean, divide by std, clip to +-{CLIP_SIGMA:g}",
            "threshold": float(self.threshold),
            "threshold_rule": str(self.threshold_rule),
            "box_to_diameter": float(self.box_to_diameter),
            "input_pixel_size_A": None,
            "training_data": self.info.get("training_data", "unspecified"),
            "info": {k: v for k, v in self.info.items() if k != "training_data"},
        }


def save_model(path: PathLike, model: PruningModel) -> None:
    """Write ``model`` (state_dict + JSON header) atomically."""
    from deepqs.io.weights import save_weights

    save_weights(path, model.net.state_dict(), model.header())


def load_model(path: Optional[PathLike] = None) -> PruningModel:
    """Load a pruning model (default: the shipped :data:`DEFAULT_MODEL`); ``weights_only=True``.

    InputError when the file is missing, not a weights file, or not a pruning model.
    """
    from deepqs.io.weights import load_network

    p = DEFAULT_MODEL if path is None else os.fspath(path)
    if path is None and not os.path.exists(p):
        raise InputError(p, "the shipped pruning model is missing; train one with 'deepqs prune train' "
                            "and pass it with --model")
    net, h = load_network(p, ARCHITECTURES)
    if h.get("task") != TASK:
        raise InputError(p, f"not a particle-pruning model (header task is {h.get('task')!r}, not {TASK!r})")
    try:
        return PruningModel(net=net, threshold=float(h.get("threshold", 0.5)),
                            threshold_rule=str(h.get("threshold_rule", "fixed 0.5")),
                            box_to_diameter=float(h.get("box_to_diameter", 1.85)),
                            info={"training_data": h.get("training_data"), **(h.get("info") or {})})
    except (TypeError, ValueError) as exc:
        raise InputError(p, f"bad pruning settings in the weights header ({exc})") from None
