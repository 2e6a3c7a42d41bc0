"""DeepQs local-Q benchmark: real-map check, simulated held-out maps, CPU speed.

Prints (and with --json writes):

* real map EMD-30342 / 7CEC chain A (``../shared/data/qscore/emd30342_7cec_A``, 3.9 Å; never
  used for training): per-residue Pearson r between predicted Q (mean of the local-Q map,
  trilinear, at the residue's atoms) and true Q (deepqs.qscore, σ 0.6), and
  |median predicted - median true| over atoms;
* simulated maps of held-out structures (the validation split of training: same split rule,
  seed 0; never the training structures) per resolution bin 2-3, 3-4, 4-6, 6-8 Å, ``--sim K``
  maps per bin (default 16; each a 48³ crop around a random atom of a different held-out
  structure, at R ~ U(bin), with the training data's random variants, seeds ``[99, lo, j]``):
  per map the per-residue Pearson r and |median predicted - median true Q| over atoms; the
  table gives their mean (and worst) over the bin's maps, the signed median gap and how many
  maps meet both bars;
* time to predict a 256³ map at 1 Å/voxel on the CPU (whole box as mask: worst case), output
  calibration included.

When the weights carry an output calibration (``deepqs.localq.calibration``) the real-map and
simulated figures are given for the calibrated output (what ``deepqs localq predict`` writes) and,
from the same prediction, for the raw network output (``raw`` in the JSON).

Usage: python benchmarks/bench_localq.py [--weights W.pt] [--threads N] [--no-speed] [--sim K]
       [--no-real] [--json OUT.json]   (defaults: 11 min on 1 CPU thread of a heavily shared 2-core
       machine, 4.7 min of it the 256³ timing; less on an idle one)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "qscore" / "emd30342_7cec_A"


def sample_at_atoms(mapdata, xyz):
    """Trilinear values of ``mapdata`` at atom positions (Å); 0 outside."""
    from scipy.ndimage import map_coordinates
    idx = mapdata.xyz_to_index(xyz)[:, ::-1].T          # z, y, x
    return map_coordinates(mapdata.data, idx, order=1, mode="constant", cval=0.0)


def per_residue(atoms, values):
    keys = np.char.add(np.char.add(atoms.chain.astype(str), ":"),
                       np.char.add(atoms.resseq.astype(str), atoms.icode.astype(str)))
    _, inv = np.unique(keys, return_inverse=True)
    inv = inv.ravel()
    ok = np.isfinite(values)
    s = np.bincount(inv[ok], weights=values[ok], minlength=inv.max() + 1)
    c = np.bincount(inv[ok], minlength=inv.max() + 1)
    return s[c > 0] / c[c > 0]


def figures(atoms, q_true, q_pred):
    ok = np.isfinite(q_true) & np.isfinite(q_pred)
    rt, rp = per_residue(atoms.select(ok), q_true[ok]), per_residue(atoms.select(ok), q_pred[ok])
    return {"pearson_residue": float(np.corrcoef(rt, rp)[0, 1]),
            "pearson_atom": float(np.corrcoef(q_true[ok], q_pred[ok])[0, 1]),
            "median_true": float(np.median(q_true[ok])), "median_pred": float(np.median(q_pred[ok])),
            "abs_median_diff": float(abs(np.median(q_true[ok]) - np.median(q_pred[ok]))),
            "median_diff": float(np.median(q_pred[ok]) - np.median(q_true[ok])),
            "n_residues": int(rt.size)}


def predict_both(m, net_header, tile, batch):
    """(calibrated, raw) local-Q maps from one prediction (raw: ``calibrate=False``; the calibrated
    map is exactly what ``predict_localq`` returns: the calibration applied to the mask voxels)."""
    from deepqs.localq.calibration import apply_calibration, calibration_from_header
    from deepqs.localq.predict import predict_localq
    r = predict_localq(m, mask=np.ones(m.shape, bool), network=net_header, tile=tile, batch=batch, calibrate=False)
    cal = calibration_from_header(net_header[1])
    if cal is None:
        return r.localq, None
    q = r.localq.data.copy()
    q[r.mask] = apply_calibration(q[r.mask], cal)
    return r.localq.with_data(q), r.localq


def real_check(net_header, tile, batch):
    from deepqs.io import atoms_from_structure, read_map, read_model
    from deepqs.qscore import compute_qscores
    m = read_map(REAL / "map.mrc")
    st = read_model(REAL / "model.cif")
    st.remove_hydrogens()
    at = atoms_from_structure(st)
    q_true = compute_qscores(m, at, sigma=0.6).q
    t = time.time()
    lq, raw = predict_both(m, net_header, tile, batch)
    out = figures(at, q_true, sample_at_atoms(lq, at.xyz))
    out["seconds"] = time.time() - t
    if raw is not None:
        out["raw"] = figures(at, q_true, sample_at_atoms(raw, at.xyz))
    return out


def simulated_check(net_header, k, tile, batch):
    from deepqs.localq import dataset as D
    from deepqs.localq.train import split_sources
    _, held = split_sources(D.list_structures() or list(range(20)), 0.1, 0)
    bins = [(2, 3), (3, 4), (4, 6), (6, 8)]
    out = {}
    atoms_cache = {}
    for b, (lo, hi) in enumerate(bins):
        rows = []
        for j in range(k):
            rng = np.random.default_rng([99, lo, j])
            src = held[(b * k + j) % len(held)]        # different held-out structures across the bins
            if src not in atoms_cache:
                atoms_cache[src] = D.load_structure_atoms(src)
            R = float(rng.uniform(lo, hi))
            ex = D.simulate_example(atoms_cache[src], rng, resolution=R, crop=48)
            lq, raw = predict_both(ex.map, net_header, tile, batch)
            f = figures(ex.atoms, ex.q, sample_at_atoms(lq, ex.atoms.xyz))
            f.update(resolution_A=R, structure=Path(str(src)).name)
            if raw is not None:
                f["raw"] = figures(ex.atoms, ex.q, sample_at_atoms(raw, ex.atoms.xyz))
            rows.append(f)
        out[f"{lo}-{hi}"] = bin_summary(rows, k)
        if rows and "raw" in rows[0]:
            out[f"{lo}-{hi}"]["raw"] = bin_summary([r["raw"] for r in rows], k)
    return out


def bin_summary(rows, k):
    pr = np.array([r["pearson_residue"] for r in rows])
    md = np.array([r["abs_median_diff"] for r in rows])
    return {"pearson_residue": float(np.mean(pr)), "pearson_residue_min": float(pr.min()),
            "abs_median_diff": float(np.mean(md)), "abs_median_diff_max": float(md.max()),
            "median_diff": float(np.mean([r["median_diff"] for r in rows])),
            "n_maps": k, "n_maps_meeting_bars": int(np.sum((pr >= 0.7) & (md <= 0.05))),
            "maps": rows}


def simulated_table(sim, raw: bool = False) -> str:
    """Markdown table of :func:`simulated_check`'s result (``raw``: the uncalibrated figures)."""
    if raw:
        sim = {b: r["raw"] for b, r in sim.items() if "raw" in r}
    lines = ["| bin (Å) | maps | per-residue r mean (min) | \\|Δmedian\\| mean (max) | median pred − true | maps meeting both bars |",
             "|---|---|---|---|---|---|"]
    for b, r in sim.items():
        lines.append(f"| {b} | {r['n_maps']} | {r['pearson_residue']:.3f} ({r['pearson_residue_min']:.3f}) | "
                     f"{r['abs_median_diff']:.3f} ({r['abs_median_diff_max']:.3f}) | {r['median_diff']:+.3f} | "
                     f"{r['n_maps_meeting_bars']}/{r['n_maps']} |")
    return "\n".join(lines)


def speed(net_header, tile, batch, n=256):
    from deepqs.io.mapdata import MapData
    from deepqs.localq.predict import predict_localq
    rng = np.random.default_rng(0)
    data = rng.standard_normal((n, n, n)).astype(np.float32)
    m = MapData(data, 1.0, (0.0, 0.0, 0.0))
    t = time.time()
    predict_localq(m, mask=np.ones(m.shape, bool), network=net_header, tile=tile, batch=batch)
    return time.time() - t


def main(argv=None) -> int:
    import torch
    from deepqs.localq.predict import load_localq_network
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--tile", type=int, default=None)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--sim", type=int, default=16,
                    help="simulated maps per resolution bin (0: skip)")
    ap.add_argument("--no-real", action="store_true", help="skip the real-map check")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    nh = load_localq_network(args.weights)
    res = {"weights": args.weights or "shipped default", "torch_threads": torch.get_num_threads()}
    if REAL.is_dir() and not args.no_real:
        res["real_emd30342_7cec_A"] = real_check(nh, args.tile, args.batch)
        r = res["real_emd30342_7cec_A"]
        print(f"EMD-30342/7CEC A: per-residue r {r['pearson_residue']:.3f} (bar >= 0.7), per-atom r "
              f"{r['pearson_atom']:.3f}, median pred {r['median_pred']:.3f} vs true {r['median_true']:.3f} "
              f"-> |diff| {r['abs_median_diff']:.3f} (bar <= 0.05)")
        if "raw" in r:
            w = r["raw"]
            print(f"  raw network output (no calibration): per-residue r {w['pearson_residue']:.3f}, per-atom r "
                  f"{w['pearson_atom']:.3f}, median pred {w['median_pred']:.3f} -> |diff| {w['abs_median_diff']:.3f}")
    if args.sim:
        res["simulated_held_out"] = simulated_check(nh, args.sim, args.tile, args.batch)
        print("simulated held-out maps (bars per bin: per-residue r >= 0.7, |median diff| <= 0.05):")
        print(simulated_table(res["simulated_held_out"]))
        if any("raw" in r for r in res["simulated_held_out"].values()):
            print("raw network output (no calibration):")
            print(simulated_table(res["simulated_held_out"], raw=True))
    if not args.no_speed:
        res["seconds_256_cpu"] = speed(nh, args.tile, args.batch)
        print(f"256^3 map on CPU ({torch.get_num_threads()} threads, tile {args.tile or 'auto'}): "
              f"{res['seconds_256_cpu']:.1f} s (bar <= 60 s)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
