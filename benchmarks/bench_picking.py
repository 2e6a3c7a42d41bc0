"""Picking benchmark: ``python benchmarks/bench_picking.py [--model M.pt] [--threads N] [--json OUT]``.

Prints, for a picking model (default: the shipped ``deepqs/weights/picking_default.pt``):

1. quality on held-out simulated micrographs (``picking_sets.simulated("test")``: seeds never
   used in training) with the model's "auto" threshold: precision, recall, F1, F2 and average
   precision at 0.5x and 1.0x the particle radius (Hungarian one-to-one matching);
2. the same on the cryoppp_dev test split (per EMPIAR id and pooled), when the shared data exist;
3. speed: a 4096 x 4096 float32 MRC micrograph picked end to end (read, downsample, score with
   the 4-rotation average, NMS, std filter, write the CSV) on the CPU with ``--threads`` torch
   threads, for particle diameters of 60, 100 and 200 px; and micrographs/s on CUDA when available.

``--small-train`` adds the issue's few-label bar: a model trained from scratch on at most 200
labelled particles of simulated micrographs, tested on other simulated micrographs of the same
particle kind.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import picking_sets  # noqa: E402

from deepqs.picking import DEFAULT_MODEL  # noqa: E402
from deepqs.picking.evaluate import evaluate_many, match_picks  # noqa: E402
from deepqs.picking.model import load_model  # noqa: E402
from deepqs.picking.pick import pick_prepared  # noqa: E402
from deepqs.picking.preprocess import prepare_array  # noqa: E402


def quality(model, mics, device="cpu", threshold="auto"):
    """Pooled figures at 0.5x and 1.0x radius."""
    picks = []
    for m in mics:
        p = pick_prepared(model, prepare_array(m.image, m.diameter_px, path=m.name), threshold=threshold,
                          device=device)
        picks.append(p)
    out = {}
    for f in (0.5, 1.0):
        matches = [match_picks(np.stack([p.x, p.y], 1), m.coordinates, f * m.diameter_px / 2, p.score)
                   for p, m in zip(picks, mics)]
        ev = evaluate_many(matches, f)
        out[f"{f:g}x_radius"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in ev.as_dict().items()
                                 if k != "radius_px"}
    return out


def speed(model_path, diameters=(60.0, 100.0, 200.0), device="cpu", repeats=2):
    from deepqs.cli import main as cli_main
    from deepqs.io import write_micrograph

    rng = np.random.default_rng(0)
    tile = picking_sets.simulated("test", 1)[0].image
    big = np.tile(tile, (8, 8)).astype(np.float32) + rng.standard_normal((4096, 4096)).astype(np.float32) * 0.1
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big4096.mrc")
        write_micrograph(path, big, 1.0)
        for d in diameters:
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                rc = cli_main(["pick", "run", "--model", model_path, "--micrographs", path, "--diameter-px", str(d),
                               "--out-dir", os.path.join(tmp, "out"), "--device", device])
                times.append(time.perf_counter() - t)
                assert rc == 0
            res[f"diameter_{d:g}px_s"] = round(min(times), 3)
    return res


def small_train(device="cpu"):
    from deepqs.picking.train import TrainConfig, TrainingExample, train_picker
    from deepqs.simulate.micrographs import simulate_micrographs

    tr = simulate_micrographs(4, (512, 512), pixel_size=2.0, n_particles=50, seed=11, snr=0.1,
                              junk=["ice_blobs", "aggregates"])
    te = simulate_micrographs(6, (512, 512), pixel_size=2.0, n_particles=50, seed=12, snr=0.1,
                              junk=["ice_blobs", "aggregates"])
    ex, n = [], 0
    for m in tr:
        take = m.coordinates[: max(0, min(len(m.coordinates), 200 - n))]
        n += len(take)
        ex.append(TrainingExample(prepare_array(m.image, m.particle_diameter_px), take))
    res = train_picker(ex, TrainConfig(epochs=40, seed=0, patience=8, device=device, progress=False))
    mics = [picking_sets.LabelledMicrograph(f"t{i}", m.image, m.coordinates, m.particle_diameter_px, "sim")
            for i, m in enumerate(te)]
    return {"labelled_particles": n, **quality(res.model, mics, device)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--n-sim", type=int, default=12)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--small-train", action="store_true")
    ap.add_argument("--json", help="also write the figures as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    report = {"model": os.path.relpath(args.model), "architecture": model.net.architecture,
              "threshold": round(model.threshold, 4), "torch_threads": args.threads}
    report["simulated_test"] = {"micrographs": args.n_sim, **quality(model, picking_sets.simulated("test", args.n_sim))}
    real = picking_sets.cryoppp("test")
    if real:
        report["cryoppp_test"] = {"micrographs": len(real), **quality(model, real)}
        for eid in sorted(picking_sets.CRYOPPP_DIAMETER_PX):
            sub = [m for m in real if m.source == f"cryoppp_{eid}"]
            report[f"cryoppp_test_{eid}"] = {"micrographs": len(sub), **quality(model, sub)}
    if not args.skip_speed:
        report["speed_4096_cpu"] = speed(args.model)
        if torch.cuda.is_available():
            report["speed_4096_cuda"] = speed(args.model, device="cuda", repeats=3)
    if args.small_train:
        report["simulated_few_labels"] = small_train()
    print(f"model {report['model']} ({report['architecture']}, auto threshold {report['threshold']})")
    print(f"{'set':28s} {'radius':>7s} {'picks':>6s} {'true':>6s} {'P':>6s} {'R':>6s} {'F1':>6s} {'F2':>6s} {'AP':>6s}")
    for key, val in report.items():
        if isinstance(val, dict) and "0.5x_radius" in val:
            for r in ("0.5x_radius", "1x_radius"):
                v = val[r]
                print(f"{key:28s} {r.split('_')[0]:>7s} {v['n_picks']:6d} {v['n_truth']:6d} {v['precision']:6.3f} "
                      f"{v['recall']:6.3f} {v['f1']:6.3f} {v['f2']:6.3f} {v['average_precision']:6.3f}")
    for key in ("speed_4096_cpu", "speed_4096_cuda"):
        if key in report:
            print(f"{key} (end to end, {args.threads} torch threads): {report[key]}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
