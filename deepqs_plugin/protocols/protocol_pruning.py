"""PickerOptimizer-style pruning: keep particles, discard ice/contamination and carbon boxes."""

import csv
import json
import os
import shlex

import pyworkflow.protocol.params as params
import pyworkflow.utils as pwutils
from pwem.objects import SetOfCoordinates, SetOfParticles
from pwem.protocols import ProtParticles
from pyworkflow.object import Float, Integer, Set
from pyworkflow.protocol.constants import STATUS_NEW

from deepqs_plugin import __version__
from deepqs_plugin.protocols.protocol_base import DeepQsProtocol

#: per-item attributes on the outputs: probabilities of the three classes
SCORE_ATTRS = {"p_particle": "_pruneParticle", "p_ice": "_pruneIce", "p_carbon": "_pruneCarbon"}
THRESHOLD_BALANCED, THRESHOLD_ADAPTIVE, THRESHOLD_FIXED = 0, 1, 2


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
        self.nDropped = Integer(0)

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
        form.addParam("thresholdMode", params.EnumParam, choices=["balanced (stored)", "adaptive", "fixed"],
                      default=THRESHOLD_BALANCED, display=params.EnumParam.DISPLAY_HLIST, label="Threshold",
                      help="Balanced: the threshold stored with the classifier (best balanced accuracy on its "
                           "validation data).  Adaptive: chosen on the input boxes themselves (their estimated "
                           "share of particles, best expected macro-F1); keeps more particles when most picks "
                           "are good (in streaming, chosen per batch).  Fixed: give one.")
        form.addParam("threshold", params.FloatParam, default=0.5, condition="thresholdMode == %d" % THRESHOLD_FIXED,
                      label="Threshold on p(particle)", help="Items with p(particle) at or above it are kept.")
        form.addParam("tta", params.BooleanParam, default=False, expertLevel=params.LEVEL_ADVANCED,
                      label="Average over rotations and flips",
                      help="Score every box in its 8 rotations/flips and average (test-time augmentation): "
                           "slightly more accurate, 8 times slower.")
        form.addSection(label="Fine-tuning")
        form.addParam("goodSubset", params.PointerParam, pointerClass="SetOfCoordinates, SetOfParticles",
                      allowsNull=True, label="Good examples (optional)",
                      help="Items known to be particles (same kind of input as above; 50 or more).  With "
                           "the bad examples, the shipped classifier is fine-tuned on them first; a fifth of them "
                           "is held out to judge that, and with too few held out (see 'Minimum held-out per class') "
                           "the shipped classifier is used unchanged.")
        form.addParam("badSubset", params.PointerParam, pointerClass="SetOfCoordinates, SetOfParticles",
                      allowsNull=True, label="Ice/contamination examples (optional)",
                      help="Items that are ice, contamination, aggregates or empty (50 or more).")
        form.addParam("carbonSubset", params.PointerParam, pointerClass="SetOfCoordinates, SetOfParticles",
                      allowsNull=True, label="Carbon examples (optional)",
                      help="Items on carbon film or its edge (optional third class).")
        form.addParam("epochs", params.IntParam, default=30, expertLevel=params.LEVEL_ADVANCED,
                      label="Fine-tuning epochs", help="At most this many; early stopping on held-out examples.")
        form.addParam("minValPerClass", params.IntParam, default=10, expertLevel=params.LEVEL_ADVANCED,
                      label="Minimum held-out per class",
                      help="With fewer held-out examples than this in a class the shipped classifier is kept "
                           "unchanged: on real data, fine-tuning judged on 2-4 examples per class did worse than "
                           "no fine-tuning.  0 always fine-tunes.")
        form.addParallelSection(threads=1, mpi=0)

    # --------------------------- STEPS ---------------------------------------
    # Items are pruned in batches: every batch is a folder extra/batches/bNNNN holding the engine's
    # inputs, ids.json (written last: the batch exists once it is there) and the engine's outputs.
    # A closed input makes one batch at once; an input still being produced (streaming) makes a
    # batch of whatever is new at every check.  Outputs grow after each batch and close with the
    # input.  On "continue", finished batches are not run again (same steps, same arguments).

    def _insertAllSteps(self):
        self._prereq = []
        if self._fineTune():
            self._insertFunctionStep(self.convertExamplesStep, needsGPU=False)
            self._prereq = [self._insertFunctionStep(self.trainStep, needsGPU=False)]
        self._insertFunctionStep(self.closeOutputStep, prerequisites=[], wait=True, needsGPU=False)
        self._batchSteps = []
        for batch in self._knownBatches():            # a previous run's batches, in their order
            self._batchSteps.append(self._insertFunctionStep(self.pruneBatchStep, batch, prerequisites=self._prereq))
        self._checkNewInput(store=False)             # what is there now (everything, if the input is closed)

    def _stepsCheck(self):
        self._checkNewInput()
        self._checkNewOutput()

    def _fineTune(self):
        return self.goodSubset.get() is not None and self.badSubset.get() is not None

    def _isCoords(self, s=None):
        return isinstance(s if s is not None else self.inputSet.get(), SetOfCoordinates)

    def _box(self):
        return self.boxSize.get() or self.inputSet.get().getBoxSize()

    def _folder(self, *name):
        return self._getExtraPath(*name)

    def _batchFolder(self, batch, *name):
        return self._getExtraPath("batches", batch, *name)

    def _knownBatches(self):
        """Names of the batches written so far (those with their ids.json), in order."""
        folder = self._getExtraPath("batches")
        if not os.path.isdir(folder):
            return []
        return sorted(b for b in os.listdir(folder) if os.path.exists(self._batchFolder(b, "ids.json")))

    def _batchIds(self, batch):
        """The item ids of a batch: {micrograph stem: [ids in file order]} or [ids in star order]."""
        with open(self._batchFolder(batch, "ids.json")) as fh:
            return json.load(fh)

    @staticmethod
    def _flatIds(ids):
        return [i for v in ids.values() for i in v] if isinstance(ids, dict) else list(ids)

    def _openInput(self):
        """The input set read afresh from its file (it may be growing)."""
        s = self.inputSet.get()
        fresh = type(s)(filename=s.getFileName())
        fresh.loadAllProperties()
        return fresh

    @staticmethod
    def _micrographFiles(coordSet):
        """{micrograph id: absolute file} of a coordinates set's micrographs, read afresh (the set
        must be one loaded with the project, whose micrographs pointer resolves)."""
        mics = coordSet.getMicrographs()
        fresh = type(mics)(filename=mics.getFileName())
        out = {m.getObjId(): os.path.abspath(m.getFileName()) for m in fresh.iterItems()}
        fresh.close()
        return out

    def _writeCoordFiles(self, coords, micFiles, folder):
        """One CSV (x,y) per micrograph, named by its stem; returns {stem: [coordinate ids in file order]}."""
        pwutils.makePath(folder)
        rows, ids, used = {}, {}, set()
        for c in coords:
            stem = pwutils.removeBaseExt(micFiles[c.getMicId()])
            rows.setdefault(stem, []).append("%d,%d" % (c.getX(), c.getY()))
            ids.setdefault(stem, []).append(c.getObjId())
            used.add(micFiles[c.getMicId()])
        for stem, lines in rows.items():
            with open(os.path.join(folder, stem + ".csv"), "w") as fh:
                fh.write("x,y\n" + "\n".join(lines) + "\n")
        with open(os.path.join(folder, "micrographs.txt"), "w") as fh:
            fh.write("\n".join(sorted(used)) + "\n")
        return ids

    @staticmethod
    def _writeParticlesStar(particles, path):
        """RELION STAR (_rlnImageName index@stack) in the given order; returns the particle ids."""
        ids, lines = [], ["data_particles", "loop_", "_rlnImageName #1"]
        for p in particles:
            index, fn = p.getLocation()
            lines.append("%d@%s" % (int(index or 1), os.path.abspath(fn.replace(":mrcs", "").replace(":mrc", ""))))
            ids.append(p.getObjId())
        pwutils.makeFilePath(path)
        with open(path, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        return ids

    def _convert(self, s, folder):
        """Write a whole (closed) set for the engine into ``folder``."""
        if self._isCoords(s):
            return self._writeCoordFiles(list(s.iterItems()), self._micrographFiles(s), folder)
        return self._writeParticlesStar(s.iterItems(), os.path.join(folder, "particles.star"))

    def _files(self, folder, coords):
        """Engine arguments naming converted items: coordinate files, or the particles .star."""
        if coords:
            return [shlex.quote(os.path.abspath(os.path.join(folder, f))) for f in sorted(os.listdir(folder))
                    if f.endswith(".csv")]
        return [shlex.quote(os.path.abspath(os.path.join(folder, "particles.star")))]

    @staticmethod
    def _micrographs(folder):
        with open(os.path.join(folder, "micrographs.txt")) as fh:
            return [line.strip() for line in fh if line.strip()]

    # ---- input: new items become batches
    def _queued(self):
        """Ids of the input items already given to a batch (read from the batches once per process)."""
        if getattr(self, "_queuedIds", None) is None:
            self._queuedIds = set()
            for batch in self._knownBatches():
                self._queuedIds.update(self._flatIds(self._batchIds(batch)))
        return self._queuedIds

    def _closeStep(self):
        for step in self._steps:
            if step.funcName.get() == "closeOutputStep":
                return step
        return None

    def _checkNewInput(self, store=True):
        closeStep = self._closeStep()
        if closeStep is None or not closeStep.isWaiting():
            return                                            # input already closed and all queued
        inSet = self._openInput()
        closed = inSet.isStreamClosed()                       # read first: then no item can be missed
        queued = self._queued()
        last = max(queued) if queued else 0
        new = [item.clone() for item in inSet.iterItems(where="id > %d" % last) if item.getObjId() not in queued]
        held = []
        if new:
            batch = "b%04d" % (len(self._knownBatches()) + 1)
            folder = self._batchFolder(batch)
            pwutils.cleanPath(folder)
            if self._isCoords(inSet):
                micFiles = self._micrographFiles(self.inputSet.get())
                held = [c for c in new if c.getMicId() not in micFiles]   # micrograph not listed yet
                new = [c for c in new if c.getMicId() in micFiles]
                ids = self._writeCoordFiles(new, micFiles, folder) if new else None
            else:
                ids = self._writeParticlesStar(new, os.path.join(folder, "particles.star"))
            if new:
                tmp = self._batchFolder(batch, "ids.json.tmp")
                with open(tmp, "w") as fh:
                    json.dump(ids, fh)
                os.replace(tmp, self._batchFolder(batch, "ids.json"))
                self._queuedIds.update(c.getObjId() for c in new)
                self._batchSteps.append(self._insertFunctionStep(self.pruneBatchStep, batch,
                                                                 prerequisites=self._prereq))
                self.info("Batch %s: %d new items" % (batch, len(new)))
        inSet.close()
        if closed and held:
            self.nDropped.set(len(held))
            self.warning("%d coordinates belong to micrographs that are not in their micrographs set; "
                         "they are left out of both outputs." % len(held))
            held = []
        if closed and not held:
            closeStep.addPrerequisites(*self._batchSteps)    # close after every batch
            closeStep.setStatus(STATUS_NEW)
        if store:
            self.updateSteps()

    def convertExamplesStep(self):
        for name in ("goodSubset", "badSubset", "carbonSubset"):
            s = getattr(self, name).get()
            if s is not None:
                self._convert(s, self._folder(name))

    def trainStep(self):
        args = ["prune", "train"]
        mics = set()
        coords = self._isCoords(self.goodSubset.get())
        for flag, name in (("--good", "goodSubset"), ("--bad", "badSubset"), ("--carbon", "carbonSubset")):
            if getattr(self, name).get() is not None:
                args += [flag] + self._files(self._folder(name), coords)
                if coords:
                    mics.update(self._micrographs(self._folder(name)))
        if coords:
            args += ["--micrographs"] + [shlex.quote(m) for m in sorted(mics)] + ["--box", str(self._box())]
        args += ["--out", shlex.quote(self._folder("classifier.pt")), "--epochs", str(self.epochs.get()),
                 "--min-val-per-class", str(max(0, self.minValPerClass.get())),
                 "--threads", str(max(1, self.numberOfThreads.get())),
                 "--json", shlex.quote(self._folder("train_summary.json"))]
        self.runEngine(args, expected=[self._folder("classifier.pt")])

    def pruneBatchStep(self, batch):
        folder = self._batchFolder(batch)
        coords = self._isCoords()
        args = ["prune", "run"]
        if coords:
            args += ["--micrographs"] + [shlex.quote(m) for m in self._micrographs(folder)]
            args += ["--coords"] + self._files(folder, True) + ["--box", str(self._box())]
        else:
            args += ["--particles"] + self._files(folder, False)
        if self._fineTune():
            args += ["--model", shlex.quote(self._folder("classifier.pt"))]
        summary = self._batchFolder(batch, "prune_summary.json")
        mode = self.thresholdMode.get()
        args += ["--threshold", "%g" % self.threshold.get() if mode == THRESHOLD_FIXED
                 else ("adaptive" if mode == THRESHOLD_ADAPTIVE else "balanced")]
        if self.tta.get():
            args.append("--tta")
        args += ["--out-dir", shlex.quote(self._batchFolder(batch, "pruned")),
                 "--threads", str(max(1, self.numberOfThreads.get())), "--json", shlex.quote(summary),
                 "--device", "cuda:%(GPU)s" if self.usesGpu() else "cpu"]
        self.runEngine(args, expected=[self._batchFolder(batch, "pruned", "scores.csv"), summary])

    # ---- output: finished batches are appended
    def _batchScores(self, batch):
        """{item id: (kept, {attribute: probability})} of one finished batch."""
        ids = self._batchIds(batch)
        out = {}
        with open(self._batchFolder(batch, "pruned", "scores.csv"), newline="") as fh:
            for row in csv.DictReader(fh):
                index = int(row["index"])
                if isinstance(ids, dict):       # coordinates: per micrograph file, in file order
                    item = ids[pwutils.removeBaseExt(row["micrograph"])][index]
                else:                           # particles: star order
                    item = ids[index]
                out[item] = (row["kept"] == "1", {attr: float(row[col]) for col, attr in SCORE_ATTRS.items()})
        return out

    def _finishedBatches(self):
        return [b for b in self._knownBatches() if os.path.exists(self._batchFolder(b, "prune_summary.json"))]

    def _outputNames(self):
        return (("outputCoordinates", "outputCoordinates_discarded") if self._isCoords()
                else ("outputParticles", "outputParticles_discarded"))

    def _openOutput(self, name, suffix):
        """An output set to append to: the existing one (reopened) or a new one."""
        existing = getattr(self, name, None)
        s = self.inputSet.get()
        if existing is not None:
            out = type(existing)(filename=existing.getFileName())
            out.loadAllProperties()
            out.enableAppend()
            if self._isCoords():
                out.setMicrographs(s.getMicrographs())   # a set read from its file has the pointer unresolved
            return out
        if self._isCoords():
            out = self._createSetOfCoordinates(s.getMicrographs(), suffix=suffix)
            out.setBoxSize(s.getBoxSize())
        else:
            out = self._createSetOfParticles(suffix=suffix)
            out.copyInfo(s)
        out.setStreamState(out.STREAM_OPEN)
        return out

    def _appended(self):
        """Ids already in the outputs (read from them once per process: safe on continue)."""
        if getattr(self, "_appendedIds", None) is None:
            self._appendedIds = set()
            for name in self._outputNames():
                existing = getattr(self, name, None)
                if existing is not None:
                    self._appendedIds.update(existing.getIdSet())
        return self._appendedIds

    def _checkNewOutput(self, close=False):
        appended = self._appended()
        todo = {}
        for batch in self._finishedBatches():
            ids = self._flatIds(self._batchIds(batch))
            if any(i not in appended for i in ids):
                todo.update({i: v for i, v in self._batchScores(batch).items() if i not in appended})
        if not todo and not close:
            return
        names = self._outputNames()
        outs = {}
        if todo:
            inSet = self._openInput()
            for item in inSet.iterItems(where="id >= %d AND id <= %d" % (min(todo), max(todo))):
                if item.getObjId() not in todo:
                    continue
                keep, probs = todo[item.getObjId()]
                for attr, value in probs.items():
                    setattr(item, attr, Float(value))
                name, suffix = (names[0], "kept") if keep else (names[1], "discarded")
                if name not in outs:
                    outs[name] = self._openOutput(name, suffix)
                outs[name].append(item)
                appended.add(item.getObjId())
            inSet.close()
        state = Set.STREAM_CLOSED if close else Set.STREAM_OPEN
        for name, suffix in ((names[0], "kept"), (names[1], "discarded")):
            exists = getattr(self, name, None) is not None
            out = outs.get(name)
            if out is None:
                if not (close and (exists or name == names[0])):
                    continue            # nothing new; the kept set is made at the latest on close
                out = self._openOutput(name, suffix)
            self._updateOutputSet(name, out, state)
            if not exists:
                self._defineSourceRelation(self.inputSet, out)
        self._storeCounts()

    def _storeCounts(self):
        names = self._outputNames()
        sizes = [getattr(self, n).getSize() if getattr(self, n, None) is not None else 0 for n in names]
        self.nKept.set(sizes[0])
        self.nRejected.set(sizes[1])
        summary = self.loadSummary()
        if summary.get("threshold") is not None:
            self.usedThreshold.set(summary["threshold"])
        self._store(self.nKept, self.nRejected, self.usedThreshold, self.nDropped)

    def closeOutputStep(self):
        self._checkNewOutput(close=True)

    def loadSummary(self):
        """The engine's summaries of every finished batch, added up (threshold: the first batch's)."""
        total = {}
        for batch in self._finishedBatches():
            with open(self._batchFolder(batch, "prune_summary.json")) as fh:
                s = json.load(fh)
            if not total:
                total = dict(s)
                total["batches"] = 1
                continue
            total["batches"] += 1
            for key, value in s.items():
                if key.startswith("n_") and isinstance(value, (int, float)):
                    total[key] = total.get(key, 0) + value
        return total

    def scoredBatches(self):
        """[(folder of the engine inputs, scores.csv)] of every finished batch, in order (viewers)."""
        return [(self._batchFolder(b), self._batchFolder(b, "pruned", "scores.csv")) for b in self._finishedBatches()]

    # --------------------------- INFO ----------------------------------------
    def _validate(self):
        errors = self._validateGpus()
        s = self.inputSet.get()
        if s is not None and s.getSize() == 0 and s.isStreamClosed():
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

    def _warnings(self):
        small = [label for name, label in (("goodSubset", "good"), ("badSubset", "ice/contamination"),
                                           ("carbonSubset", "carbon"))
                 if getattr(self, name).get() is not None
                 and getattr(self, name).get().getSize() < 5 * max(0, self.minValPerClass.get())]
        if small:
            return ["Fewer than %d %s examples: too few are held out to judge fine-tuning, so the shipped "
                    "classifier will be used unchanged." % (5 * self.minValPerClass.get(), " and ".join(small))]
        return []

    def _trainSummary(self):
        """The engine's training summary (None before training or without fine-tuning)."""
        path = self._folder("train_summary.json")
        if not self._fineTune() or not os.path.exists(path):
            return None
        with open(path) as fh:
            return json.load(fh)

    def _summary(self):
        if not self.nKept.hasValue():
            return ["Not pruned yet."]
        total = self.nKept.get() + self.nRejected.get()
        return ["Kept %d of %d items (%.1f %%), discarded %d; threshold on p(particle) %.3f"
                % (self.nKept.get(), total, 100.0 * self.nKept.get() / max(total, 1), self.nRejected.get(),
                   self.usedThreshold.get())] + (
            ["WARNING: %d coordinates whose micrograph is missing were left out" % self.nDropped.get()]
            if self.nDropped.get() else []) + (
            ["Labelled examples not used for fine-tuning: %s" % (self._trainSummary() or {}).get("skipped")]
            if (self._trainSummary() or {}).get("skipped") else [])

    def _methods(self):
        if not self.nKept.hasValue():
            return []
        ts = self._trainSummary()
        how = ("fine-tuned on labelled examples" if ts is not None and ts.get("fine_tuned", True)
               else "pretrained" + (", too few labelled examples to fine-tune" if ts is not None else ""))
        return ["Picks were pruned with a PickerOptimizer-style classifier [Li2022] (DeepQs plugin %s, %s): "
                "%d of %d items were kept (threshold %.3f on the particle probability)."
                % (__version__, how, self.nKept.get(), self.nKept.get() + self.nRejected.get(),
                   self.usedThreshold.get())]

    def _citations(self):
        return ["Li2022"]
