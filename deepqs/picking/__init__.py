"""Particle picking: DeepEM-style window classifiers scored fully convolutionally.

Modules: :mod:`~deepqs.picking.preprocess` (read, resample to working scale, normalise),
:mod:`~deepqs.picking.networks` (DeepEM and the modern default), :mod:`~deepqs.picking.score`
(tiled, rotation-averaged score maps), :mod:`~deepqs.picking.pick` (NMS, std filter, threshold),
:mod:`~deepqs.picking.train` (training, retraining), :mod:`~deepqs.picking.evaluate`
(Hungarian matching, precision/recall/F1/F2/AP), :mod:`~deepqs.picking.model` (saved models),
:mod:`~deepqs.picking.data` (micrograph/coordinate pairing with counted drops).
Coordinates are particle centres in pixels of the original micrograph, x = column, y = row.
"""

from deepqs.picking.evaluate import Evaluation, best_f2_threshold, evaluate, evaluate_many, match_picks
from deepqs.picking.model import PickerModel, load_model, save_model
from deepqs.picking.networks import ARCHITECTURES, DeepEMNet, PickNet, build_network
from deepqs.picking.pick import Picks, find_peaks, local_std, pick_prepared, std_filter, suppress_close
from deepqs.picking.preprocess import (WORKING_DIAMETER_PX, PreparedMicrograph, prepare_array, prepare_micrograph,
                                       read_image)
from deepqs.picking.score import ScoreMap, score_image
from deepqs.picking.train import TrainConfig, TrainingExample, TrainResult, train_picker

#: The shipped general model (may be absent in a source checkout).

from deepqs.io.weights import default_weights_file as _default_weights_file

#: the default picking model: $DEEPQS_WEIGHTS_DIR/picking_default.pt when present, else the shipped one
DEFAULT_MODEL = _default_weights_file("picking_default.pt")

__all__ = [
    "ARCHITECTURES", "DEFAULT_MODEL", "DeepEMNet", "Evaluation", "PickNet", "PickerModel", "Picks", "PreparedMicrograph",
    "ScoreMap", "TrainConfig", "TrainResult", "TrainingExample", "WORKING_DIAMETER_PX", "best_f2_threshold",
    "build_network", "evaluate", "evaluate_many", "find_peaks", "load_model", "local_std", "match_picks",
    "pick_prepared", "prepare_array", "prepare_micrograph", "read_image", "save_model", "score_image", "std_filter",
    "suppress_close", "train_picker",
]
