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


def _slice_centre(mask: np.ndarray) -> tuple:
    """Voxel (z, y, x) through which the orthogonal slices pass: the mask's centre of mass."""
    if mask is not None and np.any(mask):
        idx = np.argwhere(mask)
        return tuple(int(round(v)) for v in idx.mean(axis=0))
    return tuple(s // 2 for s in mask.shape) if mask is not None else (0, 0, 0)


def draw_localq_slices(fig, density: np.ndarray, localq: np.ndarray, mask: np.ndarray,
                       voxel_size: Sequence[float] = (1.0, 1.0, 1.0), value_range=(-1.0, 1.0),
                       label: str = "local Q (higher = better)", cmap: str = "RdBu") -> None:
    """Three orthogonal slices (arrays z, y, x) through the mask's centre of mass on ``fig``.

    The map is drawn in grey; voxels inside ``mask`` are coloured by ``localq`` (red = low,
    white, blue = high, CONVENTIONS colour scale for higher-is-better scores); one colour bar.
    Axes are in Å (``voxel_size`` as x, y, z).  For resolution maps pass ``cmap="RdBu_r"``.
    """
    density = np.asarray(density, dtype=np.float32)
    localq = np.asarray(localq, dtype=np.float32)
    mask = np.asarray(mask, dtype=bool)
    cz, cy, cx = _slice_centre(mask)
    vx, vy, vz = (float(v) for v in voxel_size)
    lo, hi = np.percentile(density, [1.0, 99.5])
    views = [("z = %d (xy plane)" % cz, density[cz], localq[cz], mask[cz], (vx, vy), ("x (Å)", "y (Å)")),
             ("y = %d (xz plane)" % cy, density[:, cy], localq[:, cy], mask[:, cy], (vx, vz), ("x (Å)", "z (Å)")),
             ("x = %d (yz plane)" % cx, density[:, :, cx], localq[:, :, cx], mask[:, :, cx], (vy, vz),
              ("y (Å)", "z (Å)"))]
    axes = fig.subplots(1, 3)
    image = None
    for ax, (title, d, q, m, (sx, sy), (lx, ly)) in zip(axes, views):
        extent = (0, d.shape[1] * sx, 0, d.shape[0] * sy)
        ax.imshow(d, cmap="gray", vmin=lo, vmax=hi, origin="lower", extent=extent, interpolation="nearest")
        image = ax.imshow(np.ma.masked_where(~m, q), cmap=cmap, vmin=value_range[0], vmax=value_range[1],
                          origin="lower", extent=extent, interpolation="nearest", alpha=0.85)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(lx, fontsize=8)
        ax.set_ylabel(ly, fontsize=8)
        ax.tick_params(labelsize=7)
    bar = fig.colorbar(image, ax=list(axes), shrink=0.8, pad=0.02)
    bar.set_label(label, fontsize=8)


def plot_localq_slices(path: PathLike, density: np.ndarray, localq: np.ndarray, mask: np.ndarray,
                       voxel_size: Sequence[float] = (1.0, 1.0, 1.0), title: str = "", **kwargs) -> None:
    """:func:`draw_localq_slices` written to a PNG file (atomically)."""
    plt = _pyplot()
    fig = plt.figure(figsize=(11.0, 3.8), dpi=100)
    try:
        draw_localq_slices(fig, density, localq, mask, voxel_size, **kwargs)
        if title:
            fig.suptitle(title, fontsize=10)
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def draw_pred_vs_true(ax, q_true: np.ndarray, q_pred: np.ndarray, pearson: Optional[float] = None,
                      label: str = "per-residue Q") -> None:
    """Scatter of predicted against true scores with the y = x line (and Pearson r in the title)."""
    q_true = np.asarray(q_true, dtype=float)
    q_pred = np.asarray(q_pred, dtype=float)
    ok = np.isfinite(q_true) & np.isfinite(q_pred)
    ax.scatter(q_true[ok], q_pred[ok], c=q_true[ok], cmap="RdBu", vmin=-1, vmax=1, s=10, edgecolors="#555555",
               linewidths=0.2)
    lo = float(min(-0.2, np.nanmin(q_true[ok]) if ok.any() else 0, np.nanmin(q_pred[ok]) if ok.any() else 0))
    ax.plot([lo, 1.0], [lo, 1.0], color="#444444", linestyle="--", linewidth=1.0, label="y = x")
    ax.set_xlim(lo, 1.0)
    ax.set_ylim(lo, 1.0)
    ax.set_aspect("equal")
    ax.set_xlabel(f"true {label} (model in map)")
    ax.set_ylabel(f"predicted {label} (DeepQs)")
    if pearson is not None and np.isfinite(pearson):
        ax.set_title(f"{int(ok.sum())} residues, Pearson r = {pearson:.3f}", fontsize=9)
    ax.legend(frameon=False, fontsize=8, loc="upper left")


def draw_picks(ax, image: np.ndarray, x: np.ndarray, y: np.ndarray, box_px: float,
               scores: Optional[np.ndarray] = None, truth_xy: Optional[np.ndarray] = None,
               max_display_px: int = 1024) -> None:
    """A micrograph (array [y, x]) with picked boxes drawn at centres ``x`` (column), ``y`` (row).

    Boxes are coloured by score (red = low, blue = high; one colour without scores); ``truth_xy``
    ((n, 2) x, y) adds green crosses.  Large micrographs are block-averaged for display only;
    axes stay in pixels of the original micrograph, row 0 at the top (as the file stores it).
    """
    from matplotlib.patches import Rectangle

    image = np.asarray(image, dtype=np.float32)
    h, w = image.shape
    f = max(1, int(np.ceil(max(h, w) / float(max_display_px))))
    if f > 1:
        hh, ww = h // f * f, w // f * f
        image = image[:hh, :ww].reshape(hh // f, f, ww // f, f).mean(axis=(1, 3))
    lo, hi = np.percentile(image, [1.0, 99.0])
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, extent=(0, w, h, 0), interpolation="bilinear")
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    plt = _pyplot()
    cmap = plt.get_cmap("RdBu")
    for i in range(x.size):
        colour = cmap(float(np.clip(scores[i], 0, 1))) if scores is not None else "#2166ac"
        ax.add_patch(Rectangle((x[i] - box_px / 2.0, y[i] - box_px / 2.0), box_px, box_px, fill=False,
                               edgecolor=colour, linewidth=1.0))
    if truth_xy is not None and len(truth_xy):
        t = np.asarray(truth_xy, dtype=float)
        ax.scatter(t[:, 0], t[:, 1], marker="+", color="#1a9850", s=30, linewidths=1.0, label="ground truth")
        ax.legend(frameon=True, fontsize=8, loc="upper right")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_xlabel("x (pixels, column)")
    ax.set_ylabel("y (pixels, row)")
    if scores is not None and x.size:
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, 1))
        bar = ax.figure.colorbar(sm, ax=ax, shrink=0.8, pad=0.02)
        bar.set_label("pick score (higher = surer)", fontsize=8)


def draw_gallery(fig, boxes: np.ndarray, labels: Optional[Sequence[str]] = None, columns: int = 8,
                 title: str = "") -> None:
    """A grid of images ``boxes`` (n, y, x) on ``fig``, each contrast-stretched on its own
    (1-99 percentiles), with an optional short label under each (e.g. a probability)."""
    boxes = np.asarray(boxes, dtype=np.float32)
    n = int(boxes.shape[0])
    if n == 0:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "(none)", ha="center", va="center")
        ax.set_axis_off()
        ax.set_title(title, fontsize=10)
        return
    cols = max(1, min(columns, n))
    rows = int(np.ceil(n / cols))
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        lo, hi = np.percentile(boxes[i], [1.0, 99.0])
        ax.imshow(boxes[i], cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
        ax.set_xticks([])
        ax.set_yticks([])
        if labels is not None:
            ax.set_xlabel(str(labels[i]), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)


def draw_confusion(ax, matrix: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str]) -> None:
    """A confusion matrix (rows = truth, columns = decision) with the counts written in the cells."""
    m = np.asarray(matrix, dtype=float)
    ax.imshow(m, cmap="Blues", vmin=0, vmax=max(m.max(), 1))
    for (r, c), v in np.ndenumerate(m):
        ax.text(c, r, "%d" % v, ha="center", va="center", color="white" if v > m.max() / 2 else "black")
    ax.set_xticks(range(len(col_labels)))
    ax.set_xticklabels(col_labels)
    ax.set_yticks(range(len(row_labels)))
    ax.set_yticklabels(row_labels)
    ax.set_xlabel("decision")
    ax.set_ylabel("label")
