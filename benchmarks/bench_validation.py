"""Validation report benchmark: the whole report for a 200³ map with half maps and a model.

A C4 assembly of the procedural 200-residue protein (about 800 residues, 6,000 atoms) is
simulated at ``--resolution`` Å on a ``--size``³ grid of ``--voxel`` Å with two half maps; the
files are written to a temporary folder and the report is made as ``deepqs validate`` makes it
(read the inputs, every check of levels 0, 1 and A, write HTML, JSON, figures and the local
resolution map).  Prints the time of each check and the total (inputs read and report written
included; the simulation is not part of it).

Usage: python benchmarks/bench_validation.py [--size 200] [--voxel 1.0] [--resolution 3.5]
       [--threads 2] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--voxel", type=float, default=1.0)
    ap.add_argument("--resolution", type=float, default=3.5)
    ap.add_argument("--threads", type=int, default=2, help="torch and Q-score threads")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from deepqs.io import atoms_from_structure, write_map, write_model
    from deepqs.simulate import build_protein_model, simulate_map
    from deepqs.simulate.protein import build_assembly
    from deepqs.validation.inputs import load_inputs
    from deepqs.validation.report import write_report
    from deepqs.validation.runner import validate

    t = time.time()
    st = build_assembly(build_protein_model(200, seed=0), n_copies=4, seed=0)
    atoms = atoms_from_structure(st)
    n = args.size
    sim = simulate_map(atoms, voxel_size=args.voxel, resolution=args.resolution, seed=0, shape=(n, n, n),
                       global_B=60.0)
    d = sim.map.data
    res_vol = len(np.unique(np.char.add(atoms.chain.astype(str), atoms.resseq.astype(str)))) * 110 * 1.207
    thr = float(np.sort(d.ravel())[::-1][int(res_vol / args.voxel ** 3)])
    t_sim = time.time() - t
    with tempfile.TemporaryDirectory() as tmp:
        paths = {k: os.path.join(tmp, f"{k}.mrc") for k in ("map", "half1", "half2")}
        write_map(paths["map"], sim.map)
        write_map(paths["half1"], sim.half1)
        write_map(paths["half2"], sim.half2)
        model = os.path.join(tmp, "model.cif")
        write_model(model, st)
        t0 = time.time()
        inp = load_inputs(paths["map"], thr, args.resolution, half1=paths["half1"], half2=paths["half2"],
                          model=model)
        t_read = time.time() - t0
        result = validate(inp)
        t1 = time.time()
        doc = write_report(result, os.path.join(tmp, "report"))
        t_write = time.time() - t1
        total = time.time() - t0
    print(f"map {n}^3 at {args.voxel:g} Å, {len(atoms)} atoms, resolution {args.resolution:g} Å, "
          f"{args.threads} thread(s); simulation {t_sim:.1f} s (not counted)")
    print(f"{'check':6s} {'status':15s} {'seconds':>8s}  name")
    print(f"{'-':6s} {'':15s} {t_read:8.1f}  read inputs")
    for c in result.checks:
        print(f"{c.id:6s} {c.status:15s} {c.seconds:8.1f}  {c.name}")
    print(f"{'-':6s} {'':15s} {t_write:8.1f}  write report (HTML, JSON, figures, local resolution map)")
    print(f"total {total:.1f} s; levels {doc['levels_text']}; {doc['score']['text']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"size": n, "voxel_A": args.voxel, "resolution_A": args.resolution, "threads": args.threads,
                       "atoms": len(atoms), "seconds_total": total, "seconds_read": t_read, "seconds_write": t_write,
                       "checks": {c.id: {"status": c.status, "seconds": c.seconds} for c in result.checks},
                       "levels": doc["levels"], "score": doc["score"]}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
