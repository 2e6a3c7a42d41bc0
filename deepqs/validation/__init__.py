"""Validation: Fourier shell correlation and the map validation levels (0, 1, 2, 3, 5, A).

Modules (one job each):

* :mod:`~deepqs.validation.fsc` -- :func:`fsc`, :func:`resolution_at` (shell conventions);
* :mod:`~deepqs.validation.checks` -- :class:`Check` (one check's result), statuses and every
  decision constant with its meaning;
* :mod:`~deepqs.validation.inputs` -- :class:`ValidationInputs` (read and checked once),
  :func:`load_inputs`, the particles STAR reader, SHA-256;
* :mod:`~deepqs.validation.level0` -- 0.a-0.e: mass/centring, mask and mass table, background,
  Guinier B, DeepQs local quality;
* :mod:`~deepqs.validation.level1` -- 1.a FSC/DPR/SSNR resolutions, 1.b permutation test;
  :mod:`~deepqs.validation.localres` -- 1.c local FSC; :mod:`~deepqs.validation.directional` --
  1.d directional FSC and anisotropy;
* :mod:`~deepqs.validation.align2d` -- projector and 2D alignment; :mod:`~deepqs.validation.level2`
  -- 2.a classes vs projections; :mod:`~deepqs.validation.level3` -- 3.a PCA of particles;
* :mod:`~deepqs.validation.level5` -- 5.a coordinates scored by the pruning classifier;
* :mod:`~deepqs.validation.levelA` -- A.a-A.d Q-scores, map-model FSC, DeepQs vs Q, Guinier;
* :mod:`~deepqs.validation.runner` -- :func:`validate`, levels attained, score;
* :mod:`~deepqs.validation.report` -- :func:`write_report` (HTML + JSON + figures + maps).

Only :mod:`fsc` is imported eagerly (the simulator uses it); import the others directly.
"""

from deepqs.validation.fsc import FSCCurve, fsc, resolution_at

__all__ = ["FSCCurve", "fsc", "resolution_at"]
