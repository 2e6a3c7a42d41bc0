"""Validation metrics: Fourier shell correlation (and, later, map/model quality levels)."""

from deepqs.validation.fsc import FSCCurve, fsc, resolution_at

__all__ = ["FSCCurve", "fsc", "resolution_at"]
