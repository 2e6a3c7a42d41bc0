"""Viewer of PickerOptimizer pruning: galleries of kept and discarded items, p(particle)
histogram, and a confusion matrix when labelled examples were given."""

import csv
import os

import numpy as np
import pyworkflow.protocol.params as params
from pwem.viewers.plotter import EmPlotter
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO, ProtocolViewer

from deepqs.plots import draw_confusion, draw_gallery, draw_score_histogram
from deepqs_plugin.protocols import ProtPickerOptimizer


class DeepQsPruningViewer(ProtocolViewer):
    """Kept and discarded boxes side by side (with their p(particle)), the distribution of
    p(particle) with the threshold, and, when good/bad examples were given, how they were decided."""

    _label = "pickeroptimizer viewer"
    _targets = [ProtPickerOptimizer]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("nShow", params.IntParam, default=32, label="Boxes per gallery",
                      help="How many kept (highest p(particle)) and discarded (lowest) boxes to show.")
        form.addParam("displayKept", params.LabelParam, label="Gallery of kept boxes")
        form.addParam("displayDiscarded", params.LabelParam, label="Gallery of discarded boxes")
        form.addParam("displayHistogram", params.LabelParam, label="Histogram of p(particle)",
                      help="With the threshold used.")
        form.addParam("displayConfusion", params.LabelParam, label="Confusion matrix (labelled examples)",
                      help="Only when good and bad examples were given to the protocol.")

    def _getVisualizeDict(self):
        n = lambda: self.nShow.get()
        return {"displayKept": lambda p=None: [self.galleryPlotter(True, n())],
                "displayDiscarded": lambda p=None: [self.galleryPlotter(False, n())],
                "displayHistogram": lambda p=None: [self.histogramPlotter()],
                "displayConfusion": self._showConfusion}

    def _rows(self):
        """The engine's scores.csv rows of every batch, in order."""
        rows = []
        for _, scores in self.protocol.scoredBatches():
            with open(scores, newline="") as fh:
                rows += list(csv.DictReader(fh))
        return rows

    def _boxes(self):
        """The boxes the engine scored, in the order of :meth:`_rows`."""
        from deepqs.pruning.boxes import read_micrograph_boxes, read_particle_boxes
        prot = self.protocol
        out = []
        for folder, _ in prot.scoredBatches():
            if prot._isCoords():
                coords = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".csv"))
                out.append(read_micrograph_boxes(prot._micrographs(folder), coords, prot._box()).boxes)
            else:
                out.append(read_particle_boxes(os.path.join(folder, "particles.star")).boxes)
        return np.concatenate(out) if out else np.zeros((0, 64, 64), np.float32)

    def galleryPlotter(self, kept=True, n=32):
        rows = self._rows()
        boxes = self._boxes()
        p = np.array([float(r["p_particle"]) for r in rows])
        sel = np.array([r["kept"] == ("1" if kept else "0") for r in rows])
        idx = np.flatnonzero(sel)
        idx = idx[np.argsort(-p[idx])] if kept else idx[np.argsort(p[idx])]
        idx = idx[:n]
        plotter = EmPlotter(x=1, y=1, windowTitle="Pruning gallery", figsize=(10, 1.4 + 1.3 * np.ceil(max(len(idx), 1) / 8)))
        draw_gallery(plotter.getFigure(), boxes[idx], ["p=%.2f" % v for v in p[idx]],
                     title="%s: %d of %d (showing %d)" % ("kept" if kept else "discarded", sel.sum(), len(rows), len(idx)))
        plotter.tightLayoutOn = False
        return plotter

    def histogramPlotter(self):
        rows = self._rows()
        p = np.array([float(r["p_particle"]) for r in rows])
        plotter = EmPlotter(x=1, y=1, windowTitle="p(particle)", figsize=(7, 4.5))
        ax = plotter.createSubPlot("%d items" % p.size, "p(particle)", "items")
        draw_score_histogram(ax, p, bins=25, value_range=(0.0, 1.0), label="p(particle)",
                             markers={"threshold": self.protocol.usedThreshold.get()})
        return plotter

    def _labelled(self):
        """Labels (True = good) of input items that were also given as examples, by position."""
        prot = self.protocol
        labels = {}
        for name, good in (("goodSubset", True), ("badSubset", False), ("carbonSubset", False)):
            s = getattr(prot, name).get()
            if s is None:
                continue
            for item in s.iterItems():
                key = (item.getMicId(), item.getX(), item.getY()) if prot._isCoords() else item.getLocation()
                labels[key] = good
        return labels

    def confusionPlotter(self):
        prot = self.protocol
        labels = self._labelled()
        if not labels:
            return None
        m = np.zeros((2, 2), int)
        outputs = [(getattr(prot, n, None), kept) for n, kept in
                   ((("outputCoordinates" if prot._isCoords() else "outputParticles"), True),
                    (("outputCoordinates_discarded" if prot._isCoords() else "outputParticles_discarded"), False))]
        for out, kept in outputs:
            if out is None:
                continue
            for item in out.iterItems():
                key = (item.getMicId(), item.getX(), item.getY()) if prot._isCoords() else item.getLocation()
                if key in labels:
                    m[0 if labels[key] else 1, 0 if kept else 1] += 1
        plotter = EmPlotter(x=1, y=1, windowTitle="Confusion matrix", figsize=(4.5, 4))
        ax = plotter.createSubPlot("Labelled examples (%d)" % m.sum(), "", "")
        draw_confusion(ax, m, ["good", "bad"], ["kept", "discarded"])
        return plotter

    def _showConfusion(self, paramName=None):
        plotter = self.confusionPlotter()
        if plotter is None:
            self.infoMessage("No labelled examples were given to the protocol.", "No labels")
            return []
        return [plotter]
