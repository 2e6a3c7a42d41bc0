"""DeepEM particle picking: train a picker from a few picks, pick micrographs (streaming)."""

import csv
import json
import os
import shlex

import pyworkflow.protocol.params as params
import pyworkflow.utils as pwutils
from pwem.objects import Coordinate, EMFile
from pwem.protocols import ProtParticlePicking, ProtParticlePickingAuto
from pyworkflow.object import Float, Integer
from pyworkflow.protocol.constants import STEPS_PARALLEL, STEPS_SERIAL

from deepqs_plugin import __version__
from deepqs_plugin.protocols.protocol_base import DeepQsProtocol

MODEL_SHIPPED, MODEL_TRAINED, MODEL_FILE = 0, 1, 2
STD_MODEL, STD_OFF, STD_RANGE = 0, 1, 2
SCORE_ATTR = "_deepemScore"  # per-coordinate score (0-1) on the output SetOfCoordinates


def micStem(mic):
    """The name the engine gives a micrograph's coordinate file: the file's stem."""
    return pwutils.removeBaseExt(mic.getFileName())


def _defineDiameterParam(form):
    form.addParam("particleDiameter", params.FloatParam, important=True,
                  label="Particle diameter (Å)",
                  help="Longest diameter of the particle in Å.  With the micrographs' sampling rate it "
                       "gives the size in pixels that sets the working pixel size, the box and the "
                       "non-maximum-suppression distance.")


class ProtDeepEMTrain(ProtParticlePicking, DeepQsProtocol):
    """Train a DeepEM picker (Zhu, Ouyang & Mao 2017) from picked particles.

    A convolutional network learns to tell particle boxes from background on micrographs where
    particles were picked (a few hundred picks are enough when you start from the shipped general
    model).  Negatives are sampled away from the picks, plus optional verified false positives
    (DeepEM's iterative retraining).  The threshold that maximises F2 on held-out micrographs and
    the standard-deviation range of the training particles are stored with the model."""

    _label = "deepem train picker"
    _possibleOutputs = {"outputModel": EMFile}
    stepsExecutionMode = STEPS_SERIAL

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.threshold = Float()
        self.particlesUsed = Integer()
        self.micrographsUsed = Integer()

    def _defineParams(self, form):
        DeepQsProtocol._defineGpuParams(form, "Train on a GPU (CUDA).")
        ProtParticlePicking._defineParams(self, form)
        form.addParam("inputCoordinates", params.PointerParam, pointerClass="SetOfCoordinates", important=True,
                      label="Picked particles",
                      help="Particle positions on (some of) the micrographs.  Only micrographs with picks "
                           "are used for training; pick every particle on them (unpicked particles "
                           "would be learned as background).")
        form.addParam("inputNegatives", params.PointerParam, pointerClass="SetOfCoordinates", allowsNull=True,
                      label="Verified false positives (optional)",
                      help="Positions known not to be particles (ice, carbon, junk picked by a previous "
                           "model): added as negatives (DeepEM's iterative retraining).")
        _defineDiameterParam(form)
        form.addParam("startFrom", params.EnumParam, choices=["shipped general model", "a trained picker", "scratch"],
                      default=MODEL_SHIPPED, display=params.EnumParam.DISPLAY_HLIST, label="Start from",
                      help="Fine-tuning the shipped general model (or a picker trained before) needs far "
                           "fewer picks than training from scratch.")
        form.addParam("inputModel", params.PointerParam, pointerClass="EMFile", allowsNull=True,
                      condition="startFrom == %d" % MODEL_TRAINED, label="Picker to continue from",
                      help="A picker from a previous 'deepem train picker' run.")
        form.addParam("architecture", params.EnumParam, choices=["default", "deepem"], default=0,
                      condition="startFrom == 2", label="Network",
                      help="default: ReLU/BatchNorm CNN with cross-entropy; deepem: the published DeepEM "
                           "network (sigmoid, mean pooling, squared error).")
        form.addParam("epochs", params.IntParam, default=30, validators=[params.Positive],
                      expertLevel=params.LEVEL_ADVANCED, label="Maximum epochs",
                      help="Training stops earlier when the validation loss stops improving.")
        form.addParam("patience", params.IntParam, default=5, validators=[params.Positive],
                      expertLevel=params.LEVEL_ADVANCED, label="Early-stopping patience (epochs)",
                      help="Stop when the validation loss has not improved for this many epochs.")
        form.addParam("mineNegatives", params.IntParam, default=0, expertLevel=params.LEVEL_ADVANCED,
                      label="Hard-negative rounds",
                      help="Rounds of picking the training micrographs and adding every pick away from "
                           "the labels as a negative.  Only when every particle is picked on them.")
        form.addParam("seed", params.IntParam, default=0, expertLevel=params.LEVEL_ADVANCED, label="Random seed",
                      help="Same seed and data: same picker (on the CPU).")
        form.addParallelSection(threads=1, mpi=0)

    # --------------------------- STEPS ---------------------------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.convertInputStep, needsGPU=False)
        self._insertFunctionStep(self.trainStep)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _modelFile(self):
        return self._getExtraPath("picker.pt")

    def _summaryFile(self):
        return self._getExtraPath("train_summary.json")

    def _writeCoordinates(self, coordSet, folder):
        """One CSV of centres (x,y in micrograph pixels) per micrograph that has coordinates."""
        pwutils.makePath(folder)
        rows = {}
        for coord in coordSet.iterCoordinates():
            rows.setdefault(coord.getMicId(), []).append((coord.getX(), coord.getY()))
        files = {}
        for mic in self.getInputMicrographs():
            if mic.getObjId() in rows:
                fn = os.path.join(folder, micStem(mic) + ".csv")
                with open(fn, "w") as fh:
                    fh.write("x,y\n" + "".join("%d,%d\n" % xy for xy in rows[mic.getObjId()]))
                files[mic.getObjId()] = (os.path.abspath(mic.getFileName()), fn)
        return files

    def convertInputStep(self):
        pos = self._writeCoordinates(self.inputCoordinates.get(), self._getExtraPath("positives"))
        with open(self._getExtraPath("training_files.json"), "w") as fh:
            json.dump({"positives": list(pos.values())}, fh)
        if self.inputNegatives.get() is not None:
            self._writeCoordinates(self.inputNegatives.get(), self._getExtraPath("negatives"))

    def trainStep(self):
        with open(self._getExtraPath("training_files.json")) as fh:
            pos = json.load(fh)["positives"]
        mics = [shlex.quote(m) for m, _ in pos]
        coords = [shlex.quote(os.path.abspath(c)) for _, c in pos]
        args = ["pick", "train", "--micrographs"] + mics + ["--coords"] + coords
        negFolder = self._getExtraPath("negatives")
        if os.path.isdir(negFolder) and os.listdir(negFolder):
            args += ["--negatives"] + [shlex.quote(os.path.abspath(os.path.join(negFolder, f)))
                                       for f in sorted(os.listdir(negFolder))]
        args += ["--diameter", "%g" % self.particleDiameter.get(),
                 "--pixel-size", "%g" % self.getInputMicrographs().getSamplingRate()]
        if self.startFrom.get() == MODEL_SHIPPED:
            from deepqs.picking import DEFAULT_MODEL
            args += ["--init", shlex.quote(DEFAULT_MODEL)]
        elif self.startFrom.get() == MODEL_TRAINED:
            args += ["--init", shlex.quote(os.path.abspath(self.inputModel.get().getFileName()))]
        else:
            args += ["--arch", ["default", "deepem"][self.architecture.get()]]
        args += ["--out", shlex.quote(self._modelFile()), "--epochs", str(self.epochs.get()),
                 "--patience", str(self.patience.get()), "--seed", str(self.seed.get()),
                 "--checkpoint", shlex.quote(self._getExtraPath("checkpoint.pt")),
                 "--threads", str(max(1, self.numberOfThreads.get())),
                 "--json", shlex.quote(self._summaryFile())]
        if self.mineNegatives.get() > 0:
            args += ["--mine-negatives", str(self.mineNegatives.get())]
        args += ["--device", "cuda:%(GPU)s" if self.usesGpu() else "cpu"]
        self.runEngine(args, expected=[self._modelFile(), self._summaryFile()])

    def createOutputStep(self):
        s = self.loadSummary()
        self.threshold.set(s.get("threshold"))
        self.particlesUsed.set(int(s.get("particles_train", 0)) + int(s.get("particles_validation", 0)))
        self.micrographsUsed.set(s.get("micrographs_used"))
        self._store()
        model = EMFile(filename=self._modelFile())
        self._defineOutputs(outputModel=model)
        self._defineSourceRelation(self.inputCoordinates, model)

    def loadSummary(self):
        if not os.path.exists(self._summaryFile()):
            return {}
        with open(self._summaryFile()) as fh:
            return json.load(fh)

    # --------------------------- INFO ----------------------------------------
    def _validate(self):
        errors = self._validateGpus()
        if not self.particleDiameter.get() or self.particleDiameter.get() <= 0:
            errors.append("Give the particle diameter in Å (a positive number).")
        mics = self.getInputMicrographs()
        if mics is not None and not mics.getSamplingRate():
            errors.append("The micrographs have no sampling rate (Å/pixel): set it when importing.")
        coords = self.inputCoordinates.get()
        if coords is not None and coords.getSize() == 0:
            errors.append("The picked particles set is empty.")
        if self.startFrom.get() == MODEL_TRAINED and self.inputModel.get() is None:
            errors.append("Choose the picker to continue from.")
        return errors

    def _warnings(self):
        coords = self.inputCoordinates.get()
        if coords is not None and self.startFrom.get() == 2 and coords.getSize() < 500:
            return ["Only %d picks to train from scratch: starting from the shipped general model works "
                    "better with few picks." % coords.getSize()]
        return []

    def _summary(self):
        if not self.threshold.hasValue():
            return ["Picker not trained yet."]
        return ["Trained on %d particles from %d micrographs; threshold (max F2 on held-out data) %.3f"
                % (self.particlesUsed.get(), self.micrographsUsed.get(), self.threshold.get())]

    def _methods(self):
        if not self.threshold.hasValue():
            return []
        return ["A DeepEM particle picker [Zhu2017] was trained (DeepQs plugin %s) on %d manually picked "
                "particles from %d micrographs (particle diameter %g Å); the picking threshold %.3f "
                "maximised the F2 score on held-out micrographs." % (
                    __version__, self.particlesUsed.get(), self.micrographsUsed.get(),
                    self.particleDiameter.get(), self.threshold.get())]

    def _citations(self):
        return ["Zhu2017"]


class ProtDeepEMPick(ProtParticlePickingAuto, DeepQsProtocol):
    """Pick particles with a DeepEM picker (the shipped general model or one you trained).

    Every micrograph is scored in one fully convolutional pass (average of 4 rotations), local
    maxima closer than the particle radius are suppressed, a window standard-deviation range
    rejects carbon and contamination and a threshold keeps the picks.  Works in streaming: new
    micrographs are picked as they arrive; several run in parallel with threads."""

    _label = "deepem pick"
    stepsExecutionMode = STEPS_PARALLEL

    def _defineParams(self, form):
        DeepQsProtocol._defineGpuParams(form, "Pick on a GPU (CUDA).")
        ProtParticlePickingAuto._defineParams(self, form)
        _defineDiameterParam(form)
        form.addParam("modelSource", params.EnumParam, choices=["shipped general model", "trained picker", "file"],
                      default=MODEL_SHIPPED, display=params.EnumParam.DISPLAY_HLIST, label="Picker",
                      help="The general model shipped with the plugin works on many samples; a picker "
                           "trained on your data ('deepem train picker') is better.")
        form.addParam("inputModel", params.PointerParam, pointerClass="EMFile", allowsNull=True,
                      condition="modelSource == %d" % MODEL_TRAINED, label="Trained picker",
                      help="The output of a 'deepem train picker' run.")
        form.addParam("modelFile", params.FileParam, default="", condition="modelSource == %d" % MODEL_FILE,
                      label="Picker file", help="A picker .pt file (e.g. from 'deepqs pick train').")
        form.addParam("autoThreshold", params.BooleanParam, default=True, label="Automatic threshold",
                      help="Yes: the threshold stored with the picker (max F2 on its held-out data).")
        form.addParam("threshold", params.FloatParam, default=0.5, condition="not autoThreshold",
                      label="Threshold (0-1)", help="Minimum score of a pick; higher = fewer, surer picks.")
        form.addParam("stdFilter", params.EnumParam, choices=["learned range", "off", "range"], default=STD_MODEL,
                      display=params.EnumParam.DISPLAY_HLIST, expertLevel=params.LEVEL_ADVANCED,
                      label="Standard-deviation filter",
                      help="Rejects windows whose standard deviation is outside the range of particles "
                           "(carbon, ice, contamination).  Learned: the range stored with the picker.")
        form.addParam("stdLow", params.FloatParam, default=0.5, condition="stdFilter == %d" % STD_RANGE,
                      expertLevel=params.LEVEL_ADVANCED, label="Lowest std (relative)",
                      help="Windows whose standard deviation, relative to the micrograph's, is below this "
                           "are rejected (empty ice).")
        form.addParam("stdHigh", params.FloatParam, default=2.0, condition="stdFilter == %d" % STD_RANGE,
                      expertLevel=params.LEVEL_ADVANCED, label="Highest std (relative)",
                      help="Windows whose relative standard deviation is above this are rejected (carbon "
                           "edges, ice crystals, aggregates).")
        form.addParam("boxFactor", params.FloatParam, default=1.5, expertLevel=params.LEVEL_ADVANCED,
                      label="Box size (diameters)", help="Box size of the output coordinates, in particle diameters.")
        form.addParam("inputTruth", params.PointerParam, pointerClass="SetOfCoordinates", allowsNull=True,
                      expertLevel=params.LEVEL_ADVANCED, label="Known particles (evaluation, optional)",
                      help="Particles known on these micrographs (e.g. picked by hand): when given, the picks "
                           "are evaluated against them at the end (precision, recall, F1, F2, average "
                           "precision at 0.5 and 1 particle radius; precision-recall curve).")
        self._defineStreamingParams(form)
        form.addParallelSection(threads=1, mpi=0)

    # --------------------------- STEPS ---------------------------------------
    def _coordsDir(self):
        return self._getExtraPath("coords")

    def getCoordsDir(self):
        return self._coordsDir()

    def _modelPath(self):
        if self.modelSource.get() == MODEL_TRAINED and self.inputModel.get() is not None:
            return os.path.abspath(self.inputModel.get().getFileName())
        if self.modelSource.get() == MODEL_FILE and self.modelFile.get():
            return os.path.abspath(self.modelFile.get())
        return None

    def _pickMicrograph(self, mic, *args):
        self._pickMicrographList([mic], *args)

    def _pickMicrographList(self, micList, *args):
        if not micList:
            return
        pwutils.makePath(self._coordsDir())
        summary = self._getExtraPath("summaries", "pick_%06d.json" % micList[0].getObjId())
        pwutils.makeFilePath(summary)
        args = ["pick", "run", "--micrographs"] + [shlex.quote(os.path.abspath(m.getFileName())) for m in micList]
        args += ["--diameter", "%g" % self.particleDiameter.get(),
                 "--pixel-size", "%g" % self.getInputMicrographs().getSamplingRate(),
                 "--out-dir", shlex.quote(self._coordsDir()), "--format", "csv",
                 "--threshold", "auto" if self.autoThreshold.get() else "%g" % self.threshold.get(),
                 "--std-range", ["model", "off", "%g,%g" % (self.stdLow.get(), self.stdHigh.get())][self.stdFilter.get()],
                 "--threads", "1", "--json", shlex.quote(summary)]
        if self._modelPath():
            args += ["--model", shlex.quote(self._modelPath())]
        args += ["--device", "cuda:%(GPU)s" if self.usesGpu() else "cpu"]
        self.runEngine(args, expected=[summary])

    def boxSize(self):
        return int(round(self.boxFactor.get() * self.particleDiameter.get() / self.getInputMicrographs().getSamplingRate()))

    def readCoordsFromMics(self, outputDir, micDoneList, outputCoords):
        outputCoords.setBoxSize(self.boxSize())
        for mic in micDoneList:
            fn = os.path.join(self._coordsDir(), micStem(mic) + ".csv")
            if not os.path.exists(fn):
                self.warning("No picks file for micrograph %s (%s)" % (mic.getMicName(), fn))
                continue
            with open(fn, newline="") as fh:
                for row in csv.DictReader(fh):
                    coord = Coordinate()
                    coord.setMicrograph(mic)
                    coord.setPosition(int(round(float(row["x"]))), int(round(float(row["y"]))))
                    setattr(coord, SCORE_ATTR, Float(float(row["score"])))
                    outputCoords.append(coord)

    def createOutputStep(self):
        if self.inputTruth.get() is not None:
            self.evaluate()

    def evaluationFile(self):
        return self._getExtraPath("evaluation.json")

    def prCurveFile(self):
        return self._getExtraPath("pr_curve.png")

    def evaluate(self):
        """Evaluate the picks against the known particles with ``deepqs pick eval``."""
        folder = self._getExtraPath("truth")
        pwutils.makePath(folder)
        rows = {}
        for coord in self.inputTruth.get().iterCoordinates():
            rows.setdefault(coord.getMicId(), []).append((coord.getX(), coord.getY()))
        truth, picks = [], []
        for mic in self.getInputMicrographs():
            fn = os.path.join(folder, micStem(mic) + ".csv")
            with open(fn, "w") as fh:
                fh.write("x,y\n" + "".join("%d,%d\n" % xy for xy in rows.get(mic.getObjId(), [])))
            truth.append(fn)
            pick = os.path.join(self._coordsDir(), micStem(mic) + ".csv")
            if os.path.exists(pick):
                picks.append(pick)
        if not picks:
            self.warning("No picks to evaluate.")
            return
        args = ["pick", "eval", "--picks"] + [shlex.quote(p) for p in picks] + ["--truth"] + \
            [shlex.quote(t) for t in truth] + ["--diameter", "%g" % self.particleDiameter.get(),
                                               "--pixel-size", "%g" % self.getInputMicrographs().getSamplingRate(),
                                               "--pr-curve", shlex.quote(self.prCurveFile()),
                                               "--json", shlex.quote(self.evaluationFile())]
        self.runEngine(args, expected=[self.evaluationFile()])

    def loadEvaluation(self):
        if not os.path.exists(self.evaluationFile()):
            return None
        with open(self.evaluationFile()) as fh:
            return json.load(fh)

    def pickSummaries(self):
        """The engine's per-batch summaries (one JSON per picking step)."""
        folder = self._getExtraPath("summaries")
        if not os.path.isdir(folder):
            return []
        out = []
        for fn in sorted(os.listdir(folder)):
            with open(os.path.join(folder, fn)) as fh:
                out.append(json.load(fh))
        return out

    # --------------------------- INFO ----------------------------------------
    def _validate(self):
        errors = self._validateGpus()
        if not self.particleDiameter.get() or self.particleDiameter.get() <= 0:
            errors.append("Give the particle diameter in Å (a positive number).")
        mics = self.getInputMicrographs()
        if mics is not None and not mics.getSamplingRate():
            errors.append("The micrographs have no sampling rate (Å/pixel): set it when importing.")
        if self.modelSource.get() == MODEL_TRAINED and self.inputModel.get() is None:
            errors.append("Choose the trained picker.")
        if self.modelSource.get() == MODEL_FILE and not os.path.exists(self.modelFile.get() or ""):
            errors.append("The picker file %s does not exist." % self.modelFile.get())
        return errors

    def _warnings(self):
        mics = self.getInputMicrographs()
        if mics is None or not mics.getSamplingRate() or not self.particleDiameter.get():
            return []
        px = self.particleDiameter.get() / mics.getSamplingRate()
        if px < 16:
            return ["The particle is only %.0f pixels across: too small to pick reliably; check the diameter "
                    "(Å) and the micrographs' pixel size." % px]
        if px > 800:
            return ["The particle is %.0f pixels across: check the diameter (Å) and the micrographs' pixel "
                    "size (micrographs are downsampled so that a particle is about 24 pixels)." % px]
        return []

    def _summary(self):
        coords = getattr(self, "outputCoordinates", None)
        if coords is None:
            return ["No particles picked yet."]
        s = self.pickSummaries()
        dropped = sum(x.get("micrographs_dropped", 0) for x in s)
        lines = ["%d particles picked on %d micrographs (box %d px)"
                 % (coords.getSize(), sum(x.get("micrographs", 0) for x in s), coords.getBoxSize())]
        if s:
            lines.append("Threshold %.3f" % s[0]["threshold"])
        if dropped:
            lines.append("WARNING: %d micrographs could not be picked (see the log)" % dropped)
        ev = self.loadEvaluation()
        if ev:
            for key in ("0.5x_radius", "1x_radius"):
                e = ev[key]
                lines.append("Against the known particles (%s): precision %.3f, recall %.3f, F1 %.3f, F2 %.3f, AP %.3f"
                             % (key.replace("_", " "), e["precision"], e["recall"], e["f1"], e["f2"],
                                e["average_precision"]))
        return lines

    def _methods(self):
        coords = getattr(self, "outputCoordinates", None)
        if coords is None:
            return []
        return ["Particles were picked with DeepEM [Zhu2017] (DeepQs plugin %s, %s, particle diameter %g Å): "
                "%d particles." % (__version__, ["the shipped general model", "a picker trained on these data",
                                                 "a user-supplied picker"][self.modelSource.get()],
                                   self.particleDiameter.get(), coords.getSize())]

    def _citations(self):
        return ["Zhu2017"]


class ProtDeepQsImportCoordinates(ProtParticlePicking, DeepQsProtocol):
    """Import particle coordinates from EMAN2 .box, RELION .star, Topaz .txt, cryoSPARC .cs or CSV
    (x,y centres) files, matched to the micrographs by file name, without needing the EMAN2,
    RELION or cryoSPARC plugins.  Coordinates are centres in pixels of the micrographs
    (x = column, y = row); .box corners are converted to centres."""

    _label = "import coordinates (deepqs)"

    def _defineParams(self, form):
        ProtParticlePicking._defineParams(self, form)
        form.addParam("filesPath", params.PathParam, important=True, label="Folder of coordinate files",
                      help="Folder holding one file per micrograph (named like the micrograph), or files "
                           "that name their micrographs (.star with _rlnMicrographName, Topaz, .cs).")
        form.addParam("filesPattern", params.StringParam, default="*", label="Pattern",
                      help="Glob pattern of the files inside the folder, e.g. '*.box'.")
        form.addParam("boxSize", params.IntParam, default=0, label="Box size (pixels)",
                      help="Box size of the output set; 0: from the .box files, else 100.")
        form.addParam("flipY", params.BooleanParam, default=False, expertLevel=params.LEVEL_ADVANCED,
                      label="Flip y", help="y -> height - 1 - y (files written with the origin at the bottom).")

    def _insertAllSteps(self):
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _files(self):
        import glob
        return sorted(glob.glob(os.path.join(self.filesPath.get() or "", self.filesPattern.get() or "*")))

    def createOutputStep(self):
        from deepqs.io.coords import micrograph_key, read_coordinates_by_micrograph

        mics = {micStem(m): m.clone() for m in self.getInputMicrographs()}
        coordSet = self._createSetOfCoordinates(self.getInputMicrographs())
        box, unmatched, n = self.boxSize.get() or None, [], 0
        for fn in self._files():
            heights = None
            if self.flipY.get():
                heights = {k: m.getDim()[1] for k, m in mics.items()}
            for name, coords in read_coordinates_by_micrograph(fn, flip_y=self.flipY.get(),
                                                               micrograph_height=heights).items():
                mic = mics.get(micrograph_key(name))
                if mic is None:
                    unmatched.append(name)
                    continue
                box = box or (int(round(coords.box_size)) if coords.box_size else None)
                for i in range(len(coords)):
                    coord = Coordinate()
                    coord.setMicrograph(mic)
                    coord.setPosition(int(round(coords.x[i])), int(round(coords.y[i])))
                    if coords.score is not None:
                        setattr(coord, SCORE_ATTR, Float(float(coords.score[i])))
                    coordSet.append(coord)
                    n += 1
        if unmatched:
            self.warning("%d coordinate groups match no micrograph and were skipped: %s"
                         % (len(unmatched), ", ".join(unmatched[:10])))
        coordSet.setBoxSize(box or 100)
        self.unmatched = Integer(len(unmatched))
        self._defineOutputs(outputCoordinates=coordSet)
        self._defineSourceRelation(self.inputMicrographs, coordSet)

    def _validate(self):
        if not self._files():
            return ["No file matches %s in %s." % (self.filesPattern.get(), self.filesPath.get())]
        return []

    def _warnings(self):
        if not self.boxSize.get() and not any(f.lower().endswith(".box") for f in self._files()):
            return ["The files record no box size: the output gets 100 pixels; give the box size."]
        return []

    def _summary(self):
        coords = getattr(self, "outputCoordinates", None)
        if coords is None:
            return ["Nothing imported yet."]
        lines = ["%d coordinates imported from %d files (box %d px)"
                 % (coords.getSize(), len(self._files()), coords.getBoxSize())]
        if getattr(self, "unmatched", None) is not None and self.unmatched.get():
            lines.append("WARNING: %d groups matched no micrograph (see the log)" % self.unmatched.get())
        return lines

    def _methods(self):
        return []

    def _citations(self):
        return []
