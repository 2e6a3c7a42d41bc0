"""Map statistics: the first DeepQs protocol, a check that a map is what the user thinks it is."""

import shlex

import pyworkflow.protocol.params as params
from pyworkflow.protocol.constants import STEPS_SERIAL

from deepqs_plugin import __version__
from deepqs_plugin.constants import MAP_HISTOGRAM_PNG, MAP_STATS_JSON, ORIGIN_FROM_SCIPION
from deepqs_plugin.objects import MapStatistics
from deepqs_plugin.protocols.protocol_base import DeepQsProtocol


class ProtDeepQsMapStats(DeepQsProtocol):
    """Report a map's grid (voxel size, box, origin) and value statistics with a histogram.

    Use it to check a map before quality analysis: a wrong voxel size or origin, NaN voxels
    or an all-zero map are caught here with a clear message.
    """

    _label = "map statistics"
    _possibleOutputs = {"mapStats": MapStatistics}
    stepsExecutionMode = STEPS_SERIAL

    # --------------------------- DEFINE param functions ----------------------
    def _defineParams(self, form):
        form.addSection(label="Input")
        form.addParam("inputVolume", params.PointerParam, pointerClass="Volume",
                      label="Input map", important=True,
                      help="The map (MRC/CCP4) to describe. Its sampling rate (Å/voxel) is "
                           "taken from the Scipion object, which the import protocol asked for.")
        self._defineOriginParam(form)
        form.addParam("bins", params.IntParam, default=100, label="Histogram bins",
                      validators=[params.Range(10, 1000, "between 10 and 1000")],
                      help="Number of bins of the voxel-value histogram.")

    # --------------------------- INSERT steps functions ----------------------
    def _insertAllSteps(self):
        self._insertFunctionStep(self.computeStatsStep, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, needsGPU=False)

    # --------------------------- STEPS functions -----------------------------
    def computeStatsStep(self):
        args = ["info"] + self._mapArgs(self.inputVolume.get()) + [
                "--bins", str(self.bins.get()),
                "--output", shlex.quote(self._getExtraPath(MAP_STATS_JSON)),
                "--histogram", shlex.quote(self._getExtraPath(MAP_HISTOGRAM_PNG))]
        self.runEngine(args, expected=[self._getExtraPath(MAP_STATS_JSON)])

    def createOutputStep(self):
        stats = MapStatistics()
        stats.setJsonFile(self._getExtraPath(MAP_STATS_JSON))
        stats.setHistogramFile(self._getExtraPath(MAP_HISTOGRAM_PNG))
        stats.fillFromSummary(stats.loadJson())
        self._defineOutputs(mapStats=stats)
        self._defineSourceRelation(self.inputVolume, stats)

    # --------------------------- INFO functions ------------------------------
    def _validate(self):
        return self._validateVolume(self.inputVolume.get())

    def _warnings(self):
        warnings = []
        vol = self.inputVolume.get()
        if vol is not None and self.originFrom.get() == ORIGIN_FROM_SCIPION and not vol.hasOrigin():
            warnings.append("The input map has no origin stored in Scipion: the centred default "
                            "(-box/2 × voxel size) will be used.")
        return warnings

    def _summary(self):
        if not hasattr(self, "mapStats"):
            return ["Statistics not computed yet."]
        s = self.mapStats
        return ["Box: %s voxels; voxel size %s Å; origin %s Å" % (s.box.get(), s.voxelSize.get(), s.origin.get()),
                "Values: min %.4g, max %.4g, mean %.4g, std %.4g"
                % (s.minimum.get(), s.maximum.get(), s.mean.get(), s.std.get())]

    def _methods(self):
        if not hasattr(self, "mapStats"):
            return []
        s = self.mapStats
        return ["The map (box %s voxels, %s Å/voxel) was checked with the DeepQs plugin %s: "
                "voxel values ranged from %.4g to %.4g (mean %.4g, standard deviation %.4g)."
                % (s.box.get(), s.voxelSize.get(), __version__, s.minimum.get(), s.maximum.get(),
                   s.mean.get(), s.std.get())]

    def _citations(self):
        return []
