"""Viewers of the Q-score protocol: Q histogram, Q along the sequence, ChimeraX colouring."""

import csv
import os
import shutil
import subprocess

import numpy as np
import pyworkflow.protocol.params as params
from pwem.viewers.plotter import EmPlotter
from pwem.viewers.viewer_localres import ChimeraAttributeViewer
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO, ProtocolViewer

from deepqs.chimerax import write_color_script, write_defattr
from deepqs.plots import draw_residue_profile, draw_score_histogram
from deepqs_plugin.protocols import ProtDeepQsQScore


def readResidueTable(path):
    """The engine's per-residue TSV as a dict of numpy arrays (Q columns float, NaN = not applicable)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows:
        return {}
    table = {}
    for key in rows[0]:
        col = [r[key] for r in rows]
        if key.startswith("q_"):
            table[key] = np.array([float(v) if v != "" else np.nan for v in col])
        elif key in ("resseq", "n_atoms"):
            table[key] = np.array(col, dtype=int)
        else:
            table[key] = np.array(col)
    return table


class DeepQsQScoreViewer(ProtocolViewer):
    """Histogram of per-atom Q, per-residue Q along each chain with the expected Q at the
    map's resolution, and a ChimeraX script colouring the model red (low Q) to blue (high Q)."""

    _label = "q-score viewer"
    _targets = [ProtDeepQsQScore]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("displayHistogram", params.LabelParam, label="Histogram of atom Q-scores",
                      help="Distribution of per-atom Q with the mean and the expected Q at the resolution.")
        form.addParam("chain", params.StringParam, default="", label="Chain (empty: all)",
                      help="Chain identifier for the sequence plot; empty shows every chain.")
        form.addParam("displayProfile", params.LabelParam, label="Q along the sequence",
                      help="Residue-average Q per chain; a dashed line marks the Q expected at the "
                           "resolution given to the protocol.")
        form.addParam("displayChimeraX", params.LabelParam, label="Model coloured by Q in ChimeraX",
                      help="Writes a ChimeraX script (red = low Q, blue = high Q) and opens it when "
                           "ChimeraX is installed.")

    def _getVisualizeDict(self):
        return {"displayHistogram": self._showHistogram, "displayProfile": self._showProfile,
                "displayChimeraX": self._showChimeraX}

    # ------------------------------------------------------------------ data
    def _atomQ(self):
        from deepqs.io.models import read_atom_site_column
        return read_atom_site_column(self.protocol._outModel(), "Q-score")

    def _summary(self):
        return self.protocol.loadSummary()

    # ----------------------------------------------------------------- plots
    def histogramPlotter(self):
        s = self._summary()
        plotter = EmPlotter(x=1, y=1, windowTitle="Q-score histogram", figsize=(7, 4.5))
        ax = plotter.createSubPlot("Atom Q-scores (sigma %g Å)" % s["sigma_A"], "Q-score", "atoms")
        markers = {"mean": s["mean_q"]}
        if s.get("expected_q") is not None:
            markers["expected at %g Å" % s["resolution_A"]] = s["expected_q"]
        draw_score_histogram(ax, self._atomQ(), markers=markers)
        return plotter

    def profilePlotter(self, chain=None):
        s = self._summary()
        table = readResidueTable(self.protocol._outResidues())
        chains = [chain] if chain else sorted(set(table["chain"]))
        plotter = EmPlotter(x=len(chains), y=1, windowTitle="Q along the sequence", figsize=(9, 2.8 * len(chains)))
        for c in chains:
            sel = table["chain"] == c
            ax = plotter.createSubPlot("Chain %s" % c, "residue number", "Q-score")
            draw_residue_profile(ax, table["resseq"][sel], table["q_residue"][sel], expected=s.get("expected_q"),
                                 chain=c)
        return plotter

    def _showHistogram(self, paramName=None):
        return [self.histogramPlotter()]

    def _showProfile(self, paramName=None):
        return [self.profilePlotter(self.chain.get() or None)]

    def writeChimeraXScript(self):
        """Write ``color_by_qscore.cxc`` (and its attribute file) into the protocol's extra folder."""
        from deepqs.io import read_atoms
        prot = self.protocol
        atoms = read_atoms(prot._outModel())
        defattr = prot._getExtraPath("qscore.defattr")
        write_defattr(defattr, "qscore", atoms.chain, atoms.resseq, atoms.icode, atoms.name, self._atomQ())
        script = prot._getExtraPath("color_by_qscore.cxc")
        vol = prot.inputVolume.get()
        mapPath = vol.getFileName().replace(":mrc", "") if vol is not None else None
        write_color_script(script, prot._outModel(), defattr, "qscore", low=0.0, high=1.0, map_path=mapPath)
        return script

    def _showChimeraX(self, paramName=None):
        script = self.writeChimeraXScript()
        exe = shutil.which("chimerax") or shutil.which("ChimeraX")
        if exe:
            subprocess.Popen([exe, os.path.abspath(script)])
        else:
            self.infoMessage("ChimeraX was not found on the PATH. Open this script in ChimeraX:\n%s"
                             % os.path.abspath(script), "ChimeraX script written")
        return []


class DeepQsQScoreAttributeViewer(ChimeraAttributeViewer):
    """Scipion's standard atomic-attribute viewer on the Q-score output (attribute 'Q-score')."""

    _label = "atomic structure attributes viewer"
    _targets = [ProtDeepQsQScore]
