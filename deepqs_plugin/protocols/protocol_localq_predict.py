"""DeepQs prediction: local Q-score (and local resolution) maps from the density alone."""

import json
import os
import shlex

import pyworkflow.protocol.params as params
from pwem.objects import Volume
from pyworkflow.object import Float
from pyworkflow.protocol.constants import STEPS_SERIAL

from deepqs_plugin import __version__
from deepqs_plugin.protocols.protocol_base import DeepQsProtocol, volumeFile

MASK_AUTO, MASK_THRESHOLD, MASK_VOLUME = 0, 1, 2


class ProtDeepQsPredict(DeepQsProtocol):
    """Predict, for every voxel inside the molecule, the Q-score an atom there would get
    (DeepQs, a 3D CNN; no atomic model needed), and the local resolution it implies
    (R = -3.816·Q + 5.679 Å).  Runs on a GPU when one is given, on the CPU otherwise."""

    _label = "deepqs local quality"
    _possibleOutputs = {"localQ": Volume, "localResolution": Volume}
    stepsExecutionMode = STEPS_SERIAL

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.medianQ = Float()
        self.medianResolution = Float()
        self.pearsonResidue = Float()
        self.medianTrueQ = Float()

    # --------------------------- DEFINE param functions ----------------------
    def _defineParams(self, form):
        self._defineGpuParams(form, "Run the network on a GPU (CUDA).")
        form.addSection(label="Input")
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume", important=True,
                      label="Map", help="The cryo-EM map (any voxel size; predicted at 1 Å/voxel and "
                                        "resampled back onto this grid).")
        form.addParam("maskMode", params.EnumParam, choices=["automatic threshold", "threshold", "mask"],
                      default=MASK_AUTO, display=params.EnumParam.DISPLAY_HLIST, label="Molecular mask",
                      help="Voxels outside the molecular mask are 0 in the outputs. Automatic: map > "
                           "median + 3 noise sigma.")
        form.addParam("threshold", params.FloatParam, default=0.0, condition="maskMode == %d" % MASK_THRESHOLD,
                      label="Threshold (map units)", help="Mask = map > threshold.")
        form.addParam("inputMask", params.PointerParam, pointerClass="VolumeMask",
                      condition="maskMode == %d" % MASK_VOLUME, label="Mask",
                      help="A mask on the same grid as the map (> 0.5 inside).")
        form.addParam("inputStructure", params.PointerParam, pointerClass="AtomStruct", allowsNull=True,
                      label="Compare with a model (optional)",
                      help="An atomic model fitted to the map: its true Q-scores (σ 0.6 Å) are computed and "
                           "compared with the prediction per residue (table, scatter plot, Pearson r).")
        form.addParam("inputWeights", params.PointerParam, pointerClass="EMFile", allowsNull=True,
                      label="Trained weights (optional)",
                      help="Weights from 'deepqs train local quality'.  Empty: the weights shipped with the plugin.")
        form.addParam("weightsFile", params.FileParam, default="", expertLevel=params.LEVEL_ADVANCED,
                      label="Weights file", help="A weights file on disk instead (e.g. a facility's model). "
                                                 "Empty: the trained weights above, or the shipped ones.")
        form.addParam("batch", params.IntParam, default=2, expertLevel=params.LEVEL_ADVANCED,
                      label="Tiles per batch", help="Lower it if the GPU runs out of memory.")
        form.addParam("tile", params.IntParam, default=0, expertLevel=params.LEVEL_ADVANCED,
                      label="Tile edge (voxels of 1 Å)",
                      help="Whole maps are predicted in overlapping tiles.  0: automatic (64 for maps up to "
                           "96 Å across, else 96).")
        self._defineOriginParam(form)

    # --------------------------- INSERT steps functions ----------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.predictStep)
        if self.inputStructure.get() is not None:
            self._insertFunctionStep(self.compareStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    def _out(self, name):
        return self._getExtraPath(name)

    def predictStep(self):
        args = ["localq", "predict"] + self._mapArgs(self.inputVolume.get()) + [
            "--out", shlex.quote(self._out("localq.mrc")),
            "--out-resolution", shlex.quote(self._out("local_resolution.mrc")),
            "--json", shlex.quote(self._out("localq_summary.json")),
            "--figures", shlex.quote(self._out("figures")),
            "--batch", str(self.batch.get())] + (["--tile", str(self.tile.get())] if self.tile.get() else [])
        if self.maskMode.get() == MASK_THRESHOLD:
            args.append("--threshold=%g" % self.threshold.get())
        elif self.maskMode.get() == MASK_VOLUME:
            args += ["--mask", shlex.quote(os.path.abspath(volumeFile(self.inputMask.get())))]
        if self.weightsPath():
            args += ["--weights", shlex.quote(os.path.abspath(self.weightsPath()))]
        # %(GPU)s is replaced by Scipion with the GPU assigned to this job (renumbered in queues).
        args += ["--device", "cuda:%(GPU)s" if self.usesGpu() else "cpu"]
        self.runEngine(args, expected=[self._out("localq.mrc"), self._out("localq_summary.json")])

    def weightsPath(self):
        """The weights to use: a file given explicitly, the trained weights, or None (shipped)."""
        if self.weightsFile.get():
            return self.weightsFile.get()
        if self.inputWeights.get() is not None:
            return self.inputWeights.get().getFileName()
        return None

    def compareStep(self):
        args = ["localq", "compare"] + self._mapArgs(self.inputVolume.get()) + [
            shlex.quote(os.path.abspath(self._out("localq.mrc"))),
            shlex.quote(os.path.abspath(self.inputStructure.get().getFileName())),
            "--out-residues", shlex.quote(self._out("compare_residues.csv")),
            "--plot", shlex.quote(self._out("figures/pred_vs_true.png")),
            "--json", shlex.quote(self._out("compare_summary.json"))]
        self.runEngine(args, expected=[self._out("compare_summary.json")])

    def loadComparison(self):
        """The prediction-vs-model figures (dict), or None when no model was given."""
        path = self._out("compare_summary.json")
        if not os.path.exists(path):
            return None
        with open(path) as fh:
            return json.load(fh)

    def createOutputStep(self):
        vol = self.inputVolume.get()
        summary = self.loadSummary()
        self.medianQ.set(summary["median_q"])
        self.medianResolution.set(summary["resolution_from_median_A"])
        comparison = self.loadComparison()
        if comparison is not None:
            self.pearsonResidue.set(comparison["pearson_residue"])
            self.medianTrueQ.set(comparison["median_true_q"])
        self._store()
        outputs = {}
        for name, fn in (("localQ", "localq.mrc"), ("localResolution", "local_resolution.mrc")):
            out = Volume(location=self._out(fn))
            out.setSamplingRate(vol.getSamplingRate())
            out.setOrigin(vol.getOrigin(force=True))
            outputs[name] = out
        self._defineOutputs(**outputs)
        for out in outputs.values():
            self._defineSourceRelation(self.inputVolume, out)

    def loadSummary(self):
        with open(self._out("localq_summary.json")) as fh:
            return json.load(fh)

    # --------------------------- INFO functions ------------------------------
    def _validate(self):
        errors = self._validateVolume(self.inputVolume.get())
        errors += self._validateGpus()
        if self.maskMode.get() == MASK_VOLUME:
            errors += self._validateVolume(self.inputMask.get(), "mask")
        if self.weightsFile.get() and not os.path.exists(self.weightsFile.get()):
            errors.append("The weights file %s does not exist." % self.weightsFile.get())
        model = self.inputStructure.get()
        if model is not None and not os.path.exists(model.getFileName()):
            errors.append("The model file %s does not exist." % model.getFileName())
        return errors

    def _warnings(self):
        vol = self.inputVolume.get()
        if vol is not None and vol.getSamplingRate() and vol.getSamplingRate() > 4:
            return ["The voxel size (%.2f Å) is above 4 Å, outside the range DeepQs was trained on."
                    % vol.getSamplingRate()]
        return []

    def _summary(self):
        if not self.medianQ.hasValue():
            return ["Local quality not predicted yet."]
        lines = ["Median local Q inside the mask: %.3f -> resolution %.2f Å (R = -3.816 Q + 5.679)"
                 % (self.medianQ.get(), self.medianResolution.get())]
        if self.pearsonResidue.hasValue():
            lines.append("Against the model: per-residue Pearson r %.3f; median Q of its atoms %.3f (true)"
                         % (self.pearsonResidue.get(), self.medianTrueQ.get()))
        lines += ["WARNING: %s" % w for w in self.loadSummary().get("warnings", [])]
        return lines

    def _methods(self):
        if not self.medianQ.hasValue():
            return []
        return ["Local map quality was estimated without an atomic model with DeepQs [DeepQs] (DeepQs plugin %s): "
                "the median predicted local Q-score inside the molecular mask was %.3f, corresponding to a "
                "resolution of about %.1f Å." % (__version__, self.medianQ.get(), self.medianResolution.get())]

    def _citations(self):
        return ["DeepQs", "Pintilie2020"]
