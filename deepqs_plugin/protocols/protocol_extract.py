"""Particle extraction with the engine (no Xmipp/RELION needed): coordinates -> SetOfParticles."""

import csv
import json
import os
import shlex

import pyworkflow.protocol.params as params
import pyworkflow.utils as pwutils
from pwem.objects import Particle, SetOfParticles
from pwem.protocols import ProtParticles
from pyworkflow.object import Integer

from deepqs_plugin import __version__
from deepqs_plugin.protocols.protocol_base import DeepQsProtocol


class ProtDeepQsExtractParticles(ProtParticles, DeepQsProtocol):
    """Cut a box around every coordinate of a set (e.g. DeepEM picks kept by PickerOptimizer)
    into per-micrograph MRC stacks, normalised as RELION does, and output them as particles
    that any Scipion 2D/3D protocol reads.  Boxes running off the micrograph are skipped (and
    counted) unless kept padded."""

    _label = "extract particles (deepqs)"
    _possibleOutputs = {"outputParticles": SetOfParticles}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.nExtracted = Integer()
        self.nSkipped = Integer()

    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputCoordinates", params.PointerParam, pointerClass="SetOfCoordinates", important=True,
                      label="Coordinates", help="Particle centres on their micrographs (pixels; x = column, y = row).")
        form.addParam("boxSize", params.IntParam, default=0, label="Box size (pixels)",
                      help="Box size in micrograph pixels (about 1.5-2 particle diameters); 0: the box size of "
                           "the coordinates set.")
        form.addParam("invert", params.BooleanParam, default=False, label="Invert contrast",
                      help="Yes: protein becomes white (what RELION and cryoSPARC expect).  Keep No to prune the "
                           "particles with PickerOptimizer afterwards (it expects raw contrast).")
        form.addParam("normalise", params.BooleanParam, default=True, label="Normalise",
                      help="Background (outside the circle of diameter = box) to mean 0, standard deviation 1 "
                           "in every box.")
        form.addParam("keepEdge", params.BooleanParam, default=False, expertLevel=params.LEVEL_ADVANCED,
                      label="Keep boxes off the edge",
                      help="Yes: boxes running off the micrograph are kept, padded with their mean.  No: they "
                           "are skipped and counted in the summary.")

    # --------------------------- STEPS ---------------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        self._insertFunctionStep(self.extractStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _box(self):
        return self.boxSize.get() or self.inputCoordinates.get().getBoxSize()

    def convertInputStep(self):
        """One CSV of centres per micrograph (named by its stem) and the coordinate ids in file order."""
        coords = self.inputCoordinates.get()
        folder = self._getExtraPath("coords")
        pwutils.makePath(folder)
        micFiles = {m.getObjId(): os.path.abspath(m.getFileName()) for m in coords.getMicrographs()}
        rows, ids = {}, {}
        for c in coords.iterItems():
            stem = pwutils.removeBaseExt(micFiles[c.getMicId()])
            rows.setdefault(stem, []).append("%d,%d" % (c.getX(), c.getY()))
            ids.setdefault(stem, []).append(c.getObjId())
        for stem, lines in rows.items():
            with open(os.path.join(folder, stem + ".csv"), "w") as fh:
                fh.write("x,y\n" + "\n".join(lines) + "\n")
        with open(self._getExtraPath("micrographs.txt"), "w") as fh:
            fh.write("\n".join(sorted(f for f in micFiles.values() if pwutils.removeBaseExt(f) in rows)) + "\n")
        with open(self._getExtraPath("ids.json"), "w") as fh:
            json.dump(ids, fh)

    def extractStep(self):
        with open(self._getExtraPath("micrographs.txt")) as fh:
            mics = [line.strip() for line in fh if line.strip()]
        folder = self._getExtraPath("coords")
        coords = [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".csv")]
        out = self._getExtraPath("particles")
        args = ["extract", "--micrographs"] + [shlex.quote(m) for m in mics]
        args += ["--coords"] + [shlex.quote(os.path.abspath(c)) for c in coords]
        args += ["--box", str(self._box()), "--out-dir", shlex.quote(os.path.abspath(out)),
                 "--pixel-size", "%g" % self.inputCoordinates.get().getMicrographs().getSamplingRate(),
                 "--json", shlex.quote(os.path.abspath(self._getExtraPath("extract_summary.json")))]
        if self.invert.get():
            args.append("--invert")
        if not self.normalise.get():
            args.append("--no-normalise")
        if self.keepEdge.get():
            args.append("--keep-edge")
        self.runEngine(args, expected=[os.path.join(out, "extracted.csv"), self._getExtraPath("extract_summary.json")])

    def createOutputStep(self):
        coords = self.inputCoordinates.get()
        mics = coords.getMicrographs()
        with open(self._getExtraPath("ids.json")) as fh:
            ids = json.load(fh)
        where = {}
        with open(self._getExtraPath("particles", "extracted.csv"), newline="") as fh:
            for row in csv.DictReader(fh):
                where[ids[row["micrograph"]][int(row["index"])]] = (int(row["slice"]), row["stack"])
        parts = self._createSetOfParticles()
        parts.setAcquisition(mics.getAcquisition())
        parts.setSamplingRate(mics.getSamplingRate())
        for coord in coords.iterItems():
            if coord.getObjId() not in where:
                continue            # off the edge: skipped, counted in the summary
            index, stack = where[coord.getObjId()]
            p = Particle()
            p.setLocation(index, stack)
            p.setCoordinate(coord.clone())
            p.setMicId(coord.getMicId())
            p.setAcquisition(mics.getAcquisition())
            parts.append(p)
        summary = self.loadSummary()
        self.nExtracted.set(parts.getSize())
        self.nSkipped.set(summary.get("n_skipped_off_edge", 0))
        self._store(self.nExtracted, self.nSkipped)
        self._defineOutputs(outputParticles=parts)
        self._defineSourceRelation(self.inputCoordinates, parts)

    def loadSummary(self):
        path = self._getExtraPath("extract_summary.json")
        if not os.path.exists(path):
            return {}
        with open(path) as fh:
            return json.load(fh)

    # --------------------------- INFO ----------------------------------------
    def _validate(self):
        errors = []
        coords = self.inputCoordinates.get()
        if coords is None:
            return ["Choose the coordinates."]
        if coords.getSize() == 0:
            errors.append("The coordinates set is empty.")
        if not self._box():
            errors.append("Give the box size (pixels): the coordinates set has none.")
        elif self._box() < 8:
            errors.append("The box size must be at least 8 pixels.")
        mics = coords.getMicrographs()
        if mics is not None and not mics.getSamplingRate():
            errors.append("The micrographs have no sampling rate (Å/pixel): set it when importing.")
        return errors

    def _warnings(self):
        if self.invert.get():
            return ["Inverted particles (protein white) should not go to PickerOptimizer, which expects "
                    "raw contrast."]
        return []

    def _summary(self):
        if not self.nExtracted.hasValue():
            return ["Not extracted yet."]
        lines = ["%d particles extracted (box %d px, %s)" % (self.nExtracted.get(), self._box(),
                                                              "normalised" if self.normalise.get() else "raw values")]
        if self.nSkipped.get():
            lines.append("%d boxes ran off the micrograph edge and were skipped" % self.nSkipped.get())
        return lines

    def _methods(self):
        if not self.nExtracted.hasValue():
            return []
        return ["%d particles were extracted in boxes of %d pixels (DeepQs plugin %s)%s."
                % (self.nExtracted.get(), self._box(), __version__,
                   ", normalised to a background of zero mean and unit standard deviation" if self.normalise.get() else "")]

    def _citations(self):
        return []
