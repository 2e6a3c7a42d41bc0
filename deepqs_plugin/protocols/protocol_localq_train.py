"""DeepQs training: network weights for local-Q prediction, from simulated maps or real map/model pairs."""

import json
import os
import shlex

import pyworkflow.protocol.params as params
from pwem.objects import EMFile
from pyworkflow.object import Float, Integer
from pyworkflow.protocol.constants import STEPS_SERIAL

from deepqs_plugin import __version__
from deepqs_plugin.protocols.protocol_base import DeepQsProtocol, volumeFile

DATA_SIMULATED, DATA_PAIRS = 0, 1


class ProtDeepQsTrain(DeepQsProtocol):
    """Train DeepQs weights (the 3D network that predicts local Q-scores from a map alone).

    Training data are either maps the engine simulates from atomic models (experimental-looking:
    2-8 Å, B-factors, local blurring, partial density, coloured noise, masks, sharpening), or
    your own maps with their fitted models.  Labels are the exact Q-scores (σ 0.6 Å) of each
    model in its map: every voxel within 1.5 Å of an atom carries that atom's Q.  The output
    weights file is accepted by 'deepqs local quality' (input 'Trained weights')."""

    _label = "deepqs train local quality"
    _possibleOutputs = {"outputWeights": EMFile}
    stepsExecutionMode = STEPS_SERIAL

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bestEpoch = Integer()
        self.valLoss = Float()
        self.valPearson = Float()

    # --------------------------- DEFINE param functions ----------------------
    def _defineParams(self, form):
        self._defineGpuParams(form, "Train on a GPU (CUDA); the CPU is slow for training.")
        form.addSection(label="Training data")
        form.addParam("dataSource", params.EnumParam, choices=["simulated maps", "my maps and models"],
                      default=DATA_SIMULATED, display=params.EnumParam.DISPLAY_HLIST, label="Train on",
                      help="Simulated: maps made by the engine from atomic models (a folder of models, "
                           "or the models of the project's shared data, or procedural proteins). "
                           "Mine: maps with a fitted model each; labels come from the model's Q-scores.")
        form.addParam("examples", params.IntParam, default=160, condition="dataSource == %d" % DATA_SIMULATED,
                      validators=[params.Positive], label="Examples per epoch",
                      help="Simulated training crops per epoch.")
        form.addParam("structuresFolder", params.FolderParam, default="", condition="dataSource == %d" % DATA_SIMULATED,
                      expertLevel=params.LEVEL_ADVANCED, label="Folder of models (optional)",
                      help="Folder with index.csv listing model files to simulate from.  Empty: the "
                           "project's shared structures when installed, otherwise procedural proteins.")
        form.addParam("inputVolumes", params.MultiPointerParam, pointerClass="Volume", allowsNull=True,
                      condition="dataSource == %d" % DATA_PAIRS, label="Maps",
                      help="Maps to train on (any voxel size: resampled to 1 Å/voxel).  The map file "
                           "header's voxel size and origin are used, so the models must fit the file.")
        form.addParam("inputStructures", params.MultiPointerParam, pointerClass="AtomStruct", allowsNull=True,
                      condition="dataSource == %d" % DATA_PAIRS, label="Models (same order as the maps)",
                      help="One fitted atomic model per map, in the same order.")
        form.addParam("pairExamples", params.IntParam, default=64, condition="dataSource == %d" % DATA_PAIRS,
                      validators=[params.Positive], label="Crops per epoch",
                      help="Random crops (centred on atoms) drawn from the maps each epoch.")
        form.addSection(label="Training")
        form.addParam("epochs", params.IntParam, default=10, validators=[params.Positive], label="Epochs",
                      help="Passes over the training examples; the best validation epoch is kept.")
        form.addParam("validation", params.IntParam, default=16, validators=[params.Positive],
                      label="Validation examples",
                      help="Examples from held-out models; the weights of the best validation epoch are kept.")
        form.addParam("crop", params.IntParam, default=48, validators=[params.Positive],
                      label="Crop edge (voxels of 1 Å)", expertLevel=params.LEVEL_ADVANCED,
                      help="Edge of the training crops.  Must be divisible by 2^depth.")
        form.addParam("batch", params.IntParam, default=4, validators=[params.Positive],
                      label="Batch size", expertLevel=params.LEVEL_ADVANCED,
                      help="Crops per optimisation step; lower it if the GPU runs out of memory.")
        form.addParam("learningRate", params.FloatParam, default=1e-3, validators=[params.Positive],
                      label="Learning rate", expertLevel=params.LEVEL_ADVANCED, help="Adam learning rate.")
        form.addParam("base", params.IntParam, default=8, validators=[params.Positive],
                      label="Channels of the first level", expertLevel=params.LEVEL_ADVANCED,
                      help="Network width (the shipped weights use 8).")
        form.addParam("depth", params.IntParam, default=3, validators=[params.Positive],
                      label="Down-sampling levels", expertLevel=params.LEVEL_ADVANCED,
                      help="Network depth (the shipped weights use 3).")
        form.addParam("seed", params.IntParam, default=0, label="Random seed", expertLevel=params.LEVEL_ADVANCED,
                      help="Same seed and data: same weights (on the CPU).")
        form.addParallelSection(threads=1, mpi=0)

    # --------------------------- INSERT steps functions ----------------------
    def _insertAllSteps(self):
        if self.dataSource.get() == DATA_PAIRS:
            self._insertFunctionStep(self.writePairsStep, needsGPU=False)
        self._insertFunctionStep(self.trainStep)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _weights(self):
        return self._getExtraPath("localq_weights.pt")

    def _pairsFile(self):
        return self._getExtraPath("pairs.csv")

    def _pairs(self):
        vols = [p.get() for p in self.inputVolumes]
        models = [p.get() for p in self.inputStructures]
        return list(zip(vols, models))

    def writePairsStep(self):
        lines = ["map,model"]
        for vol, model in self._pairs():
            lines.append("%s,%s" % (os.path.abspath(volumeFile(vol)), os.path.abspath(model.getFileName())))
        with open(self._pairsFile(), "w") as fh:
            fh.write("\n".join(lines) + "\n")

    def trainStep(self):
        args = ["localq", "train", "--out", shlex.quote(self._weights())]
        if self.dataSource.get() == DATA_PAIRS:
            args += ["--pairs", shlex.quote(self._pairsFile())]
            args += ["--examples", str(self.pairExamples.get())]
        else:
            args += ["--simulate", str(self.examples.get())]
            if self.structuresFolder.get():
                args += ["--structures", shlex.quote(os.path.abspath(self.structuresFolder.get()))]
        args += ["--epochs", str(self.epochs.get()), "--val", str(self.validation.get()),
                 "--crop", str(self.crop.get()), "--batch", str(self.batch.get()),
                 "--lr", "%g" % self.learningRate.get(), "--base", str(self.base.get()),
                 "--depth", str(self.depth.get()), "--seed", str(self.seed.get()),
                 "--threads", str(max(1, self.numberOfThreads.get()))]
        args += ["--device", "cuda:%(GPU)s" if self.usesGpu() else "cpu"]
        self.runEngine(args, expected=[self._weights()])

    def createOutputStep(self):
        report = self.loadReport()
        last = len(report.get("epochs", [])) - 1
        self.bestEpoch.set(report.get("best_epoch"))
        if last >= 0:
            self.valLoss.set(min(report["val_loss"]))
            self.valPearson.set(report["val_pearson"][report["epochs"].index(report["best_epoch"])]
                                if report.get("best_epoch") in report["epochs"] else report["val_pearson"][last])
        self._store()
        weights = EMFile(filename=self._weights())
        self._defineOutputs(outputWeights=weights)
        if self.dataSource.get() == DATA_PAIRS:
            for p in list(self.inputVolumes) + list(self.inputStructures):
                self._defineSourceRelation(p, weights)

    def loadReport(self):
        path = os.path.splitext(self._weights())[0] + "_report.json"
        if not os.path.exists(path):
            return {}
        with open(path) as fh:
            return json.load(fh)

    def reportImage(self):
        """The loss-curve PNG the engine writes next to the weights."""
        return os.path.splitext(self._weights())[0] + "_report.png"

    # --------------------------- INFO functions ------------------------------
    def _validate(self):
        errors = []
        errors += self._validateGpus()
        if self.dataSource.get() == DATA_PAIRS:
            pairs = self._pairs()
            if not pairs:
                errors.append("Give at least one map and its fitted model.")
            if len(self.inputVolumes) != len(self.inputStructures):
                errors.append("Give as many models as maps (%d maps, %d models): they are paired in order."
                              % (len(self.inputVolumes), len(self.inputStructures)))
            for vol, _ in pairs:
                errors += self._validateVolume(vol)
        elif self.structuresFolder.get() and not os.path.isdir(self.structuresFolder.get()):
            errors.append("The folder of models %s does not exist." % self.structuresFolder.get())
        depth = self.depth.get() or 1
        if self.crop.get() and self.crop.get() % (2 ** depth):
            errors.append("The crop edge (%d) must be divisible by 2^depth = %d." % (self.crop.get(), 2 ** depth))
        return errors

    def _warnings(self):
        if self.usesGpu():
            return []
        return ["Training on the CPU is slow (the shipped weights took about half an hour on 1 core for a "
                "small model); use a GPU for more epochs or larger networks."]

    def _summary(self):
        if not self.bestEpoch.hasValue():
            return ["Weights not trained yet."]
        lines = ["Best validation epoch %d: masked MSE %.4f, voxel Pearson r %.3f"
                 % (self.bestEpoch.get(), self.valLoss.get(), self.valPearson.get())]
        if hasattr(self, "outputWeights"):
            lines.append("Weights: %s (use them in 'deepqs local quality', input 'Trained weights')"
                         % self.outputWeights.getFileName())
        return lines

    def _methods(self):
        if not self.bestEpoch.hasValue():
            return []
        data = ("%d map/model pairs" % len(self._pairs()) if self.dataSource.get() == DATA_PAIRS
                else "simulated maps (%d examples per epoch)" % self.examples.get())
        return ["DeepQs [DeepQs] local-quality network weights were trained (DeepQs plugin %s) on %s for %d "
                "epochs with Q-score labels [Pintilie2020] (sigma 0.6 Å); the best validation epoch (%d) had a "
                "voxel-wise Pearson correlation of %.3f with the true Q." % (
                    __version__, data, self.epochs.get(), self.bestEpoch.get(), self.valPearson.get())]

    def _citations(self):
        return ["DeepQs", "Pintilie2020"]
