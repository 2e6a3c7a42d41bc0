"""The result of one validation check, and the numbers every check decides with.

Each check of the validation report (Sorzano et al., Faraday Discuss 2022, levels 0-5 and A)
returns a :class:`Check`: an id ("0.a"), a name, its level, a status, the warnings that made
it a warning, the numbers it measured (``values``), optional small ``tables`` and ``figures``
(PNG bytes, written by the report).  The constants below are the decision rules, named and
documented once; every module imports them from here.

Status
------
``ok``              the check ran and none of its warning conditions holds;
``warning``         the check ran and at least one condition holds (listed in ``warnings``);
``not-applicable``  the inputs it needs were not given (or the engine it needs is absent);
``failed-to-run``   the check raised an error on these inputs (the reason is kept).

Only ``ok`` and ``warning`` are *evaluable*; the report's score is "X out of N evaluable items
pass" with X the number of ``ok`` checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

OK = "ok"
WARNING = "warning"
NOT_APPLICABLE = "not-applicable"
FAILED = "failed-to-run"
STATUSES = (OK, WARNING, NOT_APPLICABLE, FAILED)

# ---------------------------------------------------------------- Level 0: the map alone
#: 0.a: the largest component's centre may sit at most this fraction of the box edge
#: (``|x_F - x_0| / (N · voxel)``, per axis) away from the box centre.
MAX_DECENTRING_FRACTION = 0.20
#: 0.a: the empty margin between the thresholded largest component and every box face (Å).
#: (The original service compared this margin in Å while its text said %; here it is Å, as stated.)
MIN_MARGIN_A = 20.0
#: 0.a: the map's centre of mass (positive density above the threshold, all components) may be
#: at most this fraction of the box edge away from the box centre, per axis.
MAX_COM_OFFSET_FRACTION = 0.20
#: 0.b: at most this many 26-connected components may be needed to hold MASS_FRACTION of the mass.
MAX_COMPONENTS_FOR_MASS = 5
#: 0.b: fraction of the thresholded mass (sum of values above the threshold) those components hold.
MASS_FRACTION = 0.95
#: 0.b: the mask (largest component, dilated) may miss at most this fraction of thresholded voxels.
MAX_MASK_MISSING_FRACTION = 0.25
#: 0.b: dilation of the largest component that makes the mask (Å; at least one voxel).
MASK_DILATION_A = 3.0
#: 0.b: protein specific volume for the mass table: 1.207 Å³ per Dalton (density 0.83 Da/Å³).
A3_PER_DALTON = 1.207
#: 0.b: mean mass of an amino-acid residue (Da).
DALTON_PER_RESIDUE = 110.0
#: 0.c: the background is what lies outside the mask dilated by this much more (Å).
BACKGROUND_DILATION_A = 10.0
#: 0.c: one-sample t-test of background mean = 0 is failed below this p-value.
BACKGROUND_P = 1e-3
#: 0.c: |v - mean| > OUTLIER_SIGMA σ counts as an outlier voxel ...
OUTLIER_SIGMA = 5.0
#: 0.c: ... and a background with more than this many times the Gaussian expectation warns.
OUTLIER_EXCESS = 20.0
#: 0.d: Guinier fit range: from this resolution (Å) to the reported resolution.
GUINIER_LOW_A = 15.0
#: 0.d: acceptable Guinier B-factor range (Å²); positive B means oversharpened.
B_RANGE = (-300.0, 0.0)
#: 0.e: percentiles of the DeepQs local Q inside the mask.
LOCALQ_PERCENTILES = (2.5, 25.0, 50.0, 75.0, 97.5)
#: 0.e: warn when the resolution implied by the median local Q is worse than this × reported.
LOCALQ_RESOLUTION_FACTOR = 1.25
#: 0.e: warn when the 2.5-97.5 percentile spread of local Q is below this (degenerate map).
LOCALQ_MIN_SPREAD = 0.01

# ---------------------------------------------------------------- Level 1: half maps
#: The FSC threshold for the half-map resolution (Rosenthal & Henderson).
FSC_THRESHOLD = 0.143
#: DPR (differential phase residual) resolution: where the amplitude-weighted r.m.s. phase
#: difference reaches its random-phase value π/√3 = 103.9°.
DPR_THRESHOLD_DEG = 103.9
#: SSNR resolution: where the full-map SSNR = 2·FSC/(1 - FSC) falls to 1 (FSC = 1/3).
SSNR_THRESHOLD = 1.0
#: 1.a, 1.b, 1.d, A.b: warn when the reported resolution is below this × an estimate
#: (claimed more than 20 % better than the data support).
OVERCLAIM_FACTOR = 0.8
#: 1.b: phase-randomised half-map pairs for the noise FSC.
N_PERMUTATIONS = 20
#: 1.b: false discovery rate of the shell-wise significance (Benjamini-Hochberg).
PERMUTATION_FDR = 0.01
#: 1.c: warn when the reported resolution is below this percentile of the local resolution.
LOCALRES_PERCENTILE = 0.1
#: 1.c: local resolution percentiles reported.
LOCALRES_PERCENTILES = (0.1, 2.5, 25.0, 50.0, 75.0, 97.5)
#: 1.d: anisotropy test: warn below this p-value.
ANISOTROPY_P = 1e-3
#: 1.d: number of cone directions over a hemisphere and the cone half-angle (degrees).
N_DIRECTIONS = 30
CONE_HALF_ANGLE_DEG = 20.0

# ---------------------------------------------------------------- Level 2 / 3
#: 2: a class correlating below this with its best projection is a poor class ...
MIN_CLASS_CC = 0.7
#: 2, 3: ... and more than this fraction of poor classes warns.
MAX_BAD_CLASS_FRACTION = 0.20
#: 3: principal components per class and the Mahalanobis outlier limit.
N_PCA_COMPONENTS = 3
MAHALANOBIS_OUTLIER = 3.0
#: 3: a class whose core (non-outlier) fraction is below this is a poor class.
MIN_CORE_FRACTION = 0.7

# ---------------------------------------------------------------- Level 5
#: 5: more than this fraction of coordinates looking like contamination/carbon warns.
MAX_JUNK_FRACTION = 0.20

# ---------------------------------------------------------------- Level A: the model
#: A.a: warn when the median Q-score is below this.
MIN_MEDIAN_Q = 0.1
#: A.a: warn when the mean Q is more than this below the Q expected at the reported resolution.
MAX_Q_DEFICIT = 0.2
#: A.b: map-model FSC thresholds.
MAP_MODEL_FSC_THRESHOLDS = (0.5, 0.143)
#: A.c: a residue is a possible misfit when its true Q lies more than this below its predicted
#: local Q, after removing the model-wide median offset (predicted - true).
MISFIT_Q_GAP = 0.3
#: A.d: warn when the correlation of the map and model Guinier profiles is below this.
MIN_GUINIER_CORRELATION = 0.5


@dataclass
class Check:
    """One check's outcome (see the module doc for the statuses)."""

    id: str
    name: str
    level: str
    status: str = NOT_APPLICABLE
    warnings: List[str] = field(default_factory=list)
    values: Dict[str, Any] = field(default_factory=dict)
    tables: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    figures: Dict[str, bytes] = field(default_factory=dict)
    maps: Dict[str, Any] = field(default_factory=dict, repr=False)   # name -> MapData written as DIR/<name>.mrc
    description: str = ""
    reason: Optional[str] = None
    seconds: float = 0.0

    def decide(self) -> "Check":
        """Set ``status`` from ``warnings`` (ok when there are none) and return self."""
        self.status = WARNING if self.warnings else OK
        return self

    def warn_if(self, condition: bool, message: str) -> None:
        """Append ``message`` to the warnings when ``condition`` holds."""
        if condition:
            self.warnings.append(message)

    @property
    def evaluable(self) -> bool:
        return self.status in (OK, WARNING)


def not_applicable(id: str, name: str, level: str, reason: str, description: str = "") -> Check:
    """A check that could not be evaluated for lack of inputs (or of an engine)."""
    return Check(id=id, name=name, level=level, status=NOT_APPLICABLE, reason=reason, description=description)
