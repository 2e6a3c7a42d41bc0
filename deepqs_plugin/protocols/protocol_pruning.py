"""PickerOptimizer-style pruning: keep particles, discard ice/contamination and carbon boxes."""

import csv
import json
import os
import shlex

import pyworkflow.protocol.params as params
import pyworkflow.utils as pwutils
from pwem.objects import SetOfCoordinates, SetOfParticles
from pwem.protocols import ProtParticles
from pyworkflow.object import Float, Integer

from deepqs_plugin import __version__
from deepqs_plugin.protocols.protocol_base import DeepQsProtocol

#: per-item attributes on the outputs: probabilities of the three classes
SCORE_ATTRS = {"p_particle": "_pruneParticle", "p_ice": "_pruneIce", "p_carbon": "_pruneCarbon"}


class ProtPickerOptimizer(ProtParticles, DeepQsProtocol):
    """Prune automatic picks (PickerOptimizer, Li et al. 2022): a classifier pretrained on
    simulated and real cryo-EM boxes (optionally fine-tuned on a few of your labelled boxes)
    tells particles from ice/contamination and carbon.  Kept and discarded items are output as
    two sets, each item with its three class probabilities."""

    _label = "pickeroptimizer prune"
    _possibleOutputs = {"outputCoordinates": SetOfCoordinates, "outputCoordinates_discarded": SetOfCoordinates,
                        "outputParticles": SetOfParticles, "outputParticles_discarded": SetOfParticles}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.nKept = Integer()
        self.nRejected = Integer()
        self.usedThreshold = Float()

    def _defineParams(self, form):
        self._defineGpuParams(form, "Score the boxes on a GPU (CUDA); fine-tuning runs on the CPU (a few "
                                    "labelled boxes).")
        form.addSection(label="Input")
        form.addParam("inputSet", params.PointerParam, pointerClass="SetOfCoordinates, SetOfParticles", important=True,
                      label="Picks or particles",
                      help="Coordinates (boxes are cut from their micrographs) or extracted particles.")
        form.addParam("boxSize", params.IntParam, default=0, label="Box size (pixels)",
                      help="Box cut around each coordinate, in micrograph pixels (about 1.5-2 particle "
                           "diameters).  0: the box size of the coordinates set.  Not used for particles.")
        form.addParam("autoThreshold", params.BooleanParam, default=True, label="Balanced threshold",
                      help="Yes: the threshold stored with the classifier (best balanced accuracy on its "
                           "validation data).  No: give one.")
        form.addParam("threshold", params.FloatParam, default=0.5, condition="not autoThreshold",
                      label="Threshold on p(particle)", help="Items with p(particle) at or above it are kept.")
        form.addSection(label="Fine-tuning")
        form.addParam("goodSubset", params.PointerParam, pointerClass="SetOfCoordinates, SetOfParticles",
                      allowsNull=True, label="Good examples (optional)",
                      help="10-100 items known to be particles (same kind of input as above).  With the "
                           "bad examples, the shipped classifier is fine-tuned on them first.")
        form.addParam("badSubset", params.PointerParam, pointerClass="SetOfCoordinates, SetOfParticles",
                      allowsNull=True, label="Ice/contamination examples (optional)",
                      help="10-100 items that are ice, contamination, aggregates or empty.")
        form.addParam("carbonSubset", params.PointerParam, pointerClass="SetOfCoordinates, SetOfParticles",
                      allowsNull=True, label="Carbon examples (optional)",
                      help="Items on carbon film or its edge (optional third class).")
        form.addParam("epochs", params.IntParam, default=30, expertLevel=params.LEVEL_ADVANCED,
                      label="Fine-tuning epochs", help="At most this many; early stopping on held-out examples.")
        form.addParallelSection(threads=1, mpi=0)

    # --------------------------- STEPS ---------------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        if self._fineTune():
            self._insertFunctionStep(self.trainStep, needsGPU=False)
        self._insertFunctionStep(self.pruneStep)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _fineTune(self):
        return self.goodSubset.get() is not None and self.badSubset.get() is not None

    def _isCoords(self, s=None):
        return isinstance(s if s is not None else self.inputSet.get(), SetOfCoordinates)

    def _box(self):
        return self.boxSize.get() or self.inputSet.get().getBoxSize()

    def _folder(self, *name):
        return self._getExtraPath(*name)

    def _writeCoordFiles(self, coordSet, folder):
        """One CSV (x,y) per micrograph, named by its stem; returns {stem: [coordinate ids in file order]}."""
        pwutils.makePath(folder)
        rows, ids = {}, {}
        micFiles = {m.getObjId(): os.path.abspath(m.getFileName()) for m in coordSet.getMicrographs()}
        for c in coordSet.iterCoordinates():
            stem = pwutils.removeBaseExt(micFiles[c.getMicId()])
            rows.setdefault(stem, []).append("%d,%d" % (c.getX(), c.getY()))
            ids.setdefault(stem, []).append(c.getObjId())
        for stem, lines in rows.items():
            with open(os.path.join(folder, stem + ".csv"), "w") as fh:
                fh.write("x,y\n" + "\n".join(lines) + "\n")
        with open(os.path.join(folder, "micrographs.txt"), "w") as fh:
            fh.write("\n".join(sorted(set(micFiles[k] for k in micFiles
                                          if pwutils.removeBaseExt(micFiles[k]) in rows))) + "\n")
        return ids

    def _writeParticlesStar(self, partSet, path):
        """RELION STAR (_rlnImageName index@stack) in set order; returns the particle ids in that order."""
        ids, lines = [], ["data_particles", "loop_", "_rlnImageName #1"]
        for p in partSet.iterItems():
            index, fn = p.getLocation()
            lines.append("%d@%s" % (int(index or 1), os.path.abspath(fn.replace(":mrcs", "").replace(":mrc", ""))))
            ids.append(p.getObjId())
        pwutils.makeFilePath(path)
        with open(path, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        return ids

    def _convert(self, s, name):
        if self._isCoords(s):
            return self._writeCoordFiles(s, self._folder(name))
        return self._writeParticlesStar(s, self._folder(name, "particles.star"))

    def _files(self, s, name):
        """Engine arguments naming a converted set: coordinate files, or the particles .star."""
        if self._isCoords(s):
            folder = self._folder(name)
            return [shlex.quote(os.path.abspath(os.path.join(folder, f))) for f in sorted(os.listdir(folder))
                    if f.endswith(".csv")]
        return [shlex.quote(os.path.abspath(self._folder(name, "particles.star")))]

    def _micArgs(self, s, name):
        with open(self._folder(name, "micrographs.txt")) as fh:
            mics = [line.strip() for line in fh if line.strip()]
        return ["--micrographs"] + [shlex.quote(m) for m in mics]

    def convertInputStep(self):
        ids = self._convert(self.inputSet.get(), "input")
        with open(self._folder("input_ids.json"), "w") as fh:
            json.dump(ids, fh)
        for name in ("goodSubset", "badSubset", "carbonSubset"):
            s = getattr(self, name).get()
            if s is not None:
                self._convert(s, name)

    def trainStep(self):
        args = ["prune", "train"]
        for flag, name in (("--good", "goodSubset"), ("--bad", "badSubset"), ("--carbon", "carbonSubset")):
            s = getattr(self, name).get()
            if s is not None:
                args += [flag] + self._files(s, name)
        good = self.goodSubset.get()
        if self._isCoords(good):
            mics = set()
            for name in ("goodSubset", "badSubset", "carbonSubset"):
                if getattr(self, name).get() is not None:
                    mics.update(self._micArgs(getattr(self, name).get(), name)[1:])
            args += ["--micrographs"] + sorted(mics) + ["--box", str(self._box())]
        args += ["--out", shlex.quote(self._folder("classifier.pt")), "--epochs", str(self.epochs.get()),
                 "--threads", str(max(1, self.numberOfThreads.get())),
                 "--json", shlex.quote(self._folder("train_summary.json"))]
        self.runEngine(args, expected=[self._folder("classifier.pt")])

    def pruneStep(self):
        s = self.inputSet.get()
        args = ["prune", "run"]
        if self._isCoords(s):
            args += self._micArgs(s, "input") + ["--coords"] + self._files(s, "input") + ["--box", str(self._box())]
        else:
            args += ["--particles"] + self._files(s, "input")
        if self._fineTune():
            args += ["--model", shlex.quote(self._folder("classifier.pt"))]
        args += ["--threshold", "balanced" if self.autoThreshold.get() else "%g" % self.threshold.get(),
                 "--out-dir", shlex.quote(self._folder("pruned")), "--threads", str(max(1, self.numberOfThreads.get())),
                 "--json", shlex.quote(self._folder("prune_summary.json")),
                 "--device", "cuda:%(GPU)s" if self.usesGpu() else "cpu"]
        self.runEngine(args, expected=[self._folder("pruned", "scores.csv"), self._folder("prune_summary.json")])

    def _scores(self):
        """{item id: (kept, {attribute: probability})} from the engine's scores.csv."""
        with open(self._folder("input_ids.json")) as fh:
            ids = json.load(fh)
        out = {}
        with open(self._folder("pruned", "scores.csv"), newline="") as fh:
            for row in csv.DictReader(fh):
                index = int(row["index"])
                if isinstance(ids, dict):       # coordinates: per micrograph file, in file order
                    item = ids[pwutils.removeBaseExt(row["micrograph"])][index]
                else:                           # particles: star order
                    item = ids[index]
                out[item] = (row["kept"] == "1", {attr: float(row[col]) for col, attr in SCORE_ATTRS.items()})
        return out

    def createOutputStep(self):
        scores = self._scores()
        s = self.inputSet.get()
        summary = self.loadSummary()
        if self._isCoords(s):
            kept = self._createSetOfCoordinates(s.getMicrographs(), suffix="kept")
            rejected = self._createSetOfCoordinates(s.getMicrographs(), suffix="discarded")
            for out in (kept, rejected):
                out.setBoxSize(s.getBoxSize())
            items = s.iterItems()   # keeps each coordinate's micId (iterCoordinates re-associates one reused micrograph)
            names = ("outputCoordinates", "outputCoordinates_discarded")
        else:
            kept = self._createSetOfParticles(suffix="kept")
            rejected = self._createSetOfParticles(suffix="discarded")
            for out in (kept, rejected):
                out.copyInfo(s)
            items = s.iterItems()
            names = ("outputParticles", "outputParticles_discarded")
        for item in items:
            keep, probs = scores[item.getObjId()]
            for attr, value in probs.items():
                setattr(item, attr, Float(value))
            (kept if keep else rejected).append(item)
        self.nKept.set(kept.getSize())
        self.nRejected.set(rejected.getSize())
        self.usedThreshold.set(summary.get("threshold"))
        self._store()
        outputs = {names[0]: kept}
        if rejected.getSize():
            outputs[names[1]] = rejected
        self._defineOutputs(**outputs)
        for out in outputs.values():
            self._defineSourceRelation(self.inputSet, out)

    def loadSummary(self):
        path = self._folder("prune_summary.json")
        if not os.path.exists(path):
            return {}
        with open(path) as fh:
            return json.load(fh)

    # --------------------------- INFO ----------------------------------------
    def _validate(self):
        errors = self._validateGpus()
        s = self.inputSet.get()
        if s is not None and s.getSize() == 0:
            errors.append("The input set is empty.")
        if s is not None and self._isCoords(s) and not self._box():
            errors.append("Give the box size (pixels): the coordinates set has none.")
        if (self.goodSubset.get() is None) != (self.badSubset.get() is None):
            errors.append("Fine-tuning needs both good and ice/contamination examples.")
        for name in ("goodSubset", "badSubset", "carbonSubset"):
            sub = getattr(self, name).get()
            if sub is not None and s is not None and self._isCoords(sub) != self._isCoords(s):
                errors.append("The examples must be of the same kind as the input (coordinates or particles).")
                break
        return errors

    def _summary(self):
        if not self.nKept.hasValue():
            return ["Not pruned yet."]
        total = self.nKept.get() + self.nRejected.get()
        return ["Kept %d of %d items (%.1f %%), discarded %d; threshold on p(particle) %.3f"
                % (self.nKept.get(), total, 100.0 * self.nKept.get() / max(total, 1), self.nRejected.get(),
                   self.usedThreshold.get())]

    def _methods(self):
        if not self.nKept.hasValue():
            return []
        how = "fine-tuned on labelled examples" if self._fineTune() else "pretrained"
        return ["Picks were pruned with a PickerOptimizer-style classifier [Li2022] (DeepQs plugin %s, %s): "
                "%d of %d items were kept (threshold %.3f on the particle probability)."
                % (__version__, how, self.nKept.get(), self.nKept.get() + self.nRejected.get(),
                   self.usedThreshold.get())]

    def _citations(self):
        return ["Li2022"]
