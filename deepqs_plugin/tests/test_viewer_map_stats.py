"""The map-statistics viewer draws the histogram the engine computed."""

import numpy as np

from deepqs_plugin.viewers import DeepQsMapStatsViewer


def test_histogram_plotter_draws_summary(tmp_path):
    summary = {"grid_size_xyz": [8, 8, 8], "voxel_size_A": [1.5, 1.5, 1.5], "mean": 0.1, "std": 1.0,
               "histogram": {"edges": list(np.linspace(-3, 3, 7)), "counts": [1, 10, 200, 250, 40, 11]}}
    plotter = DeepQsMapStatsViewer.histogramPlotter(summary)
    ax = plotter.getFigure().axes[0]
    assert ax.get_yscale() == "log"
    assert "8×8×8" in ax.get_title()
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["mean = 0.1", "mean + 3σ = 3.1"]
    out = tmp_path / "hist.png"
    plotter.savefig(str(out))
    assert out.stat().st_size > 1000
    plotter.close()
