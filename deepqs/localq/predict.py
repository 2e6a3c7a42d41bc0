"""Local-Q prediction for a whole map: resample, normalise, tiled network, back onto the input grid.

Steps: the map is resampled to 1 Å/voxel (:mod:`deepqs.localq.resample`, low-pass first when it
is finer), normalised (:mod:`deepqs.localq.normalise`), predicted in blended tiles
(:mod:`deepqs.localq.tiling`; tiles without mask voxels are skipped), and the 1 Å prediction is
interpolated back onto the input grid (same shape, voxel size and origin); when the weights'
header holds an output calibration (:mod:`deepqs.localq.calibration`) it is applied to the mask
voxels (``calibrate=False``: raw network output).  Voxels outside the
molecular mask are 0 in both output maps.  Local resolution inside the mask is
``R = -3.816 · Q + 5.679`` Å (DeepQs' relation, valid for maps better than about 6 Å).

Mask: a given boolean mask on the input grid, or ``map > threshold``; when neither is given the
*automatic threshold* is ``centre + 3 · noise`` from :func:`deepqs.localq.normalise.robust_stats`
(median and MAD σ of the solvent), or, for masked/zoned maps (more than half the voxels constant),
``centre + 1 · r.m.s.`` of the non-constant voxels.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from deepqs.errors import InputError
from deepqs.io.mapdata import MapData

__all__ = ["LocalQResult", "predict_localq", "default_weights_path", "load_localq_network",
           "automatic_threshold", "q_to_resolution", "resolution_to_q", "PERCENTILES"]

#: Percentiles of local Q inside the mask reported in the summary.
PERCENTILES = (2.5, 25.0, 50.0, 75.0, 97.5)
#: DeepQs relation R = SLOPE · Q + INTERCEPT (Å).
RES_SLOPE, RES_INTERCEPT = -3.816, 5.679
#: Largest voxel size (Å) inside the trained range.
MAX_VOXEL_A = 4.0
#: Worst resolution (Å) inside the trained range.
MAX_RESOLUTION_A = 8.0


def q_to_resolution(q):
    """Local resolution (Å) from local Q: ``-3.816 · Q + 5.679``."""
    return RES_SLOPE * np.asarray(q) + RES_INTERCEPT


def resolution_to_q(r):
    """Inverse of :func:`q_to_resolution`."""
    return (np.asarray(r) - RES_INTERCEPT) / RES_SLOPE


def default_weights_path() -> str:
    """The default weights: ``$DEEPQS_WEIGHTS_DIR/localq_default.pt`` when present, else the shipped
    ``deepqs/weights/localq_default.pt`` (see :func:`deepqs.io.weights.default_weights_file`)."""
    from deepqs.io.weights import default_weights_file
    return default_weights_file("localq_default.pt")


def load_localq_network(weights: Optional[str] = None):
    """``(network, header)`` from ``weights`` (default: the shipped weights); InputError if absent."""
    from deepqs.io.weights import load_network
    from deepqs.localq.network import ARCHITECTURES
    path = weights or default_weights_path()
    if weights is None and not os.path.exists(path):
        raise InputError(path, "no shipped DeepQs weights in this installation yet; "
                               "train some with 'deepqs localq train' and pass --weights")
    return load_network(path, ARCHITECTURES)


def automatic_threshold(data: np.ndarray) -> float:
    """The automatic mask threshold (see module doc), in the map's units."""
    from deepqs.localq.normalise import robust_stats
    st = robust_stats(data)
    return float(st.centre + (1.0 if st.masked else 3.0) * st.noise)


@dataclass
class LocalQResult:
    """Prediction on the input grid.

    ``localq``: local Q (0 outside the mask); ``resolution``: local resolution in Å (0 outside);
    ``mask``: bool [z, y, x]; ``summary``: JSON-able dict (percentiles, median Q, resolution it
    implies, warnings, settings); ``warnings``: list of strings (also in the summary).
    """

    localq: MapData
    resolution: MapData
    mask: np.ndarray
    summary: Dict[str, Any]
    warnings: List[str] = field(default_factory=list)


def _make_mask(mapdata: MapData, mask, threshold: Optional[float]) -> Tuple[np.ndarray, str, Optional[float]]:
    if mask is not None:
        arr = mask.data if isinstance(mask, MapData) else np.asarray(mask)
        if arr.shape != mapdata.shape:
            raise InputError(getattr(mask, "path", None),
                             f"mask shape {arr.shape} differs from the map's {mapdata.shape} (same grid needed)")
        if isinstance(mask, MapData) and not (np.allclose(mask.voxel_size, mapdata.voxel_size, rtol=1e-3)
                                              and np.allclose(mask.origin, mapdata.origin, atol=0.01 * float(mapdata.voxel_size.min()))):
            raise InputError(mask.path, "mask voxel size or origin differs from the map's (same grid needed)")
        return arr > 0.5 if arr.dtype != bool else arr.copy(), "mask", None
    if threshold is not None:
        return np.asarray(mapdata.data) > float(threshold), "threshold", float(threshold)
    t = automatic_threshold(mapdata.data)
    return np.asarray(mapdata.data) > t, "automatic threshold", t


def auto_tile(shape_1A) -> int:
    """Tile edge (voxels of 1 Å) for a map of ``shape_1A`` voxels at 1 Å: 64 when every side is at
    most 96 (small maps: the calibration's setting), else 96 (fewer overlapping tiles: a 256³ map in
    about half the time of tile 64)."""
    return 64 if max(int(v) for v in shape_1A) <= 96 else 96


def predict_localq(mapdata: MapData, mask: Union[None, np.ndarray, MapData] = None, threshold: Optional[float] = None,
                   weights: Optional[str] = None, device: str = "cpu", batch: int = 2, tile: Optional[int] = None,
                   overlap: int = 16, network=None, progress=None, calibrate: bool = True) -> LocalQResult:
    """Local-Q and local-resolution maps of ``mapdata`` on its own grid (see module doc).

    Parameters
    ----------
    mask : bool array or MapData on the map's grid, optional
    threshold : float, optional
        Mask = map > threshold (map units), used when ``mask`` is None.
    weights : str, optional
        Weights file; default the shipped ``deepqs/weights/localq_default.pt``.
    device : ``"cpu"``, ``"auto"`` or ``"cuda"``/``"cuda:N"``; a GPU that is not visible falls back
        to the CPU with a warning on stderr (see ``deepqs.device``).
    batch, tile, overlap : tiles per forward pass, tile edge and overlap (voxels of 1 Å).  ``tile``
        None: :func:`auto_tile` (64 for maps up to 96 Å across, the setting the output calibration
        was fitted with; 96 for larger maps, about twice as fast on the CPU).
    network : (torch.nn.Module, header dict), optional
        Use this network instead of loading ``weights``.
    calibrate : bool
        Apply the weights' output calibration (header key ``calibration``, see
        :mod:`deepqs.localq.calibration`) when they have one (default); False gives the raw
        network output.  Weights without a calibration are always used raw.

    Raises
    ------
    InputError
        Empty mask, mask on another grid, missing weights, CUDA asked for but absent.
    """
    from deepqs.localq.normalise import normalise_map
    from deepqs.localq.resample import resample_onto, resample_to_spacing
    from deepqs.localq.calibration import apply_calibration, calibration_from_header
    from deepqs.localq.tiling import predict_tiled

    t0 = time.time()
    if mapdata.data.ndim != 3:
        raise InputError(mapdata.path, f"local Q needs a 3D map, got shape {mapdata.data.shape}")
    from deepqs.device import resolve_device

    device = resolve_device(device)  # a GPU that is not visible -> CPU with a warning
    mvox, mask_source, thr = _make_mask(mapdata, mask, threshold)
    if not mvox.any():
        raise InputError(mapdata.path, f"the molecular mask ({mask_source}"
                         + (f" {thr:.4g}" if thr is not None else "") + ") is empty: no voxel to predict")
    if network is None:
        net, header = load_localq_network(weights)
    else:
        net, header = network
    spacing = float(header.get("input_pixel_size_A", 1.0)) if isinstance(header, dict) else 1.0
    try:
        calib = calibration_from_header(header) if calibrate else None
    except ValueError as exc:
        raise InputError(weights, f"bad output calibration in the weights header: {exc}") from None
    warnings: List[str] = []
    vmax = float(mapdata.voxel_size.max())
    if vmax > MAX_VOXEL_A:
        warnings.append(f"voxel size {vmax:.2f} Å is larger than {MAX_VOXEL_A:g} Å: outside the trained range, "
                        "local Q is unreliable")

    m1 = resample_to_spacing(mapdata, spacing)
    x = normalise_map(m1.data)
    mask1 = resample_onto(mapdata.with_data(mvox.astype(np.float32)), m1).data > 0.01
    tile = auto_tile(x.shape) if tile is None else int(tile)
    pred = predict_tiled(net, x, tile=tile, overlap=overlap, batch=batch, device=device, mask=mask1,
                         progress=progress)
    back = resample_onto(MapData(pred, m1.voxel_size, m1.origin), mapdata).data
    q = np.where(mvox, back, 0.0).astype(np.float32)
    if calib is not None:
        q[mvox] = apply_calibration(q[mvox], calib)
    res = np.where(mvox, q_to_resolution(q), 0.0).astype(np.float32)
    inside = q[mvox].astype(np.float64)
    pct = np.percentile(inside, PERCENTILES)
    median = float(np.median(inside))
    res_median = float(q_to_resolution(median))
    if res_median > MAX_RESOLUTION_A:
        warnings.append(f"the median local Q {median:.3f} implies {res_median:.1f} Å, worse than "
                        f"{MAX_RESOLUTION_A:g} Å: outside the trained range")
    elif res_median > 6.0:
        warnings.append(f"the median local Q implies {res_median:.1f} Å; the Q-resolution relation is "
                        "calibrated for maps better than about 6 Å")
    summary: Dict[str, Any] = {
        "median_q": median,
        "mean_q": float(inside.mean()),
        "percentiles_q": {f"p{p:g}".replace(".", "_"): float(v) for p, v in zip(PERCENTILES, pct)},
        "resolution_from_median_A": res_median,
        "relation": "R = -3.816 * Q + 5.679 (A)",
        "mask_source": mask_source,
        "threshold": thr,
        "mask_voxels": int(mvox.sum()),
        "mask_fraction": float(mvox.mean()),
        "voxel_size_A": [float(v) for v in mapdata.voxel_size],
        "origin_A": [float(v) for v in mapdata.origin],
        "shape_zyx": [int(v) for v in mapdata.shape],
        "weights": None if network is not None else (weights or default_weights_path()),
        "architecture": header.get("architecture") if isinstance(header, dict) else None,
        "calibration": (None if calib is None else
                        f"piecewise linear, {len(calib['x'])} knots (weights header 'calibration')"),
        "device": str(device), "batch": int(batch), "tile": int(tile), "overlap": int(overlap),
        "seconds": float(time.time() - t0),
        "warnings": list(warnings),
    }
    return LocalQResult(localq=mapdata.with_data(q), resolution=mapdata.with_data(res), mask=mvox,
                        summary=summary, warnings=warnings)
