"""Viewer of the map-statistics protocol: the voxel-value histogram with mean and mean + 3σ."""

import numpy as np
from pwem.viewers.plotter import EmPlotter
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO, Viewer

from deepqs_plugin.objects import MapStatistics
from deepqs_plugin.protocols import ProtDeepQsMapStats


class DeepQsMapStatsViewer(Viewer):
    """Plot the histogram of a map's voxel values (log scale) with its summary figures."""

    _label = "map statistics viewer"
    _targets = [ProtDeepQsMapStats, MapStatistics]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _visualize(self, obj, **kwargs):
        stats = obj.mapStats if isinstance(obj, ProtDeepQsMapStats) else obj
        return [self.histogramPlotter(stats.loadJson())]

    @staticmethod
    def histogramPlotter(summary: dict) -> EmPlotter:
        """An EmPlotter with the histogram of a ``deepqs info`` map summary."""
        plotter = EmPlotter(x=1, y=1, windowTitle="Map statistics", figsize=(7, 4.5))
        ax = plotter.createSubPlot("Voxel values (box %s, %s Å/voxel)"
                                   % ("×".join(str(v) for v in summary["grid_size_xyz"]),
                                      ", ".join("%g" % v for v in summary["voxel_size_A"])),
                                   "voxel value", "voxels")
        counts = np.asarray(summary["histogram"]["counts"], dtype=float)
        edges = np.asarray(summary["histogram"]["edges"], dtype=float)
        ax.stairs(counts, edges, fill=True, color="#4a7ab5", alpha=0.85)
        if counts.any():
            ax.set_yscale("log")
        mean, std = summary["mean"], summary["std"]
        ax.axvline(mean, color="C1", linestyle="--", label="mean = %.4g" % mean)
        ax.axvline(mean + 3 * std, color="C2", linestyle="--", label="mean + 3σ = %.4g" % (mean + 3 * std))
        ax.legend(frameon=False, fontsize=8)
        return plotter
