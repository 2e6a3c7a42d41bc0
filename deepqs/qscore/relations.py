"""Expected Q-score at a resolution, and the resolution a mean Q-score implies (MapQ's relations).

Published by Pintilie et al. (Nat Methods 2020) and used by MapQ / EMDB:

* linear, by molecule type (``Q = a R + b``):

  ======  ==========  ======================  ======================
  sigma   relation    protein                 nucleic acid
  ======  ==========  ======================  ======================
  0.6     linear      -0.1775 R + 1.1192      -0.1377 R + 0.9973
  0.4     linear      -0.1866 R + 1.1242      -0.1465 R + 0.9436
  ======  ==========  ======================  ======================

* the newer cubic ``Q_peak`` relation (all atoms):

  * sigma 0.6: ``-0.0019064058 R^3 + 0.0499875375 R^2 - 0.4513945578 R + 1.5361860733``
  * sigma 0.4: ``-0.0020025943 R^3 + 0.0504435042 R^2 - 0.4343663048 R + 1.3945104702``

Both cubics decrease monotonically for every R (their derivatives have no real root), so the
implied resolution is the unique real root.  MapQ 1.7's ``_All.txt`` header reports the linear
relation of the chain's type (for 7CEC chain A: mean Q 0.457 -> 3.73 Å).  Other sigmas have no
published relation (``None``).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

#: (sigma, kind) -> (slope, intercept) of the linear relations.
LINEAR: Dict[Tuple[float, str], Tuple[float, float]] = {
    (0.6, "protein"): (-0.1775, 1.1192),
    (0.6, "nucleic"): (-0.1377, 0.9973),
    (0.4, "protein"): (-0.1866, 1.1242),
    (0.4, "nucleic"): (-0.1465, 0.9436),
}

#: sigma -> cubic coefficients (R^3, R^2, R, 1) of the Q_peak relation.
CUBIC: Dict[float, Tuple[float, float, float, float]] = {
    0.6: (-0.0019064058, 0.0499875375, -0.4513945578, 1.5361860733),
    0.4: (-0.0020025943, 0.0504435042, -0.4343663048, 1.3945104702),
}

RELATIONS = ("linear", "cubic")
KINDS = ("protein", "nucleic")


def _sigma_key(sigma: float) -> Optional[float]:
    for key in (0.6, 0.4):
        if abs(float(sigma) - key) < 1e-6:
            return key
    return None


def has_relation(sigma: float, relation: str = "linear") -> bool:
    """True when a relation is published for this sigma."""
    return _sigma_key(sigma) is not None and relation in RELATIONS


def describe(sigma: float, kind: str = "protein", relation: str = "linear") -> Optional[str]:
    """The relation as text, e.g. ``"linear, protein, sigma 0.6: Q = -0.1775 R + 1.1192"``."""
    key = _sigma_key(sigma)
    if key is None:
        return None
    if relation == "linear":
        a, b = LINEAR[(key, _kind(kind))]
        return f"linear, {_kind(kind)}, sigma {key:g}: Q = {a:g} R + {b:g}"
    if relation == "cubic":
        c3, c2, c1, c0 = CUBIC[key]
        return (f"cubic Q_peak, sigma {key:g}: Q = {c3!r} R^3 + {c2!r} R^2 "
                f"{'-' if c1 < 0 else '+'} {abs(c1)!r} R + {c0!r}")
    raise ValueError(f"unknown relation {relation!r} (use one of {RELATIONS})")


def expected_q(resolution: float, sigma: float = 0.6, kind: str = "protein",
               relation: str = "linear") -> Optional[float]:
    """Expected mean Q-score at ``resolution`` (Å); ``None`` when no relation exists for ``sigma``."""
    key = _sigma_key(sigma)
    if key is None:
        return None
    r = float(resolution)
    if relation == "linear":
        a, b = LINEAR[(key, _kind(kind))]
        return a * r + b
    if relation == "cubic":
        c3, c2, c1, c0 = CUBIC[key]
        return ((c3 * r + c2) * r + c1) * r + c0
    raise ValueError(f"unknown relation {relation!r} (use one of {RELATIONS})")


def implied_resolution(mean_q: float, sigma: float = 0.6, kind: str = "protein",
                       relation: str = "linear") -> Optional[float]:
    """Resolution (Å) at which the relation gives ``mean_q``; ``None`` without a relation.

    The value may lie outside any physical range when ``mean_q`` does (e.g. Q < 0).
    """
    key = _sigma_key(sigma)
    if key is None or mean_q is None or not np.isfinite(mean_q):
        return None
    q = float(mean_q)
    if relation == "linear":
        a, b = LINEAR[(key, _kind(kind))]
        return (q - b) / a
    if relation == "cubic":
        c3, c2, c1, c0 = CUBIC[key]
        roots = np.roots([c3, c2, c1, c0 - q])
        real = roots[np.abs(roots.imag) < 1e-9].real
        return float(real[0]) if real.size else None
    raise ValueError(f"unknown relation {relation!r} (use one of {RELATIONS})")


def _kind(kind: str) -> str:
    k = (kind or "protein").lower()
    if k.startswith("nucl") or k in ("rna", "dna", "na"):
        return "nucleic"
    if k.startswith("prot"):
        return "protein"
    raise ValueError(f"unknown molecule kind {kind!r} (use 'protein' or 'nucleic')")
