"""Viewer of DeepEM picking: a micrograph with its picks, the score histogram, the PR curve."""

import csv
import os

import numpy as np
import pyworkflow.protocol.params as params
from pwem.viewers.plotter import EmPlotter
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO, ProtocolViewer

from deepqs.plots import draw_picks, draw_score_histogram
from deepqs_plugin.protocols import ProtDeepEMPick
from deepqs_plugin.protocols.protocol_picking import SCORE_ATTR, micStem


def readPicks(path):
    """x, y (pixels) and score arrays of an engine picks CSV (header x,y,score)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return (np.array([float(r["x"]) for r in rows]), np.array([float(r["y"]) for r in rows]),
            np.array([float(r["score"]) for r in rows]))


class DeepEMPickViewer(ProtocolViewer):
    """Picks drawn on a micrograph (boxes coloured by score, known particles as green crosses when
    the protocol was given some), the distribution of pick scores, and the precision-recall curve
    of the evaluation against known particles."""

    _label = "deepem picking viewer"
    _targets = [ProtDeepEMPick]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("micIndex", params.IntParam, default=1, label="Micrograph number",
                      help="Which micrograph of the input set to show (1 = first).")
        form.addParam("displayPicks", params.LabelParam, label="Micrograph with picks",
                      help="Boxes coloured by score: red (low) - blue (high).")
        form.addParam("displayHistogram", params.LabelParam, label="Histogram of pick scores",
                      help="Scores of every pick of every micrograph, with the threshold used.")
        form.addParam("displayPR", params.LabelParam, label="Precision-recall curve",
                      help="Only when the protocol was given known particles to evaluate against.")

    def _getVisualizeDict(self):
        return {"displayPicks": lambda p=None: [self.picksPlotter(self.micIndex.get())],
                "displayHistogram": lambda p=None: [self.histogramPlotter()],
                "displayPR": self._showPR}

    def _mic(self, index):
        mics = [m.clone() for m in self.protocol.getInputMicrographs()]  # sets reuse one item object
        return mics[max(0, min(len(mics) - 1, int(index) - 1))]

    def picksPlotter(self, index=1):
        from deepqs.io import read_micrograph

        prot = self.protocol
        mic = self._mic(index)
        fn = os.path.join(prot._coordsDir(), micStem(mic) + ".csv")
        x, y, s = readPicks(fn) if os.path.exists(fn) else (np.zeros(0), np.zeros(0), np.zeros(0))
        truth = None
        if prot.inputTruth.get() is not None:
            truth = np.array([(c.getX(), c.getY()) for c in prot.inputTruth.get().iterCoordinates(mic)], float)
        image, _ = read_micrograph(os.path.abspath(mic.getFileName()), pixel_size=1.0)
        plotter = EmPlotter(x=1, y=1, windowTitle="DeepEM picks", figsize=(8, 7))
        ax = plotter.createSubPlot("%s: %d picks" % (mic.getMicName(), x.size), "", "")
        draw_picks(ax, image, x, y, prot.boxSize(), scores=s, truth_xy=truth)
        return plotter

    def _scores(self):
        coords = getattr(self.protocol, "outputCoordinates", None)
        if coords is None:
            return np.zeros(0)
        return np.array([getattr(c, SCORE_ATTR).get() for c in coords.iterItems()], float)

    def histogramPlotter(self):
        s = self.protocol.pickSummaries()
        plotter = EmPlotter(x=1, y=1, windowTitle="Pick scores", figsize=(7, 4.5))
        scores = self._scores()
        ax = plotter.createSubPlot("%d picks" % scores.size, "score", "picks")
        markers = {"threshold": s[0]["threshold"]} if s else None
        draw_score_histogram(ax, scores, bins=25, value_range=(0.0, 1.0), label="pick score", markers=markers)
        return plotter

    def prPlotter(self):
        path = self.protocol.prCurveFile()
        if not os.path.exists(path):
            return None
        import matplotlib.image as mpimg
        plotter = EmPlotter(x=1, y=1, windowTitle="Precision-recall", figsize=(6.5, 5))
        ax = plotter.createSubPlot("", "", "")
        ax.imshow(mpimg.imread(path))
        ax.set_axis_off()
        return plotter

    def _showPR(self, paramName=None):
        plotter = self.prPlotter()
        if plotter is None:
            self.infoMessage("The protocol was not given known particles: no precision-recall curve.",
                             "No evaluation")
            return []
        return [plotter]
