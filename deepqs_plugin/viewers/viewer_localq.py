"""Viewers of the DeepQs protocols: local-Q slices, histogram, ChimeraX colouring, prediction vs
model, and training curves."""

import csv
import os
import shutil
import subprocess

import numpy as np
import pyworkflow.protocol.params as params
from pwem.viewers.plotter import EmPlotter
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO, ProtocolViewer

from deepqs.plots import draw_localq_slices, draw_pred_vs_true, draw_score_histogram
from deepqs_plugin.protocols import ProtDeepQsPredict, ProtDeepQsTrain
from deepqs_plugin.protocols.protocol_base import volumeFile


def readComparison(path):
    """The engine's per-residue comparison CSV as arrays ``q_true``, ``q_pred`` (and ``resseq``, ``chain``)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {"chain": np.array([r["chain"] for r in rows]),
            "resseq": np.array([int(r["resseq"]) for r in rows], dtype=int),
            "q_true": np.array([float(r["q_true"]) for r in rows]),
            "q_pred": np.array([float(r["q_pred"]) for r in rows])}


class DeepQsLocalQViewer(ProtocolViewer):
    """Local Q predicted by DeepQs: orthogonal slices of the map coloured by local Q (red = low,
    blue = high) or local resolution, the distribution of local Q inside the mask, the map surface
    coloured in ChimeraX and, when a model was given, predicted against true per-residue Q."""

    _label = "deepqs local quality viewer"
    _targets = [ProtDeepQsPredict]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("displaySlices", params.LabelParam, label="Slices coloured by local Q",
                      help="Central orthogonal slices (through the mask's centre of mass) of the map in grey, "
                           "voxels inside the mask coloured by local Q: red (low) - white - blue (high).")
        form.addParam("displayResolution", params.LabelParam, label="Slices coloured by local resolution",
                      help="The same slices coloured by local resolution (Å): blue (good) - red (poor).")
        form.addParam("displayHistogram", params.LabelParam, label="Histogram of local Q",
                      help="Distribution of local Q inside the molecular mask, with the median.")
        form.addParam("displayChimeraX", params.LabelParam, label="Map surface coloured in ChimeraX",
                      help="Opens (or writes, when ChimeraX is not installed) a script colouring the map "
                           "surface by local Q.")
        form.addParam("displayScatter", params.LabelParam, label="Predicted vs true Q (model)",
                      help="Per-residue predicted Q against the model's true Q-scores; only when a model was "
                           "given to the protocol.")

    def _getVisualizeDict(self):
        return {"displaySlices": lambda p=None: [self.slicesPlotter()],
                "displayResolution": lambda p=None: [self.slicesPlotter(resolution=True)],
                "displayHistogram": lambda p=None: [self.histogramPlotter()],
                "displayChimeraX": self._showChimeraX,
                "displayScatter": self._showScatter}

    # ------------------------------------------------------------------ data
    def _maps(self):
        from deepqs.io import read_map
        prot = self.protocol
        density = read_map(volumeFile(prot.inputVolume.get()))
        localq = read_map(prot.localQ.getFileName())
        return density, localq

    # ----------------------------------------------------------------- plots
    def slicesPlotter(self, resolution=False):
        density, localq = self._maps()
        mask = localq.data != 0
        s = self.protocol.loadSummary()
        plotter = EmPlotter(x=1, y=1, windowTitle="DeepQs local quality", figsize=(11, 3.8))
        fig = plotter.getFigure()
        if resolution:
            from deepqs.io import read_map
            res = read_map(self.protocol.localResolution.getFileName()).data
            inside = res[mask]
            lo, hi = (np.percentile(inside, [2, 98]) if inside.size else (2.0, 8.0))
            draw_localq_slices(fig, density.data, res, mask, density.voxel_size, value_range=(float(lo), float(hi)),
                               label="local resolution (Å, lower = better)", cmap="RdBu_r")
            fig.suptitle("Local resolution from DeepQs (median %.2f Å)" % s["resolution_from_median_A"], fontsize=10)
        else:
            draw_localq_slices(fig, density.data, localq.data, mask, density.voxel_size)
            fig.suptitle("DeepQs local Q (median %.3f -> %.2f Å)" % (s["median_q"], s["resolution_from_median_A"]),
                         fontsize=10)
        plotter.tightLayoutOn = False  # the colour bar spans the three slices
        return plotter

    def histogramPlotter(self):
        _, localq = self._maps()
        s = self.protocol.loadSummary()
        plotter = EmPlotter(x=1, y=1, windowTitle="Local Q histogram", figsize=(7, 4.5))
        ax = plotter.createSubPlot("Local Q inside the mask (%d voxels)" % s["mask_voxels"], "local Q", "voxels")
        draw_score_histogram(ax, localq.data[localq.data != 0], label="local Q",
                             markers={"median": s["median_q"]})
        return plotter

    def scatterPlotter(self):
        path = self.protocol._out("compare_residues.csv")
        if not os.path.exists(path):
            return None
        table = readComparison(path)
        s = self.protocol.loadComparison() or {}
        plotter = EmPlotter(x=1, y=1, windowTitle="Predicted vs true Q", figsize=(5.5, 5.5))
        ax = plotter.createSubPlot("", "", "")
        draw_pred_vs_true(ax, table["q_true"], table["q_pred"], s.get("pearson_residue"))
        return plotter

    def _showScatter(self, paramName=None):
        plotter = self.scatterPlotter()
        if plotter is None:
            self.infoMessage("No atomic model was given to the protocol: there is nothing to compare with.",
                             "No model")
            return []
        return [plotter]

    def chimeraXScript(self):
        return os.path.abspath(self.protocol._out(os.path.join("figures", "color_by_localq.cxc")))

    def _showChimeraX(self, paramName=None):
        script = self.chimeraXScript()
        exe = shutil.which("chimerax") or shutil.which("ChimeraX")
        if exe:
            subprocess.Popen([exe, script])
        else:
            self.infoMessage("ChimeraX was not found on the PATH. Open this script in ChimeraX:\n%s" % script,
                             "ChimeraX script written")
        return []


class DeepQsTrainViewer(ProtocolViewer):
    """Training curves of DeepQs weights: loss on training and validation examples per epoch, and
    the validation voxel Pearson r and |median predicted - median true| Q."""

    _label = "deepqs training viewer"
    _targets = [ProtDeepQsTrain]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("displayCurves", params.LabelParam, label="Training curves",
                      help="Masked MSE per epoch (training and validation) and validation figures; the "
                           "best validation epoch (the weights kept) is marked.")

    def _getVisualizeDict(self):
        return {"displayCurves": lambda p=None: [self.curvesPlotter()]}

    def curvesPlotter(self):
        report = self.protocol.loadReport()
        epochs = report.get("epochs", [])
        plotter = EmPlotter(x=1, y=2, windowTitle="DeepQs training", figsize=(10, 4))
        ax = plotter.createSubPlot("Loss (masked MSE)", "epoch", "loss")
        ax.plot(epochs, report.get("train_loss", []), "o-", label="training")
        ax.plot(epochs, report.get("val_loss", []), "s-", label="validation")
        best = report.get("best_epoch")
        if best:
            ax.axvline(best, color="#888888", linestyle="--", label="best epoch %d" % best)
        ax.legend(frameon=False, fontsize=8)
        ax = plotter.createSubPlot("Validation", "epoch", "")
        ax.plot(epochs, report.get("val_pearson", []), "o-", label="voxel Pearson r")
        ax.plot(epochs, report.get("val_mae_median", []), "s-", label="|median pred - median true|")
        ax.legend(frameon=False, fontsize=8)
        return plotter
