"""DeepQs: local Q-score maps predicted from the density alone (no atomic model).

Modules, one job each:

* :mod:`~deepqs.localq.resample` -- map <-> 1 Å/voxel grid (low-pass before downsampling);
* :mod:`~deepqs.localq.normalise` -- scale/offset-invariant network input;
* :mod:`~deepqs.localq.network` -- the 3D U-Net (tanh output), ``ARCHITECTURES`` for weights files;
* :mod:`~deepqs.localq.tiling` -- whole maps in blended overlapping tiles (CPU/CUDA);
* :mod:`~deepqs.localq.labels` -- label maps from the exact Q-score engine;
* :mod:`~deepqs.localq.dataset` -- experimental-looking simulated training maps;
* :mod:`~deepqs.localq.train` -- training loop, checkpoints, report;
* :mod:`~deepqs.localq.calibration` -- monotone output calibration stored in the weights header;
* :mod:`~deepqs.localq.predict` -- :func:`predict_localq`.

Torch is imported only by the modules that need it.
"""

from deepqs.localq.labels import LABEL_RADIUS_A, label_map
from deepqs.localq.normalise import normalise_map, robust_stats
from deepqs.localq.resample import resample_onto, resample_to_spacing

__all__ = ["LABEL_RADIUS_A", "label_map", "normalise_map", "robust_stats", "resample_onto", "resample_to_spacing",
           "predict_localq", "LocalQResult"]


def __getattr__(name):
    if name in ("predict_localq", "LocalQResult"):
        from deepqs.localq import predict
        return getattr(predict, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
