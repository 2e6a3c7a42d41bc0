"""Output calibration of the local-Q network: a monotone piecewise-linear map of its raw output.

The network is trained with a masked MSE, so its output is shrunk towards the training mean
where the density alone does not tell the local quality well; in practice it underestimates Q
in good (better than ~4 Å) maps.  A weights file may therefore carry, in its JSON header, ::

    "calibration": {"kind": "piecewise_linear", "x": [...], "y": [...], ...}

with ``x`` strictly increasing raw network outputs and ``y`` non-decreasing calibrated Q
values; :func:`apply_calibration` interpolates linearly between the knots (constant beyond the
end knots, which span [-1, 1]) and clips to [-1, 1].  Other keys (how it was fitted) are kept
for the record.  Weights without the key (older files) are used raw, as before.

:func:`fit_median_calibration` fits the knots from pairs (median raw prediction at the atoms of
a map, median true Q of the same atoms) over many simulated *calibration* maps: since the map is
monotone, the calibrated median is the map of the raw median, so a monotone least-squares fit on
these pairs aims directly at ``|median predicted − median true|``.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

__all__ = ["CALIBRATION_KEY", "Q_RANGE", "calibration_from_header", "apply_calibration", "identity_calibration",
           "fit_median_calibration", "check_calibration"]

#: Header key holding the calibration.
CALIBRATION_KEY = "calibration"
#: Valid range of (calibrated) Q.
Q_RANGE = (-1.0, 1.0)


def identity_calibration() -> Dict[str, Any]:
    """The calibration that changes nothing."""
    return {"kind": "piecewise_linear", "x": [-1.0, 1.0], "y": [-1.0, 1.0]}


def check_calibration(calib: Mapping[str, Any]) -> Dict[str, Any]:
    """Validated copy of a calibration dict; ValueError when malformed."""
    if not isinstance(calib, Mapping):
        raise ValueError("the calibration must be a JSON object")
    kind = calib.get("kind", "piecewise_linear")
    if kind != "piecewise_linear":
        raise ValueError(f"unknown calibration kind {kind!r} (expected 'piecewise_linear')")
    try:
        x = np.asarray(calib["x"], dtype=np.float64)
        y = np.asarray(calib["y"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise ValueError("the calibration needs numeric lists 'x' and 'y'") from None
    if x.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ValueError("calibration 'x' and 'y' must be lists of the same length (>= 2)")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("calibration knots must be finite")
    if np.any(np.diff(x) <= 0):
        raise ValueError("calibration 'x' must be strictly increasing")
    if np.any(np.diff(y) < 0):
        raise ValueError("calibration 'y' must be non-decreasing (a monotone map)")
    out = dict(calib)
    out.update(kind="piecewise_linear", x=[float(v) for v in x], y=[float(v) for v in y])
    return out


def calibration_from_header(header: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """The header's calibration (validated), or None for weights without one."""
    if not isinstance(header, Mapping) or header.get(CALIBRATION_KEY) is None:
        return None
    return check_calibration(header[CALIBRATION_KEY])


def apply_calibration(q: np.ndarray, calib: Optional[Mapping[str, Any]]) -> np.ndarray:
    """Calibrated copy of raw network output ``q`` (float32); ``calib`` None: ``q`` unchanged."""
    q = np.asarray(q, dtype=np.float32)
    if calib is None:
        return q.copy()
    x = np.asarray(calib["x"], dtype=np.float64)
    y = np.asarray(calib["y"], dtype=np.float64)
    out = np.interp(q.ravel(), x, y).astype(np.float32).reshape(q.shape)
    return np.clip(out, Q_RANGE[0], Q_RANGE[1], out=out)


def _pava(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted isotonic (non-decreasing) least squares of ``y`` (pool adjacent violators)."""
    vals, wts, sizes = [], [], []
    for yi, wi in zip(y, w):
        vals.append(float(yi))
        wts.append(float(wi))
        sizes.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            wsum = wts[-2] + wts[-1]
            v = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / wsum
            s = sizes[-2] + sizes[-1]
            vals[-2:], wts[-2:], sizes[-2:] = [v], [wsum], [s]
    return np.repeat(vals, sizes)


def fit_median_calibration(raw_median: Sequence[float], true_median: Sequence[float],
                           knots: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
                           smooth: float = 0.1, ridge: float = 1e-3) -> Dict[str, Any]:
    """Monotone piecewise-linear map ``f`` with ``f(raw_median) ≈ true_median`` (least squares).

    ``f`` is linear between ``knots`` (raw values), its knot values ``v`` minimise ::

        mean (f(raw) - true)²  +  smooth · Σ (second differences of v / knot spacing)²
                               +  ridge · mean (v - knots)²

    (the second term penalises changes of slope, the third holds knots without data near the
    identity), then are projected to non-decreasing values (isotonic regression); ``f`` is
    extended to [-1, 1] with slope 1 beyond the end knots (and clipped to [-1, 1] when applied).
    Returns the calibration dict (see module doc) with the fit's residual figures.
    """
    xr = np.asarray(raw_median, dtype=np.float64)
    yt = np.asarray(true_median, dtype=np.float64)
    ok = np.isfinite(xr) & np.isfinite(yt)
    xr, yt = xr[ok], yt[ok]
    k = np.asarray(sorted(knots), dtype=np.float64)
    if xr.size < 2:
        raise ValueError("need at least two maps to fit a calibration")
    if k.size < 2 or np.any(np.diff(k) <= 0) or k[0] <= -1.0 or k[-1] >= 1.0:
        raise ValueError("knots must be >= 2 distinct values inside (-1, 1)")
    n, m = xr.size, k.size
    # hat basis on the knots (linear interpolation weights), constant outside the knot span,
    # where the slope-1 extension is added to the target instead
    xc = np.clip(xr, k[0], k[-1])
    j = np.clip(np.searchsorted(k, xc, side="right") - 1, 0, m - 2)
    t = (xc - k[j]) / (k[j + 1] - k[j])
    A = np.zeros((n, m))
    A[np.arange(n), j] = 1.0 - t
    A[np.arange(n), j + 1] = t
    target = yt - np.where(xr < k[0], xr - k[0], 0.0) - np.where(xr > k[-1], xr - k[-1], 0.0)
    # second differences of the slopes: (v[i+1]-v[i])/h_i - (v[i]-v[i-1])/h_{i-1}
    D = np.zeros((max(m - 2, 0), m))
    h = np.diff(k)
    for i in range(1, m - 1):
        D[i - 1, i - 1] = 1.0 / h[i - 1]
        D[i - 1, i] = -1.0 / h[i - 1] - 1.0 / h[i]
        D[i - 1, i + 1] = 1.0 / h[i]
    lhs = A.T @ A / n + smooth * (D.T @ D) * float(np.mean(h)) ** 2 + ridge * np.eye(m) / m
    rhs = A.T @ target / n + ridge * k / m
    v = np.linalg.solve(lhs, rhs)
    v = _pava(v, A.sum(axis=0) + 1e-3)
    xs = [-1.0] + [float(a) for a in k] + [1.0]
    ys = [float(v[0] - (k[0] + 1.0))] + [float(a) for a in v] + [float(v[-1] + (1.0 - k[-1]))]
    fitted = np.interp(xr, xs, ys)
    calib = check_calibration({"kind": "piecewise_linear", "x": xs, "y": ys})
    calib["fit"] = {"n_maps": int(n), "smooth": float(smooth), "ridge": float(ridge),
                    "mean_abs_median_diff_raw": float(np.mean(np.abs(xr - yt))),
                    "mean_median_diff_raw": float(np.mean(xr - yt)),
                    "mean_abs_median_diff_calibrated": float(np.mean(np.abs(fitted - yt))),
                    "mean_median_diff_calibrated": float(np.mean(fitted - yt)),
                    "maps_per_knot_interval": [int(np.sum((xr >= a) & (xr < b))) for a, b in zip(xs[:-1], xs[1:])]}
    return calib
