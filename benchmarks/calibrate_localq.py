"""Fit the output calibration of the local-Q weights on simulated calibration maps.

Two steps:

``collect``: simulated maps (``deepqs.localq.dataset.simulate_example``, the training variants,
48³ crops, R ~ U(2, 8) Å) of *calibration* structures, predicted with the **raw** network
(``predict_localq(..., calibrate=False)``); per map one JSON line with the resolution, the
structure, the median raw prediction at the atoms (trilinear, as ``bench_localq.py``) and the
median true Q of the same atoms, and a few quantiles.  Calibration structures are disjoint
from the benchmark's held-out test structures (the validation split, seed 0, of
``list_structures()``) and never 7CEC:

* ``unseen``: protein models of ``../shared/data/structures`` that neither training nor the
  benchmark uses (the protein part of protein/nucleic-acid complexes; protein-only models of
  150-300 atoms), never 7CEC;
* ``procedural``: ``deepqs.simulate.build_protein_model`` models (int seeds 5000+);
* ``train``: the training split's structures with new map seeds (the network has seen these
  structures, not these maps).

Seeds: map ``i`` of source set ``S`` uses ``np.random.default_rng([7919, tag(S), i])`` (the
training data use ``[0, k]`` / ``[10**6, k]``, the benchmark ``[99, lo, j]``).

``fit``: :func:`deepqs.localq.calibration.fit_median_calibration` on the collected pairs (maps
with >= 200 atoms); the smoothness weight is the largest of ``--smooth`` whose 5-fold
cross-validated mean |median diff| (folds grouped by structure) is within 5 % of the best;
``--write W.pt`` stores it in the header of a copy of the weights (key ``calibration``).

Usage::

    python benchmarks/calibrate_localq.py collect --set unseen --n 40 --out cal.jsonl [--threads 1]
    python benchmarks/calibrate_localq.py fit cal.jsonl [...] [--write OUT.pt] [--weights IN.pt]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

AMINO = {"ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE", "LEU", "LYS", "MET", "PHE",
         "PRO", "SER", "THR", "TRP", "TYR", "VAL", "MSE"}
SET_TAGS = {"unseen": 1, "procedural": 2, "train": 3}


def calibration_sources(which: str):
    """Source list of a calibration set (paths or int seeds); never test structures nor 7CEC."""
    from deepqs.localq import dataset as D
    from deepqs.localq.train import split_sources
    usable = D.list_structures()
    train, held = split_sources(usable or list(range(20)), 0.1, 0)
    if which == "train":
        return list(train)
    if which == "procedural":
        return list(range(5000, 5040))
    folder = D.default_structures_dir()
    rows = list(csv.DictReader(open(folder / "index.csv", newline="")))
    pid = {r["file"]: (r.get("pdb_id") or "").upper() for r in rows}
    used = {os.path.basename(p) for p in usable}
    used_ids = {pid.get(f, "") for f in used} - {""}
    out = []
    for r in rows:
        f, p = r["file"], pid[r["file"]]
        if f in used or p in used_ids or p in {s.upper() for s in D.EXCLUDED_PDB_IDS} or "7CEC" in f.upper():
            continue
        if r.get("has_protein") != "1":
            continue
        try:
            n = int(r.get("n_atoms_nonH") or 0)
        except ValueError:
            continue
        if n < 150:
            continue
        out.append(str(folder / f))
    return sorted(out)


def protein_atoms(src):
    from deepqs.localq import dataset as D
    at = D.load_structure_atoms(src)
    keep = np.isin(at.resname.astype(str), list(AMINO))
    return at.select(keep)


def collect(args) -> int:
    import torch
    torch.set_num_threads(args.threads)
    from bench_localq import figures, sample_at_atoms
    from deepqs.localq import dataset as D
    from deepqs.localq.predict import load_localq_network, predict_localq
    srcs = calibration_sources(args.set)
    if not srcs:
        print("no calibration sources", file=sys.stderr)
        return 1
    nh = load_localq_network(args.weights)
    done = set()
    if os.path.exists(args.out):
        for line in open(args.out):
            if line.strip():
                done.add(json.loads(line)["index"])
    cache = {}
    tag = SET_TAGS[args.set]
    for i in range(args.start, args.start + args.n):
        if i in done:
            continue
        t = time.time()
        rng = np.random.default_rng([7919, tag, i])
        src = srcs[int(rng.integers(len(srcs)))] if args.set != "unseen" else srcs[i % len(srcs)]
        if src not in cache:
            if len(cache) > 16:
                cache.clear()
            cache[src] = protein_atoms(src)
        R = float(rng.uniform(args.rmin, args.rmax))
        ex = D.simulate_example(cache[src], rng, resolution=R, crop=48)
        r = predict_localq(ex.map, mask=np.ones(ex.map.shape, bool), network=nh, tile=64, batch=1, calibrate=False)
        pred = sample_at_atoms(r.localq, ex.atoms.xyz)
        f = figures(ex.atoms, ex.q, pred)
        ok = np.isfinite(ex.q) & np.isfinite(pred)
        qs = [10, 25, 50, 75, 90]
        row = {"set": args.set, "index": i, "structure": Path(str(src)).name, "resolution_A": R,
               "n_atoms": int(ok.sum()), "median_raw": f["median_pred"], "median_true": f["median_true"],
               "pearson_residue_raw": f["pearson_residue"],
               "quantiles_raw": [float(v) for v in np.percentile(pred[ok], qs)],
               "quantiles_true": [float(v) for v in np.percentile(ex.q[ok], qs)],
               "seconds": time.time() - t}
        with open(args.out, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"{args.set} {i}: {row['structure']} R {R:.2f} raw {row['median_raw']:.3f} true "
              f"{row['median_true']:.3f} ({row['seconds']:.1f} s)", flush=True)
    return 0


def read_rows(paths):
    rows = []
    for p in paths:
        for line in open(p):
            if line.strip():
                rows.append(json.loads(line))
    return rows


def fit(args) -> int:
    from deepqs.localq.calibration import fit_median_calibration
    rows = read_rows(args.data)
    rows = [r for r in rows if r["n_atoms"] >= args.min_atoms]
    x = np.array([r["median_raw"] for r in rows])
    y = np.array([r["median_true"] for r in rows])
    R = np.array([r["resolution_A"] for r in rows])
    knots = [float(v) for v in args.knots.split(",")]
    groups = np.array([r["structure"] for r in rows])
    names = sorted(set(groups))
    fold = {g: i % args.folds for i, g in enumerate(np.random.default_rng(0).permutation(names))}
    fid = np.array([fold[g] for g in groups])
    cv = {}
    for sm in [float(v) for v in args.smooth.split(",")]:
        pred = np.empty_like(y)
        for f in range(args.folds):
            te = fid == f
            c = fit_median_calibration(x[~te], y[~te], knots=knots, smooth=sm)
            pred[te] = np.interp(x[te], c["x"], c["y"])
        cv[sm] = float(np.mean(np.abs(pred - y)))
        low = R < 4
        print(f"smooth {sm:g}: {args.folds}-fold CV (grouped by structure) mean |median diff| {cv[sm]:.4f} "
              f"(R < 4 A: {np.mean(np.abs(pred[low] - y[low])):.4f}, signed {np.mean(pred[low] - y[low]):+.4f}); "
              f"raw {np.mean(np.abs(x - y)):.4f} (R < 4 A: {np.mean(np.abs(x[low] - y[low])):.4f})")
    # the smoothest fit whose cross-validated error is within 5 % of the best one (robustness)
    best = max(sm for sm, e in cv.items() if e <= 1.05 * min(cv.values()))
    print(f"chosen smooth {best:g} (smoothest within 5 % of the best CV error)")
    cal = fit_median_calibration(x, y, knots=knots, smooth=best)
    cal["fit"]["cv_mean_abs_median_diff"] = {f"{k:g}": v for k, v in cv.items()}
    fx = np.interp(x, cal["x"], cal["y"])
    print(f"{len(rows)} maps; knots x {np.round(cal['x'], 3).tolist()}\n             y {np.round(cal['y'], 3).tolist()}")
    print("bin   n  raw(pred-true) |d|   calibrated(pred-true) |d|")
    for lo, hi in [(2, 3), (3, 4), (4, 6), (6, 8)]:
        s = (R >= lo) & (R < hi)
        if s.any():
            print(f"{lo}-{hi} {s.sum():3d}  {np.mean(x[s] - y[s]):+.3f} {np.mean(np.abs(x[s] - y[s])):.3f}     "
                  f"{np.mean(fx[s] - y[s]):+.3f} {np.mean(np.abs(fx[s] - y[s])):.3f}")
    for st in sorted({r["set"] for r in rows}):
        s = np.array([r["set"] == st for r in rows])
        print(f"set {st}: n {s.sum()}, raw {np.mean(x[s] - y[s]):+.3f}, calibrated {np.mean(fx[s] - y[s]):+.3f}")
    if args.write:
        from deepqs.io.weights import load_weights, save_weights
        from deepqs.localq.predict import default_weights_path
        src = args.weights or default_weights_path()
        state, header = load_weights(src)
        cal["fitted_on"] = (f"{len(rows)} simulated calibration maps (benchmarks/calibrate_localq.py; sets "
                            + ", ".join(f"{st}: {sum(r['set'] == st for r in rows)}" for st in sorted({r['set'] for r in rows}))
                            + "; 48^3 crops, training variants, R ~ U(2, 8) A); structures disjoint from the "
                            "benchmark's held-out test structures; 7CEC never used")
        cal["target"] = "median true Q at the atoms of a map vs median raw prediction (least squares, monotone)"
        header["calibration"] = cal
        save_weights(args.write, state, header)
        print(f"wrote {args.write}")
    if args.json:
        Path(args.json).write_text(json.dumps(cal, indent=2) + "\n")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--set", choices=sorted(SET_TAGS), required=True)
    c.add_argument("--n", type=int, default=40)
    c.add_argument("--start", type=int, default=0)
    c.add_argument("--rmin", type=float, default=2.0)
    c.add_argument("--rmax", type=float, default=8.0)
    c.add_argument("--weights", default=None)
    c.add_argument("--threads", type=int, default=1)
    c.add_argument("--out", required=True)
    f = sub.add_parser("fit")
    f.add_argument("data", nargs="+")
    f.add_argument("--knots", default="0.0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8")
    f.add_argument("--smooth", default="0.001,0.003,0.01,0.03,0.1,0.3,1,10,100",
                   help="smoothness weights tried; the smoothest within 5 %% of the best grouped "
                        "cross-validation error is used")
    f.add_argument("--folds", type=int, default=5)
    f.add_argument("--min-atoms", type=int, default=200)
    f.add_argument("--weights", default=None)
    f.add_argument("--write", default=None)
    f.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    return collect(args) if args.cmd == "collect" else fit(args)


if __name__ == "__main__":
    raise SystemExit(main())
