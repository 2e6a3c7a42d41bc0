"""Viewer of the validation report: the summary table, and the HTML report in a web browser."""

import os
import webbrowser

import pyworkflow.protocol.params as params
from pwem.viewers.plotter import EmPlotter
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO, ProtocolViewer

from deepqs_plugin.protocols import ProtDeepQsValidate
from deepqs_plugin.protocols.protocol_validate import STATUS_LABEL

STATUS_COLOUR = {"ok": "#d9f0d3", "warning": "#fddbc7", "not-applicable": "#eeeeee", "failed-to-run": "#f4a582"}


class DeepQsValidationViewer(ProtocolViewer):
    """The validation summary (every check with its section and status, the attained levels and
    "X out of N evaluable items pass") and the full HTML report with its figures."""

    _label = "deepqs validation viewer"
    _targets = [ProtDeepQsValidate]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("displaySummary", params.LabelParam, label="Summary table",
                      help="Each check with its level and status (OK, warning, not applicable, failed).")
        form.addParam("displayReport", params.LabelParam, label="Open the HTML report",
                      help="The self-contained report (figures, tables, inputs with checksums) in a web browser.")

    def _getVisualizeDict(self):
        return {"displaySummary": lambda p=None: [self.summaryPlotter()], "displayReport": self._showReport}

    def summaryPlotter(self):
        report = self.protocol.loadReport()
        checks = report["checks"]
        plotter = EmPlotter(x=1, y=1, windowTitle="Validation summary", figsize=(9, 0.8 + 0.32 * len(checks)))
        ax = plotter.createSubPlot("Levels %s: %s" % (", ".join(report["levels"]), report["score"]["text"]), "", "")
        ax.set_axis_off()
        rows = [[c["id"], c["name"], STATUS_LABEL.get(c["status"], c["status"]), str(len(c["warnings"]))]
                for c in checks]
        table = ax.table(cellText=rows, colLabels=["check", "name", "status", "warnings"], loc="center",
                         cellLoc="left", colWidths=[0.08, 0.62, 0.15, 0.15])
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        for i, c in enumerate(checks, start=1):
            table[i, 2].set_facecolor(STATUS_COLOUR.get(c["status"], "white"))
        return plotter

    def _showReport(self, paramName=None):
        path = os.path.abspath(self.protocol._out("report.html"))
        webbrowser.open("file://" + path)
        return []
