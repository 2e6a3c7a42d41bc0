"""Vectorised per-atom Q-scores that reproduce MapQ's single-process numbers.

For every scored atom the collected values are:

* the map value at the atom centre, counted ``N_POINTS`` (8) times, at radius 0;
* for each shell radius ``r`` of :func:`~deepqs.qscore.sphere.shell_radii`: the points of the
  first try ``i = 0..49`` whose ``8 + 2 i`` spiral points keep at least 8 after dropping every
  point that has an atom of the model (all non-H atoms: every chain, water, ligand and altloc)
  strictly closer than ``0.9 r``; all kept points of that try count, at radius ``r``.  When all
  50 tries fail the shell adds nothing.

Q is the Pearson correlation of those map values with ``exp(-r^2 / (2 sigma^2))`` at each
value's radius (MapQ's ``A exp(...) + B`` with ``A > 0``: A and B cancel in a correlation), and
0 when either variance is 0.

How it is vectorised (no per-atom Python loop):

* A point ``c + r u`` is strictly closer than ``0.9 r`` to a neighbour at ``c + d`` exactly when
  ``u . d - (|d|^2 + 0.19 r^2) / (2 r) > 0``.  Only neighbours with ``0.1 r < |d| < 1.9 r`` can
  reject a point of shell ``r``; one KD-tree query lists them for every atom.  Each (atom,
  neighbour) pair becomes a float32 row ``(d, -threshold)``; a try is a matrix product of those
  rows with the try's ``(u, 1)`` columns, and the largest margin per atom and point decides.
  The rows are stored layer by layer (layer ``j`` = the ``j``-th pair of every atom that has more
  than ``j``; atoms sorted by pair count), so the per-atom maximum is a few element-wise
  ``maximum`` calls on contiguous slices, with no padding (:class:`_PairRows`).
* Points whose margin lies within a small band of 0 are decided again in double precision with
  MapQ's own rule (see :meth:`QScorer._exact_ties`), so float32 arithmetic never decides a tie.
* On each shell all atoms of a chunk take try 0 together; atoms still short of 8 points go on
  to the next tries, which are taken a few at a time (``TRY_BLOCKS``) as fewer atoms remain.
* Per atom only running sums are kept (count, sum v, sum v^2, sum v g) with the map values taken
  relative to the atom's centre value.

Chunks of atoms run in ``threads`` forked worker processes (numpy's many small calls keep
threads from scaling); they share the map and the model copy-on-write.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from scipy.spatial import cKDTree

from deepqs.qscore.interp import Interpolator
from deepqs.qscore.sphere import N_POINTS, N_TRIES, REJECT_FRACTION, shell_radii, spiral_table

#: Atoms per work unit (bounds the memory of the try arrays to some tens of MB per worker).
DEFAULT_CHUNK = 16384
#: Below this many atoms one process does the work.
MIN_PARALLEL_ATOMS = 8192
#: Tries taken together once the easy atoms are done: (first, end) pairs covering 0..49.
TRY_BLOCKS = ((0, 1), (1, 2), (2, 3), (3, 4), (4, 6), (6, 8), (8, 11), (11, 15), (15, 20),
              (20, 27), (27, 36), (36, 50))
#: Largest (points x pairs) float32 array one step makes (cache sized); more atoms are split.
MAX_BLOCK_ELEMENTS = 1_000_000
#: Map values are float32: a spread below this many float32 ulps of their size counts as flat.
FLAT_ULPS = 32.0
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def default_threads() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class _TryBlock:
    """The spiral points of tries ``first .. end - 1`` side by side."""

    def __init__(self, units: List[np.ndarray], first: int, end: int):
        self.first, self.end = first, end
        sizes = [units[i].shape[0] for i in range(first, end)]
        self.sizes = np.array(sizes, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.n = int(self.offsets[-1])
        self.u64 = np.concatenate([units[i] for i in range(first, end)], axis=0)   # (n, 3)
        u4 = np.ones((4, self.n), dtype=np.float32)
        u4[:3] = self.u64.T
        self.u4 = u4                                                              # (4, n)
        # Column -> try indicator, to count kept points per try with one product.
        self.try_matrix = np.zeros((self.n, end - first), dtype=np.uint8)
        self.try_matrix[np.arange(self.n), np.repeat(np.arange(end - first), sizes)] = 1


class QScorer:
    """Q-scores of atoms against one map, with the atoms that reject points fixed.

    Parameters
    ----------
    interpolator
        :class:`~deepqs.qscore.interp.Interpolator` of the map.
    reject_xyz
        (m, 3) positions (Å) of every atom that can reject sample points (all non-H atoms).
    sigma
        Width (Å) of the reference Gaussian.
    """

    def __init__(self, interpolator: Interpolator, reject_xyz: np.ndarray, sigma: float = 0.6,
                 n_points: int = N_POINTS, n_tries: int = N_TRIES,
                 radii: Optional[Sequence[float]] = None):
        if not sigma > 0:
            raise ValueError("sigma must be positive")
        self.interp = interpolator
        self.reject_xyz = np.ascontiguousarray(reject_xyz, dtype=np.float64).reshape(-1, 3)
        self.reject_xyz32 = self.reject_xyz.astype(np.float32).astype(np.float64)
        self.sigma = float(sigma)
        self.n_points = int(n_points)
        self.radii = list(shell_radii() if radii is None else radii)
        self.gauss = [math.exp(-0.5 * (r / self.sigma) ** 2) for r in self.radii]
        units = spiral_table(n_points, n_tries)
        self.units = units
        blocks = [(a, min(b, n_tries)) for a, b in TRY_BLOCKS if a < n_tries]
        if not blocks or blocks[-1][1] < n_tries:
            blocks.append((blocks[-1][1] if blocks else 0, n_tries))
        # Single tries too, for splitting a block that would be too large.
        self.blocks = {(a, b): _TryBlock(units, a, b) for a, b in blocks}
        self.block_order = blocks
        self.single = [_TryBlock(units, i, i + 1) for i in range(n_tries)]
        self.max_reach = (1.0 + REJECT_FRACTION) * max(self.radii, default=0.0)
        self.tree = cKDTree(self.reject_xyz) if len(self.reject_xyz) else None
        scale = max(1.0, float(np.abs(self.reject_xyz).max())) if len(self.reject_xyz) else 1.0
        # Band (in margin units, Å) decided again in double precision.  The float32 margin is off
        # by < 2e-6 (|d| <= 3.8 Å, thresholds no larger, four roundings); rounding a neighbour's
        # coordinates to float32 (MapQ's search tree) moves a margin by < 0.78 ulp of the largest
        # coordinate.  Twice both, to be safe.
        self.band = 4e-6 + 2.0 * float(np.spacing(np.float32(scale)))

    # ------------------------------------------------------------------ neighbours
    def pairs(self, centres: np.ndarray, workers: int = 1):
        """(atom, neighbour) pairs within reach, grouped by atom, nearest first.

        Returns ``(atom, nb, diff, d2)``: row of ``centres``, row of ``reject_xyz``, neighbour
        minus centre (float64, Å) and its squared length.  Pairs at distance 0 (the atom itself,
        or a coincident altloc) are left out: they never reject a point.
        """
        n = centres.shape[0]
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0))
        if self.tree is None or n == 0:
            return empty
        m = len(self.reject_xyz)
        bound = self.max_reach * (1.0 + 1e-9) + 1e-9
        k = min(32, m)
        while True:
            dist, idx = self.tree.query(centres, k=k, distance_upper_bound=bound, workers=workers)
            if k == 1:
                dist, idx = dist[:, None], idx[:, None]
            if k >= m or not np.isfinite(dist[:, -1]).any():
                break
            k = min(2 * k, m)
        found = idx < m
        atom = np.nonzero(found)[0]
        nb = idx[found].astype(np.int32 if m < 2 ** 31 - 1 else np.int64)
        diff = self.reject_xyz[nb] - centres[atom]
        d2 = np.einsum("pc,pc->p", diff, diff)
        keep = d2 > 0.0
        return atom[keep], nb[keep], diff[keep], d2[keep]

    # ------------------------------------------------------------------ scoring
    def score(self, centres: np.ndarray, threads: int = 1, chunk: int = DEFAULT_CHUNK,
              progress: Optional[Callable[[int], None]] = None) -> np.ndarray:
        """Q-scores of atoms centred at ``centres`` (n, 3) in Å; float64 (n,).

        With ``threads > 1`` the chunks run in that many forked worker processes (they share the
        map and the model copy-on-write); where ``fork`` is not available, in threads.
        """
        centres = np.ascontiguousarray(centres, dtype=np.float64).reshape(-1, 3)
        n = centres.shape[0]
        q = np.zeros(n, dtype=np.float64)
        if n == 0:
            return q
        threads = max(1, int(threads))
        if n < MIN_PARALLEL_ATOMS:
            threads = 1          # starting workers costs more than it saves
        chunk = max(1, min(int(chunk), -(-n // threads)))
        # Spatially compact chunks keep the map gathers cache friendly.
        order = _spatial_order(centres)
        bounds = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
        for (s0, s1), values in _run_chunks(self, centres, order, bounds, threads):
            q[order[s0:s1]] = values
            if progress is not None:
                progress(s1 - s0)
        return q

    def _score_chunk(self, centres: np.ndarray) -> np.ndarray:
        b = centres.shape[0]
        pairs = self.pairs(centres)
        centre_val = self.interp(centres).astype(np.float64)
        s_n = np.zeros(b)     # values collected on the shells
        s_v = np.zeros(b)     # sum of (v - centre value)
        s_vv = np.zeros(b)
        s_vg = np.zeros(b)
        s_g = np.zeros(b)
        s_gg = np.zeros(b)
        for r, g in zip(self.radii, self.gauss):
            atom_ids, points = self._shell_points(centres, pairs, r)
            if atom_ids.size == 0:
                continue
            v = self.interp(points).astype(np.float64) - centre_val[atom_ids]
            cnt = np.bincount(atom_ids, minlength=b).astype(np.float64)
            sv = np.bincount(atom_ids, weights=v, minlength=b)
            s_n += cnt
            s_v += sv
            s_vv += np.bincount(atom_ids, weights=v * v, minlength=b)
            s_vg += g * sv
            s_g += g * cnt
            s_gg += (g * g) * cnt
        return _correlation(self.n_points, centre_val, s_n, s_v, s_vv, s_vg, s_g, s_gg)

    def _shell_points(self, centres: np.ndarray, pairs, r: float) -> Tuple[np.ndarray, np.ndarray]:
        """Atom rows and positions (float64, Å) of the kept points of shell ``r``."""
        b = centres.shape[0]
        p_atom, p_nb, p_diff, p_d2 = pairs
        reach2 = ((1.0 + REJECT_FRACTION) * r) ** 2
        inner2 = ((1.0 - REJECT_FRACTION) * r) ** 2
        sel = np.flatnonzero((p_d2 < reach2 * (1.0 + 1e-9) + 1e-12) & (p_d2 > inner2 * (1.0 - 1e-9)))
        ids: List[np.ndarray] = []
        pts: List[np.ndarray] = []
        counts = np.bincount(p_atom[sel], minlength=b)
        free = np.flatnonzero(counts == 0)
        if free.size:   # nothing can reject a point: try 0 keeps all of its points
            u = self.units[0]
            ids.append(np.repeat(free, u.shape[0]))
            pts.append((centres[free][:, None, :] + u[None] * r).reshape(-1, 3))
        if sel.size:
            pr = _PairRows.build(centres, p_atom[sel], p_nb[sel], p_diff[sel], p_d2[sel], counts, r)
            self._tries(centres, pr, r, ids, pts)
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 3))
        return np.concatenate(ids), np.concatenate(pts)

    def _tries(self, centres, pr: "_PairRows", r, ids, pts):
        """Find each active atom's first successful try; append its kept points to ids/pts."""
        for first, end in self.block_order:
            t = first
            while t < end and pr.n_alive:
                blk = self.blocks[(first, end)] if t == first else self.single[t]
                if t == first and pr.n_rows * blk.n > 4 * MAX_BLOCK_ELEMENTS:
                    blk = self.single[t]      # too many atoms left for the whole block at once
                t = blk.end
                done = np.zeros(pr.n_atoms, dtype=bool)
                # Groups of atoms whose (pairs x points) work stays cache sized.
                cum = np.cumsum(pr.counts)
                per = max(1, MAX_BLOCK_ELEMENTS // blk.n)
                a0 = 0
                while a0 < pr.n_atoms:
                    base = int(cum[a0 - 1]) if a0 else 0
                    a1 = int(np.searchsorted(cum, base + per, side="right"))
                    a1 = min(max(a1, a0 + 1), pr.n_atoms)
                    done[a0:a1] = self._block(centres, pr, a0, a1, blk, r, ids, pts)
                    a0 = a1
                if done.any():
                    pr.finish(done)
            if not pr.n_alive:
                break

    def _block(self, centres, pr: "_PairRows", a0: int, a1: int, blk: _TryBlock, r, ids, pts) -> np.ndarray:
        """Test the tries of ``blk`` for atoms ``a0 .. a1 - 1`` of ``pr``; append finished atoms' points."""
        band = self.band
        # margin[atom, point]: the largest (u . d - threshold) over the atom's pairs, taken layer
        # by layer (layer j holds the j-th pair of the atoms that have more than j pairs).
        margin = None
        for j in range(pr.n_layers):
            lo = max(a0, int(pr.starts[j]))
            if lo >= a1:
                break
            o = int(pr.offsets[j]) - int(pr.starts[j])
            proj = pr.rows[o + lo:o + a1] @ blk.u4
            if margin is None:
                margin = proj
            else:
                part = margin[lo - a0:]
                np.maximum(part, proj, out=part)
        rejected = margin > band
        near = margin >= -band
        near &= ~rejected
        del margin
        if near.any():
            ai, ci = np.nonzero(near)
            rejected[ai, ci] = self._exact_ties(centres, pr, ai + a0, blk.u64[ci], r)
        kept = ~rejected
        n_kept = kept.view(np.uint8) @ blk.try_matrix       # (atoms, tries)
        ok = n_kept >= self.n_points
        done = ok.any(axis=1)
        done &= pr.alive[a0:a1]
        if done.any():
            which = ok.argmax(axis=1)
            atom_ids = pr.atoms[a0:a1]
            for k in range(blk.end - blk.first):          # at most 14 tries per block
                sel = np.flatnonzero(done & (which == k))
                if sel.size == 0:
                    continue
                lo, hi = int(blk.offsets[k]), int(blk.offsets[k + 1])
                di, ci = np.nonzero(kept[sel, lo:hi])
                atoms = atom_ids[sel[di]]
                ids.append(atoms)
                pts.append(centres[atoms] + blk.u64[lo + ci] * r)
        return done

    def _exact_ties(self, centres, pr: "_PairRows", pos: np.ndarray, u: np.ndarray, r: float) -> np.ndarray:
        """Decide near-boundary points exactly as MapQ does.

        ``pos`` are positions in ``pr`` of the points' atoms, ``u`` (k, 3) the points' unit
        vectors.  MapQ finds candidate atoms with Chimera's AdaptiveTree, built on float32 atom
        coordinates, and then tests each candidate with the double-precision coordinates
        (``|p - x|^2 < (0.9 r)^2``, ``p = c + u r``).  A point is dropped only when both put the
        atom strictly inside ``0.9 r``.  (One atom of the EMD-30342 reference depends on this: its
        point lies 3e-6 Å inside the sphere in double precision and outside it with the float32
        coordinates.)
        """
        k = pos.size
        cnt = pr.counts[pos]
        item = np.repeat(np.arange(k), cnt)
        layer = np.arange(item.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        row = pr.offsets[layer] + pos[item] - pr.starts[layer]
        nb = pr.nbs[row]
        p = centres[pr.atoms[pos[item]]] + u[item] * r
        out2 = (REJECT_FRACTION * r) ** 2
        hit = (_dist2(p, self.reject_xyz[nb]) < out2) & (_dist2(p, self.reject_xyz32[nb]) < out2)
        return np.bincount(item[hit], minlength=k) > 0


class _PairRows:
    """The (atom, neighbour) pairs of one shell in layer-major order.

    Atoms (``atoms``: rows of the chunk) are sorted by their number of pairs (``counts``,
    ascending).  Layer ``j`` holds the ``j``-th pair of every atom with more than ``j`` pairs,
    i.e. of the atoms ``starts[j] ..`` (a suffix), as rows ``offsets[j] ..`` of ``rows`` (float32
    ``(d_x, d_y, d_z, -threshold)``) and ``nbs`` (the neighbour's row in the rejecting atoms).
    No padding: a try costs exactly (pairs x points).
    """

    #: Compact the rows once finished atoms hold this fraction of them.
    COMPACT_FRACTION = 0.3

    def __init__(self, atoms, counts, rows, nbs):
        self.atoms = atoms
        self.counts = counts
        self.rows = rows
        self.nbs = nbs
        self.alive = np.ones(atoms.size, dtype=bool)
        self.n_alive = int(atoms.size)
        self.dead_rows = 0
        self._layout()

    @classmethod
    def build(cls, centres, p_atom, p_nb, p_diff, p_d2, counts_all, r):
        active = np.flatnonzero(counts_all > 0)
        cnt = counts_all[active]
        order = np.argsort(cnt, kind="stable")
        atoms = active[order]
        counts = cnt[order]
        pos_of = np.empty(centres.shape[0], dtype=np.int64)
        pos_of[atoms] = np.arange(atoms.size)
        # Rank of each pair within its atom (pairs arrive grouped by atom, atoms ascending).
        group_start = np.cumsum(counts_all) - counts_all
        rank = np.arange(p_atom.size) - group_start[p_atom]
        pos = pos_of[p_atom]
        starts = np.searchsorted(counts, np.arange(int(counts[-1])), side="right")
        sizes = atoms.size - starts
        offsets = np.zeros(sizes.size, dtype=np.int64)
        np.cumsum(sizes[:-1], out=offsets[1:])
        dest = offsets[rank] + pos - starts[rank]
        rows = np.empty((p_atom.size, 4), dtype=np.float32)
        rows[dest, :3] = p_diff
        rows[dest, 3] = -(p_d2 + (1.0 - REJECT_FRACTION ** 2) * r * r) / (2.0 * r)
        nbs = np.empty(p_atom.size, dtype=p_nb.dtype)
        nbs[dest] = p_nb
        return cls(atoms, counts, rows, nbs)

    def _layout(self):
        n_layers = int(self.counts[-1]) if self.counts.size else 0
        self.n_layers = n_layers
        self.starts = np.searchsorted(self.counts, np.arange(n_layers), side="right")
        sizes = self.counts.size - self.starts
        self.offsets = np.zeros(n_layers, dtype=np.int64)
        if n_layers:
            np.cumsum(sizes[:-1], out=self.offsets[1:])

    @property
    def n_atoms(self) -> int:
        return int(self.atoms.size)

    @property
    def n_rows(self) -> int:
        return int(self.rows.shape[0])

    def finish(self, done: np.ndarray) -> None:
        """Mark atoms finished; their rows go once they make up a good part of the work."""
        self.alive &= ~done
        self.n_alive = int(self.alive.sum())
        self.dead_rows += int(self.counts[done].sum())
        if self.n_alive and self.dead_rows > self.COMPACT_FRACTION * self.rows.shape[0]:
            self.drop(~self.alive)

    def drop(self, done: np.ndarray) -> None:
        """Remove the finished atoms (and their rows); the layer-major order is kept."""
        keep = ~done
        keep_rows = np.concatenate([keep[s:] for s in self.starts.tolist()])
        self.rows = self.rows[keep_rows]
        self.nbs = self.nbs[keep_rows]
        self.atoms = self.atoms[keep]
        self.counts = self.counts[keep]
        self.alive = self.alive[keep]
        self.n_alive = int(self.alive.sum())
        self.dead_rows = 0
        self._layout()


def shell_samples(centre, reject_xyz, radius: float) -> np.ndarray:
    """The sample points (k, 3) MapQ keeps around one atom on one shell (for inspection, tests).

    ``centre`` (3,) is the atom, ``reject_xyz`` (m, 3) every atom that can reject points (it may
    include the atom itself), ``radius`` the shell radius in Å (use the values of
    :func:`~deepqs.qscore.sphere.shell_radii` to match MapQ).  Empty when all 50 tries fail.
    """
    c = np.asarray(centre, dtype=np.float64).reshape(1, 3)
    scorer = QScorer(None, reject_xyz, radii=[float(radius)])
    _, pts = scorer._shell_points(c, scorer.pairs(c), float(radius))
    return pts


# ------------------------------------------------------------------------------ parallel chunks
_JOB = None   # (scorer, centres, order) handed to forked workers


def _chunk_job(bounds):
    scorer, centres, order = _JOB
    s0, s1 = bounds
    return bounds, scorer._score_chunk(centres[order[s0:s1]])


def _run_chunks(scorer, centres, order, bounds, workers):
    """Yield ``(bounds, q)`` per chunk, computed here, in forked processes or in threads."""
    global _JOB
    if workers <= 1 or len(bounds) <= 1:
        for b in bounds:
            yield b, scorer._score_chunk(centres[order[b[0]:b[1]]])
        return
    import multiprocessing
    workers = min(workers, len(bounds))
    if "fork" in multiprocessing.get_all_start_methods():
        _JOB = (scorer, centres, order)
        try:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for item in pool.imap_unordered(_chunk_job, bounds):
                    yield item
        finally:
            _JOB = None
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:   # pragma: no cover - no fork
        futures = [pool.submit(lambda b=b: (b, scorer._score_chunk(centres[order[b[0]:b[1]]])))
                   for b in bounds]
        for f in futures:
            yield f.result()


def _dist2(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Squared distances summed as MapQ sums them (x, then y, then z), float64."""
    v = p - x
    return (v[:, 0] * v[:, 0] + v[:, 1] * v[:, 1]) + v[:, 2] * v[:, 2]


def _correlation(n0, centre_val, s_n, s_v, s_vv, s_vg, s_g, s_gg) -> np.ndarray:
    """Pearson correlation from running sums; the centre value counts ``n0`` times at g = 1."""
    n = n0 + s_n
    s_g = s_g + n0
    s_gg = s_gg + n0
    cov = s_vg - s_v * s_g / n
    var_v = s_vv - s_v * s_v / n
    var_g = s_gg - s_g * s_g / n
    # A flat map: values that differ by no more than float32 interpolation rounding (FLAT_ULPS
    # ulps of their size) have no variance to correlate.
    scale = np.abs(centre_val) + np.sqrt(np.maximum(s_vv, 0.0) / n)
    var_v = np.where(var_v <= n * (FLAT_ULPS * FLOAT32_EPS * scale) ** 2, 0.0, var_v)
    den = var_v * var_g
    ok = (var_v > 0) & (var_g > 0) & (den > 0)
    q = np.zeros_like(n)
    q[ok] = cov[ok] / np.sqrt(den[ok])
    return np.clip(q, -1.0, 1.0)


def _spatial_order(xyz: np.ndarray) -> np.ndarray:
    """Atom order along a coarse 3D grid (8 Å cells, z-y-x), so that chunks are compact."""
    if xyz.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    cell = np.floor((xyz - xyz.min(axis=0)) / 8.0).astype(np.int64)
    dims = cell.max(axis=0) + 1
    key = (cell[:, 2] * dims[1] + cell[:, 1]) * dims[0] + cell[:, 0]
    return np.argsort(key, kind="stable")
