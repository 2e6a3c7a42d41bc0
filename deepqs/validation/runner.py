"""Run the validation checks a set of inputs allows, and grade the levels attained.

Levels (Sorzano et al., Faraday Discuss 2022): 0 the map (with threshold and reported
resolution), 1 + half maps, 2 + 2D class averages, 3 + particles with their class assignment,
4 + angular assignment, 5 + micrographs and coordinates; A + an atomic model; qualifiers W
(workflow) and O (other techniques).  The levels attained are the highest *consecutive* run of
0, 1, 2, 3, 5 whose evidence was given -- level 4 and the qualifiers W and O are not evaluated by
this implementation, so the run passes over 4 -- plus A when a model was given (A stands beside
the numbered levels: "0, 1, A").

Every check of every level appears in the result: the ones whose inputs were not given are
``not-applicable`` with the reason; a check that raises is ``failed-to-run`` with the error.
The score is "X out of N evaluable items pass": N counts ``ok`` + ``warning``, X counts ``ok``.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional

from deepqs.validation import checks as C
from deepqs.validation.checks import Check
from deepqs.validation.inputs import ValidationInputs

#: Levels the implementation does not evaluate, with what the report says about them.
NOT_EVALUATED = {
    "4": "Level 4 (angular assignment) is not evaluated by this implementation.",
    "W": "Qualifier W (workflow) is not evaluated.",
    "O": "Qualifier O (other techniques) is not evaluated.",
}
#: Numbered levels in order; the consecutive run from 0 is attained (4 is passed over).
CHAIN = ("0", "1", "2", "3", "5")
LEVEL_NAMES = {"0": "Level 0: map", "1": "Level 1: half maps", "2": "Level 2: 2D classes",
               "3": "Level 3: particles", "5": "Level 5: micrographs and coordinates", "A": "Level A: atomic model"}


@dataclass
class Spec:
    """A check in the registry: id, name, level, function and the inputs it needs."""

    id: str
    name: str
    level: str
    func: Callable[[ValidationInputs], Check]


def registry() -> List[Spec]:
    """Every check, in report order."""
    from deepqs.validation import directional, level0, level1, level2, level3, level5, levelA, localres

    return [
        Spec("0.a", "Mass analysis and centring", "0", level0.check_0a),
        Spec("0.b", "Mask analysis", "0", level0.check_0b),
        Spec("0.c", "Background analysis", "0", level0.check_0c),
        Spec("0.d", "B-factor analysis", "0", level0.check_0d),
        Spec("0.e", "DeepQs local quality", "0", level0.check_0e),
        Spec("1.a", "Global resolution (FSC, DPR, SSNR)", "1", level1.check_1a),
        Spec("1.b", "Permutation test (noise FSC, 1 % FDR)", "1", level1.check_1b),
        Spec("1.c", "Local resolution (local FSC)", "1", localres.check_1c),
        Spec("1.d", "Directional FSC (anisotropy)", "1", directional.check_1d),
        Spec("2.a", "Classes against map projections", "2", level2.check_2a),
        Spec("3.a", "Particle consistency within classes (PCA)", "3", level3.check_3a),
        Spec("5.a", "Coordinates scored by the pruning classifier", "5", level5.check_5a),
        Spec("A.a", "Q-scores", "A", levelA.check_Aa),
        Spec("A.b", "Map-model FSC", "A", levelA.check_Ab),
        Spec("A.c", "DeepQs vs Q-score agreement", "A", levelA.check_Ac),
        Spec("A.d", "Guinier profiles map vs model", "A", levelA.check_Ad),
    ]


def evidence(inp: ValidationInputs) -> Dict[str, Optional[str]]:
    """Per level: None when its evidence was given, else the reason it is missing."""
    return {
        "0": None,
        "1": None if inp.has_halves else "no half maps given (--half1, --half2)",
        "2": None if inp.classes is not None else "no 2D class averages given (--classes)",
        "3": None if inp.particles is not None else "no particles with class assignment given (--particles)",
        "5": None if (inp.micrographs and inp.coords) else "no micrographs and coordinates given (--micrographs, --coords)",
        "A": None if inp.atoms is not None else "no atomic model given (--model)",
    }


def attained_levels(inp: ValidationInputs) -> List[str]:
    """The levels attained (see module doc), e.g. ``["0", "1", "A"]``."""
    ev = evidence(inp)
    out: List[str] = []
    for lv in CHAIN:
        if ev[lv] is not None:
            break
        out.append(lv)
    if ev["A"] is None:
        out.append("A")
    return out


@dataclass
class ValidationResult:
    """Checks run, levels attained and score."""

    checks: List[Check]
    levels: List[str]
    inputs: ValidationInputs
    seconds: float = 0.0
    created_utc: str = ""
    extra: Dict[str, object] = field(default_factory=dict)

    @property
    def passed(self) -> int:
        return sum(c.status == C.OK for c in self.checks)

    @property
    def evaluable(self) -> int:
        return sum(c.evaluable for c in self.checks)

    def check(self, cid: str) -> Check:
        for c in self.checks:
            if c.id == cid:
                return c
        raise KeyError(cid)


def validate(inp: ValidationInputs, only: Optional[Iterable[str]] = None,
             progress: Optional[Callable[[str], None]] = None) -> ValidationResult:
    """Run the checks the inputs allow (``only``: a subset of check ids; the others are listed as
    not-applicable "not requested").  ``progress`` is called with a line before each check."""
    t0 = time.time()
    ev = evidence(inp)
    wanted = None if only is None else set(only)
    out: List[Check] = []
    for spec in registry():
        missing = ev[spec.level]
        if wanted is not None and spec.id not in wanted:
            out.append(C.not_applicable(spec.id, spec.name, spec.level, "not requested (--only)"))
            continue
        if missing is not None:
            out.append(C.not_applicable(spec.id, spec.name, spec.level, missing))
            continue
        if progress:
            progress(f"{spec.id} {spec.name}")
        t = time.time()
        try:
            chk = spec.func(inp)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # a check that cannot run on these inputs is reported, not fatal
            chk = Check(spec.id, spec.name, spec.level, status=C.FAILED,
                        reason=f"{type(exc).__name__}: {exc}")
            chk.values["traceback"] = traceback.format_exc(limit=4)
        chk.seconds = time.time() - t
        out.append(chk)
    return ValidationResult(checks=out, levels=attained_levels(inp), inputs=inp, seconds=time.time() - t0,
                            created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
