"""Map validation report (levels 0, 1, 2, 3, 5, A) computed natively by the engine."""

import json
import os
import shlex

import numpy as np
import pyworkflow.protocol.params as params
from pwem.objects import EMFile
from pyworkflow.object import Integer, String

from deepqs_plugin import __version__
from deepqs_plugin.protocols.protocol_base import DeepQsProtocol, volumeFile

STATUS_LABEL = {"ok": "OK", "warning": "WARNING", "not-applicable": "n/a", "failed-to-run": "FAILED"}


class ProtDeepQsValidate(DeepQsProtocol):
    """Validation report of a cryo-EM map after the I2PC validation service (Sorzano et al. 2022):
    the map is graded by the highest consecutive level of evidence given (0 map, 1 + half maps,
    2 + 2D classes, 3 + particles with classes, 5 + micrographs and coordinates, A + atomic
    model), every check computed natively (mass and centring, mask, background, B-factor, DeepQs
    local quality, FSC/DPR/SSNR, permutation test, local and directional resolution, class and
    particle consistency, junk in the picks, Q-score, map-model FSC, misfit residues).  Output: a
    self-contained HTML report with figures, and "X out of N evaluable items pass"."""

    _label = "deepqs validation report"
    _possibleOutputs = {"outputReport": EMFile}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.levels = String()
        self.passed = Integer()
        self.evaluable = Integer()

    # --------------------------- DEFINE param functions ----------------------
    def _defineParams(self, form):
        self._defineGpuParams(form, "Run the DeepQs network of checks 0.e and A.c on a GPU.")
        form.addSection(label="Input")
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume", important=True,
                      label="Map (level 0)", help="The map to validate; its half maps (if it has them) give level 1.")
        form.addParam("threshold", params.FloatParam, important=True, label="Contour threshold (map units)",
                      help="The threshold at which the map is displayed/deposited (the recommended contour "
                           "level); it defines the molecule for the mass, mask and background checks.")
        form.addParam("resolution", params.FloatParam, important=True, label="Reported resolution (Å)",
                      help="The resolution claimed for the map; checks compare it with their estimates.")
        form.addParam("useHalves", params.BooleanParam, default=True, label="Use the half maps (level 1)",
                      help="Use the half maps associated with the map (import them with the map).")
        form.addParam("inputClasses", params.PointerParam, pointerClass="SetOfClasses2D, SetOfAverages",
                      allowsNull=True, label="2D classes (levels 2 and 3)",
                      help="Class averages (level 2); with a SetOfClasses2D their particles also give level 3.")
        form.addParam("inputCoordinates", params.PointerParam, pointerClass="SetOfCoordinates", allowsNull=True,
                      label="Coordinates on micrographs (level 5)",
                      help="Picked coordinates; their micrographs are used too.  The pruning classifier "
                           "judges how many boxes look like ice or carbon.")
        form.addParam("inputStructure", params.PointerParam, pointerClass="AtomStruct", allowsNull=True,
                      label="Atomic model (level A)",
                      help="A model fitted to the map (mmCIF or PDB), in the frame of the map file's header "
                           "origin (as deposited models are).")

    # --------------------------- INSERT steps functions ----------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        self._insertFunctionStep(self.validateStep)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _inputFile(self, *name):
        return self._getExtraPath("inputs", *name)

    def _reportFile(self, *name):
        return self._getExtraPath("report", *name)

    def _halves(self):
        vol = self.inputVolume.get()
        if not self.useHalves.get() or vol is None or not vol.hasHalfMaps():
            return None
        return [fn.replace(":mrc", "") for fn in vol.getHalfMaps().split(",")]

    def convertInputStep(self):
        from deepqs.io import read_stack, write_stack

        os.makedirs(self._inputFile(), exist_ok=True)
        classes = self.inputClasses.get()
        if classes is not None:
            averages = classes.iterRepresentatives() if hasattr(classes, "iterRepresentatives") else classes
            images = []
            for img in averages:
                index, fn = img.getLocation()
                stack, _ = read_stack(fn.replace(":mrcs", "").replace(":mrc", ""), pixel_size=1.0)
                images.append(stack[max(int(index or 1), 1) - 1])
            write_stack(self._inputFile("classes.mrcs"), np.stack(images), classes.getSamplingRate())
            if hasattr(classes, "iterRepresentatives"):
                self._writeParticlesStar(classes)
        coords = self.inputCoordinates.get()
        if coords is not None:
            micFiles = {m.getObjId(): os.path.abspath(m.getFileName()) for m in coords.getMicrographs()}
            used = set()
            with open(self._inputFile("coordinates.csv"), "w") as fh:
                fh.write("micrograph,x,y\n")
                for c in coords.iterCoordinates():
                    fn = micFiles[c.getMicId()]
                    used.add(fn)
                    fh.write("%s,%d,%d\n" % (os.path.basename(fn), c.getX(), c.getY()))
            with open(self._inputFile("micrographs.txt"), "w") as fh:
                fh.write("\n".join(sorted(used)) + "\n")

    def _writeParticlesStar(self, classes):
        """RELION STAR of the classes' particles (_rlnImageName index@stack, _rlnClassNumber)."""
        lines = ["data_particles", "loop_", "_rlnImageName #1", "_rlnClassNumber #2"]
        for number, cls in enumerate(classes.iterItems(), start=1):
            for particle in cls.iterItems():
                index, fn = particle.getLocation()
                lines.append("%d@%s %d" % (int(index or 1), os.path.abspath(fn.replace(":mrcs", "")), number))
        with open(self._inputFile("particles.star"), "w") as fh:
            fh.write("\n".join(lines) + "\n")

    def validateStep(self):
        vol = self.inputVolume.get()
        args = ["validate", "--map", shlex.quote(os.path.abspath(volumeFile(vol))),
            "--voxel-size", "%.6f" % vol.getSamplingRate(),
            "--threshold=%g" % self.threshold.get(), "--resolution", "%g" % self.resolution.get(),
            "--out-dir", shlex.quote(self._reportFile())]
        halves = self._halves()
        if halves:
            args += ["--half1", shlex.quote(os.path.abspath(halves[0])),
                     "--half2", shlex.quote(os.path.abspath(halves[1]))]
        if os.path.exists(self._inputFile("classes.mrcs")):
            args += ["--classes", shlex.quote(self._inputFile("classes.mrcs"))]
        if os.path.exists(self._inputFile("particles.star")):
            args += ["--particles", shlex.quote(self._inputFile("particles.star"))]
        if os.path.exists(self._inputFile("coordinates.csv")):
            with open(self._inputFile("micrographs.txt")) as fh:
                mics = [line.strip() for line in fh if line.strip()]
            args += ["--micrographs"] + [shlex.quote(m) for m in mics] + [
                "--coords", shlex.quote(self._inputFile("coordinates.csv"))]
        if self.inputStructure.get() is not None:
            args += ["--model", shlex.quote(os.path.abspath(self.inputStructure.get().getFileName()))]
        args += ["--device", "cuda:%(GPU)s" if self.usesGpu() else "cpu"]
        self.runEngine(args, expected=[self._reportFile("report.json"), self._reportFile("report.html")])

    def createOutputStep(self):
        report = self.loadReport()
        self.levels.set(", ".join(report["levels"]))
        self.passed.set(report["score"]["passed"])
        self.evaluable.set(report["score"]["evaluable"])
        self._store()
        out = EMFile(filename=self._reportFile("report.html"))
        self._defineOutputs(outputReport=out)
        self._defineSourceRelation(self.inputVolume, out)

    def loadReport(self):
        path = self._reportFile("report.json")
        if not os.path.exists(path):
            return None
        with open(path) as fh:
            return json.load(fh)

    # --------------------------- INFO functions ------------------------------
    def _validate(self):
        errors = self._validateVolume(self.inputVolume.get()) + self._validateGpus()
        if self.threshold.get() is None:
            errors.append("Give the contour threshold of the map.")
        if not self.resolution.get() or self.resolution.get() <= 0:
            errors.append("Give the reported resolution in Å (a positive number).")
        vol = self.inputVolume.get()
        if self.useHalves.get() and vol is not None and vol.hasHalfMaps():
            for fn in self._halves():
                if not os.path.exists(fn):
                    errors.append("Half map %s does not exist." % fn)
        coords = self.inputCoordinates.get()
        if coords is not None and coords.getSize() == 0:
            errors.append("The coordinates set is empty.")
        return errors

    def _warnings(self):
        vol = self.inputVolume.get()
        if vol is not None and self.useHalves.get() and not vol.hasHalfMaps():
            return ["The map has no half maps: level 1 (FSC, local and directional resolution) will not be "
                    "evaluated.  Import the map with its half maps to get it."]
        return []

    def _summary(self):
        report = self.loadReport() if self.levels.hasValue() else None
        if report is None:
            return ["Validation not run yet."]
        lines = ["Levels attained: %s; %d out of %d evaluable items pass"
                 % (self.levels.get(), self.passed.get(), self.evaluable.get())]
        for check in report["checks"]:
            if check["status"] != "not-applicable":
                lines.append("%s %s: %s%s" % (check["id"], check["name"], STATUS_LABEL.get(check["status"], check["status"]),
                                              (" - " + "; ".join(check["warnings"])) if check["warnings"] else ""))
        lines.append("Report: %s" % self._reportFile("report.html"))
        return lines

    def _methods(self):
        if not self.levels.hasValue():
            return []
        return ["The map was validated following the I2PC validation levels [Sorzano2022] with the DeepQs plugin "
                "%s (all checks computed natively): levels %s were attained and %d out of %d evaluable items "
                "passed at a reported resolution of %g Å." % (__version__, self.levels.get(), self.passed.get(),
                                                                self.evaluable.get(), self.resolution.get())]

    def _citations(self):
        return ["Sorzano2022", "Pintilie2020", "DeepQs"]
