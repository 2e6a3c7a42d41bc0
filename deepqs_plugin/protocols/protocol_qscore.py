"""Q-score (Pintilie et al. 2020): per-atom map–model resolvability, MapQ-exact, headless."""

import json
import os
import shlex

import pyworkflow.protocol.params as params
from pwem.objects import AtomStruct
from pyworkflow.object import Float, Integer
from pyworkflow.protocol.constants import STEPS_SERIAL

from deepqs_plugin import __version__
from deepqs_plugin.protocols.protocol_base import DeepQsProtocol

SIGMAS = [0.6, 0.4]


class ProtDeepQsQScore(DeepQsProtocol):
    """Per-atom Q-scores of an atomic model in a map: how resolvable each atom is.

    Q is the correlation between the map values on shells (0 to 2 Å) around an atom and a
    reference Gaussian; it runs from -1 to 1, higher is better.  The numbers are MapQ's
    (the values EMDB publishes), computed headless.  Outputs the model with a per-atom
    ``_atom_site.Q-score`` column and Scipion attributes, a per-residue table and a summary
    with the resolution the mean Q implies.
    """

    _label = "q-score (map-model fit)"
    _ATTRNAME = "Q-score"
    _OUTNAME = "outputAtomStruct"
    _possibleOutputs = {_OUTNAME: AtomStruct}
    stepsExecutionMode = STEPS_SERIAL

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.meanQ = Float()
        self.meanQEmdb = Float()
        self.impliedResolution = Float()
        self.expectedQ = Float()
        self.atomsScored = Integer()
        self.atomsOutside = Integer()

    # --------------------------- DEFINE param functions ----------------------
    def _defineParams(self, form):
        self._defineGpuParams(form, "Score on a GPU with torch (same algorithm and numbers to 1e-12).  The "
                                    "CPU path is the reference and fast enough for most models.", default=False)
        form.addSection(label="Input")
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume", important=True,
                      label="Map", help="The cryo-EM map (its sampling rate in Å/voxel comes from Scipion).")
        form.addParam("inputStructure", params.PointerParam, pointerClass="AtomStruct", important=True,
                      label="Atomic model", help="PDB or mmCIF model fitted in the map (same frame).")
        form.addParam("sigma", params.EnumParam, choices=["0.6 Å (MapQ command line)", "0.4 Å (EMDB, MapQ GUI)"],
                      default=0, label="Reference Gaussian width (sigma)",
                      help="Width in Å of the reference Gaussian. 0.6 Å is MapQ's command-line default; "
                           "0.4 Å is what EMDB reports. Compare Q-scores only at the same sigma.")
        form.addParam("resolution", params.FloatParam, default=0.0, label="Map resolution (Å)",
                      help="Reported resolution of the map in Å, used for the expected Q at that "
                           "resolution (MapQ's relations). 0: not given.")
        self._defineOriginParam(form)

    # --------------------------- INSERT steps functions ----------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.qscoreStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    # --------------------------- STEPS functions -----------------------------
    def _outModel(self):
        return self._getExtraPath("model_qscore.cif")

    def _outResidues(self):
        return self._getExtraPath("qscore_residues.tsv")

    def _outJson(self):
        return self._getExtraPath("qscore_summary.json")

    def qscoreStep(self):
        args = ["qscore"] + self._mapArgs(self.inputVolume.get()) + [
            shlex.quote(os.path.abspath(self.inputStructure.get().getFileName())),
            "--sigma", "%g" % SIGMAS[self.sigma.get()],
            "--out-model", shlex.quote(self._outModel()),
            "--out-residues", shlex.quote(self._outResidues()),
            "--json", shlex.quote(self._outJson()),
            "--threads", str(max(1, self.numberOfThreads.get() or 1)),
            # %(GPU)s is replaced by Scipion with the GPU assigned to this job (renumbered in queues)
            "--device", "cuda:%(GPU)s" if self.usesGpu() else "cpu"]
        if self.resolution.get() and self.resolution.get() > 0:
            args += ["--resolution", "%g" % self.resolution.get()]
        self.runEngine(args, expected=[self._outModel(), self._outJson()])

    def createOutputStep(self):
        from deepqs_plugin.convert import addScipionAttributes

        addScipionAttributes(self._outModel(), self._ATTRNAME, "Q-score")
        summary = self.loadSummary()
        self.meanQ.set(summary["mean_q"])
        if summary.get("mean_q_no_water") is not None:
            self.meanQEmdb.set(summary["mean_q_no_water"])
        if summary.get("implied_resolution_A") is not None:
            self.impliedResolution.set(summary["implied_resolution_A"])
        if summary.get("expected_q") is not None:
            self.expectedQ.set(summary["expected_q"])
        self.atomsScored.set(summary["atoms"]["scored"])
        self.atomsOutside.set(summary["atoms"]["outside_map"])
        self._store()

        struct = AtomStruct(filename=self._outModel())
        struct.setVolume(self.inputVolume.get())
        self._defineOutputs(**{self._OUTNAME: struct})
        self._defineSourceRelation(self.inputVolume, struct)
        self._defineSourceRelation(self.inputStructure, struct)

    def loadSummary(self) -> dict:
        with open(self._outJson()) as fh:
            return json.load(fh)

    # --------------------------- INFO functions ------------------------------
    def _validate(self):
        errors = self._validateVolume(self.inputVolume.get()) + self._validateGpus()
        struct = self.inputStructure.get()
        if struct is None:
            errors.append("Choose the atomic model.")
        elif not os.path.exists(struct.getFileName()):
            errors.append("The model file %s does not exist." % struct.getFileName())
        if self.resolution.get() is not None and self.resolution.get() < 0:
            errors.append("The resolution must be positive (Å), or 0 when not known.")
        return errors

    def _warnings(self):
        if self.resolution.get() and self.resolution.get() > 6:
            return ["MapQ's Q–resolution relations were fitted on maps better than ~6 Å; the "
                    "expected Q at %.1f Å is an extrapolation." % self.resolution.get()]
        return []

    def _summary(self):
        if not self.meanQ.hasValue():
            return ["Q-scores not computed yet."]
        lines = ["Mean Q: %.4f over %d atoms, sigma %g Å" % (self.meanQ.get(), self.atomsScored.get(),
                                                             SIGMAS[self.sigma.get()])]
        if self.meanQEmdb.hasValue() and abs(self.meanQEmdb.get() - self.meanQ.get()) > 1e-9:
            lines.append("Mean Q without waters (EMDB convention): %.4f" % self.meanQEmdb.get())
        if self.impliedResolution.hasValue():
            lines.append("Resolution implied by the mean Q: %.2f Å" % self.impliedResolution.get())
        if self.expectedQ.hasValue():
            lines.append("Expected Q at %.2f Å: %.4f" % (self.resolution.get(), self.expectedQ.get()))
        if self.atomsOutside.get():
            lines.append("WARNING: %d atoms lie outside the map (scored with 0 outside)." % self.atomsOutside.get())
        return lines

    def _methods(self):
        if not self.meanQ.hasValue():
            return []
        text = ("Map–model fit was measured with Q-scores [Pintilie2020] computed with the DeepQs plugin %s "
                "(MapQ's algorithm, reference Gaussian sigma %g Å): the mean Q over %d non-hydrogen atoms was %.3f"
                % (__version__, SIGMAS[self.sigma.get()], self.atomsScored.get(), self.meanQ.get()))
        if self.impliedResolution.hasValue():
            text += ", which corresponds to a resolution of about %.1f Å" % self.impliedResolution.get()
        return [text + "."]

    def _citations(self):
        return ["Pintilie2020"]
