"""A trained picker: network + working scale + picking defaults, saved as one weights file.

The weights header (see :mod:`deepqs.io.weights`) holds ``architecture`` and ``config`` (so
:func:`deepqs.io.load_network` rebuilds the network from :data:`~deepqs.picking.networks.ARCHITECTURES`)
and the picking settings: ``working_diameter_px`` (particle diameter in working pixels),
``score_stride_px`` (score-map grid in working pixels), ``std_range`` (window standard deviation
range of training positives, in units of the working image's standard deviation, or null),
``threshold`` (the "auto" threshold) and ``nms_radius_diameters``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from deepqs.errors import InputError, PathLike
from deepqs.picking.networks import ARCHITECTURES, WindowNet
from deepqs.picking.preprocess import WORKING_DIAMETER_PX

__all__ = ["PickerModel", "save_model", "load_model", "MODEL_VERSION"]

MODEL_VERSION = 1


@dataclass
class PickerModel:
    """A network and the settings it was trained with.

    Attributes
    ----------
    net : WindowNet
        The window classifier.
    working_diameter_px : float
        Particle diameter in working pixels the network expects.
    score_stride_px : int
        Grid of the score map in working pixels.
    std_range : (float, float) or None
        Accepted window standard deviation (working-image units); None = no filter.
    threshold : float
        Score threshold used by ``--threshold auto``.
    nms_radius_diameters : float
        Non-maximum suppression radius in particle diameters (0.5 = the particle radius).
    info : dict
        Anything else (training data summary, figures), stored in the header.
    """

    net: WindowNet
    working_diameter_px: float = WORKING_DIAMETER_PX
    score_stride_px: int = 2
    std_range: Optional[Tuple[float, float]] = None
    threshold: float = 0.5
    nms_radius_diameters: float = 0.5
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def box(self) -> int:
        """Window size in working pixels."""
        return self.net.box

    def header(self) -> Dict[str, Any]:
        """The JSON header written with the weights."""
        return {
            "architecture": self.net.architecture,
            "version": MODEL_VERSION,
            "config": dict(self.net.config),
            "task": "particle_picking",
            "working_diameter_px": float(self.working_diameter_px),
            "score_stride_px": int(self.score_stride_px),
            "std_range": None if self.std_range is None else [float(v) for v in self.std_range],
            "threshold": float(self.threshold),
            "nms_radius_diameters": float(self.nms_radius_diameters),
            "input_pixel_size_A": None,
            "training_data": self.info.get("training_data", "unspecified"),
            "info": {k: v for k, v in self.info.items() if k != "training_data"},
        }


def save_model(path: PathLike, model: PickerModel) -> None:
    """Write ``model`` (state_dict + header) atomically."""
    from deepqs.io.weights import save_weights

    save_weights(path, model.net.state_dict(), model.header())


def load_model(path: PathLike) -> PickerModel:
    """Load a picker written by :func:`save_model` (``weights_only=True``); InputError when it is not one."""
    from deepqs.io.weights import load_network

    net, h = load_network(path, ARCHITECTURES)
    if h.get("task") != "particle_picking":
        raise InputError(path, "not a particle-picking model (header task is not 'particle_picking')")
    try:
        std = h.get("std_range")
        return PickerModel(
            net=net,
            working_diameter_px=float(h.get("working_diameter_px", WORKING_DIAMETER_PX)),
            score_stride_px=int(h.get("score_stride_px", 2)),
            std_range=None if std is None else (float(std[0]), float(std[1])),
            threshold=float(h.get("threshold", 0.5)),
            nms_radius_diameters=float(h.get("nms_radius_diameters", 0.5)),
            info={"training_data": h.get("training_data"), **(h.get("info") or {})},
        )
    except (TypeError, ValueError, IndexError) as exc:
        raise InputError(path, f"bad picking settings in the weights header ({exc})") from None
