"""Particle pruning (PickerOptimizer-style, Li et al., J Comput Biol 2022): remove false-positive picks.

A compact ResNet-style CNN classifies particle boxes, resampled to 64 px and normalised per box,
as particle / ice-contamination / carbon; a box is kept when ``p_particle >= threshold``.  It is
pretrained on the project's simulated set and fine-tuned on a few labels per class with a
multi-loss (cross-entropy + focal + supervised contrastive).

Modules (one job each):

* :mod:`~deepqs.pruning.network` -- :class:`PruneNet`, :func:`normalise_boxes`, ``ARCHITECTURES``;
* :mod:`~deepqs.pruning.boxes` -- boxes from stacks/.star or micrographs + coordinates (:class:`BoxSet`);
* :mod:`~deepqs.pruning.simulated` -- the labelled simulated set (:class:`LabelledBoxes`);
* :mod:`~deepqs.pruning.real` -- labelled real boxes from ``shared/data`` when present;
* :mod:`~deepqs.pruning.losses` -- focal, supervised-contrastive and the multi-loss;
* :mod:`~deepqs.pruning.train` -- :func:`train_classifier` (pretraining and fine-tuning);
* :mod:`~deepqs.pruning.predict` -- :func:`predict_proba`, :func:`prune`;
* :mod:`~deepqs.pruning.model` -- :class:`PruningModel`, :func:`save_model`, :func:`load_model`;
* :mod:`~deepqs.pruning.metrics` -- accuracy, macro-F1, balanced accuracy, the balanced and the adaptive
  (prior-estimating, expected-F1) thresholds.
"""

from deepqs.pruning.boxes import BoxSet, extract_boxes, read_micrograph_boxes, read_particle_boxes, resample_boxes
from deepqs.pruning.losses import LossWeights, focal_loss, multi_loss, supcon_loss
from deepqs.pruning.model import DEFAULT_MODEL, PruningModel, load_model, save_model
from deepqs.pruning.network import ARCHITECTURES, CLASSES, PruneNet, build_network, normalise_boxes
from deepqs.pruning.predict import Prediction, predict_proba, prune
from deepqs.pruning.simulated import LabelledBoxes, simulated_set
from deepqs.pruning.train import TrainConfig, TrainResult, train_classifier

__all__ = [
    "ARCHITECTURES", "BoxSet", "CLASSES", "DEFAULT_MODEL", "LabelledBoxes", "LossWeights", "Prediction",
    "PruneNet", "PruningModel", "TrainConfig", "TrainResult", "build_network", "extract_boxes", "focal_loss",
    "load_model", "multi_loss", "normalise_boxes", "predict_proba", "prune", "read_micrograph_boxes",
    "read_particle_boxes", "resample_boxes", "save_model", "simulated_set", "supcon_loss", "train_classifier",
]
