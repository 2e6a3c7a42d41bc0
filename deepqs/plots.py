"""Figures the engine writes (PNG), drawn with matplotlib's non-interactive backend."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from deepqs.errors import PathLike
from deepqs.io.atomic import atomic_output


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_histogram(counts: Sequence[float], edges: Sequence[float], path: PathLike, title: str = "",
                   xlabel: str = "value", ylabel: str = "voxels", markers: Optional[dict] = None,
                   log: bool = True) -> None:
    """Write a bar histogram (``counts`` per bin between ``edges``) to a PNG file.

    ``markers`` maps a label to an x value drawn as a vertical line (e.g. mean, threshold).
    A log y axis (default) keeps the tail of a map's histogram visible next to the solvent peak.
    """
    plt = _pyplot()
    counts = np.asarray(counts, dtype=float)
    edges = np.asarray(edges, dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        ax.stairs(counts, edges, fill=True, color="#4a7ab5", alpha=0.85)
        if log and np.any(counts > 0):
            ax.set_yscale("log")
        for i, (label, x) in enumerate((markers or {}).items()):
            ax.axvline(x, color=f"C{i + 1}", linestyle="--", linewidth=1.2, label=f"{label} = {x:.4g}")
        if markers:
            ax.legend(frameon=False, fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
