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


def draw_score_histogram(ax, values: np.ndarray, bins: int = 40, value_range=(-1.0, 1.0), label: str = "Q-score",
                         markers: Optional[dict] = None) -> None:
    """Histogram of per-item scores on ``ax`` (NaN left out), coloured red (low) -> blue (high)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    counts, edges = np.histogram(values, bins=bins, range=value_range)
    centres = 0.5 * (edges[:-1] + edges[1:])
    plt = _pyplot()
    colours = plt.get_cmap("RdBu")((centres - value_range[0]) / (value_range[1] - value_range[0]))
    ax.bar(centres, counts, width=np.diff(edges), color=colours, edgecolor="#555555", linewidth=0.3)
    for i, (name, x) in enumerate((markers or {}).items()):
        ax.axvline(x, color=f"C{i}", linestyle="--", linewidth=1.2, label=f"{name} = {x:.3f}")
    if markers:
        ax.legend(frameon=False, fontsize=8)
    ax.set_xlabel(label)
    ax.set_ylabel("count")


def draw_residue_profile(ax, resseq: np.ndarray, values: np.ndarray, expected: Optional[float] = None,
                         label: str = "Q-score", chain: str = "") -> None:
    """Per-residue scores along the sequence (gaps where residues are missing) on ``ax``.

    ``expected`` draws the value expected at the map's resolution as a horizontal line.
    """
    resseq = np.asarray(resseq)
    values = np.asarray(values, dtype=float)
    order = np.argsort(resseq, kind="stable")
    x, y = resseq[order].astype(float), values[order]
    breaks = np.flatnonzero(np.diff(x) > 1) + 1  # a chain break leaves a gap in the line
    x = np.insert(x, breaks, np.nan)
    y = np.insert(y, breaks, np.nan)
    ax.plot(x, y, color="#2166ac", linewidth=1.0)
    ax.scatter(resseq, values, c=values, cmap="RdBu", vmin=-1, vmax=1, s=8, zorder=3)
    if expected is not None:
        ax.axhline(expected, color="#b2182b", linestyle="--", linewidth=1.2, label=f"expected {label} = {expected:.3f}")
        ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.set_xlabel(f"residue number{' (chain ' + chain + ')' if chain else ''}")
    ax.set_ylabel(label)
    ax.set_ylim(min(-0.2, np.nanmin(values) - 0.05) if values.size else -0.2, 1.0)
