"""Picking benchmark: ``python benchmarks/bench_picking.py [--model M.pt] [--threads N] [--json OUT]``.

Prints, for a picking model (default: the shipped ``deepqs/weights/picking_default.pt``):

1. quality on held-out simulated micrographs (``picking_sets.simulated("test")``: seeds never
   used in training) with the model's "auto" threshold: precision, recall, F1, F2 and average
   precision at 0.5x and 1.0x the particle radius (Hungarian one-to-one matching);
2. the same on the cryoppp_dev test split (per EMPIAR id and pooled), when the shared data exist;
3. speed: a 4096 x 4096 float32 MRC micrograph picked end to end (read, downsample, score with
   the 4-rotation average, NMS, std filter, write the CSV) on the CPU with ``--threads`` torch
   threads, for particle diameters of 60, 100 and 200 px; and micrographs/s on CUDA when available.

``--small-train`` adds the issue's few-label bar: models made from at most 200 labelled particles
of simulated micrographs (4 micrographs of 50), tested on 6 other simulated micrographs of the same
particle kind: (a) trained from scratch as ``deepqs pick train`` does it without ``--init`` (the few-label
recipe: 40 epochs, patience 8, see :mod:`deepqs.picking.train`); (b) "recalibrated": the shipped general model with its
auto threshold re-chosen as the max-F2 point on the 4 labelled micrographs (no weight change);
(c) "retrained": DeepEM's iterative retraining as ``deepqs pick train --init`` does it: the shipped model
fine-tuned on those labels (1 of the 4 micrographs held out, low learning rate, early convolutions and
BatchNorm statistics fixed), one round of hard negatives mined on the training micrographs, threshold =
max F2 on the 4 labelled micrographs; ``procedure_result``: the model the procedure returns (the shipped
weights when they do at least as well on the held-out micrograph).

Every simulated set also reports ``picks_on_junk`` / ``junk_fraction``: picks whose centre lies on the
simulator's junk mask (ice blobs, carbon, aggregates).  ``demo_micrographs`` are the 3 micrographs of
``deepqs demo`` (1024 x 1024, ice blobs, a carbon edge, aggregates).  ``pure_noise``: picks of the model
(auto threshold) on 4096 x 4096 Gaussian noise (white, and low-passed), particle diameter 100 px.
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
    if any(getattr(m, "junk_mask", None) is not None for m in mics):
        on = 0
        for p, m in zip(picks, mics):
            if m.junk_mask is not None and len(p):
                r = np.clip(np.rint(p.y).astype(int), 0, m.junk_mask.shape[0] - 1)
                c = np.clip(np.rint(p.x).astype(int), 0, m.junk_mask.shape[1] - 1)
                on += int(m.junk_mask[r, c].sum())
        n = sum(len(p) for p in picks)
        out["picks_on_junk"] = on
        out["junk_fraction"] = round(on / n, 4) if n else 0.0
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


def pure_noise(model, size=4096, diameter=100.0):
    from scipy import ndimage

    rng = np.random.default_rng(1)
    out = {}
    for name, sigma in (("white", 0.0), ("lowpass", 1.5)):
        img = rng.standard_normal((size, size)).astype(np.float32)
        if sigma:
            img = ndimage.gaussian_filter(img, sigma)
        p = pick_prepared(model, prepare_array(img, diameter), threshold="auto")
        out[f"{name}_picks"] = len(p)
        out[f"{name}_peaks"] = p.n_peaks
    out["particles_that_would_fit"] = int(size * size / (np.pi * (diameter / 2) ** 2))
    return out


def demo_micrographs():
    from deepqs.io import atoms_from_structure
    from deepqs.simulate import build_protein_model, simulate_micrographs

    atoms = atoms_from_structure(build_protein_model(n_residues=120, seed=0))
    ms = simulate_micrographs(n=3, shape=(1024, 1024), pixel_size=1.0, n_particles=30, atoms=atoms, seed=0,
                              junk=["ice_blobs", "carbon_edge", "aggregates"])
    d = float(np.ptp(atoms.xyz, axis=0).max())          # the diameter the demo gives to 'deepqs pick' (1 Å/px)
    return [picking_sets.LabelledMicrograph(f"demo{i}", m.image, m.coordinates, d, "demo", m.junk_mask)
            for i, m in enumerate(ms)]


def few_label_sets():
    from deepqs.simulate.micrographs import simulate_micrographs

    tr = simulate_micrographs(4, (512, 512), pixel_size=2.0, n_particles=50, seed=11, snr=0.1,
                              junk=["ice_blobs", "aggregates"])
    te = simulate_micrographs(6, (512, 512), pixel_size=2.0, n_particles=50, seed=12, snr=0.1,
                              junk=["ice_blobs", "aggregates"])
    mics = [picking_sets.LabelledMicrograph(f"t{i}", m.image, m.coordinates, m.particle_diameter_px, "sim",
                                            m.junk_mask) for i, m in enumerate(te)]
    return tr, mics


def few_label_recalibrate(model_path, device="cpu"):
    """The shipped model, auto threshold = max F2 on the <= 200 labelled particles' micrographs."""
    from deepqs.picking.train import TrainingExample, calibrate_threshold

    tr, mics = few_label_sets()
    ex, n = [], 0
    for m in tr:
        take = m.coordinates[: max(0, min(len(m.coordinates), 200 - n))]
        n += len(take)
        ex.append(TrainingExample(prepare_array(m.image, m.particle_diameter_px), take))
    model = load_model(model_path)
    model.threshold, _ = calibrate_threshold(model, ex, device)
    return {"labelled_particles": n, "threshold": round(model.threshold, 4), **quality(model, mics, device)}


def few_label_retrain(model_path, device="cpu", rounds=1):
    """Fine-tuning of the shipped model on <= 200 labels, as ``deepqs pick train --init`` does it
    (:func:`finetune_picker`: 1 of the 4 labelled micrographs held out, lr 1e-4, the first 4 convolutions and
    the BatchNorm statistics fixed, early stopping on the held-out AP, one hard-negative round, threshold = max
    F2 on the 4 labelled micrographs).  Reports the fine-tuned model and the model the procedure returns (the
    shipped weights are kept when they do at least as well on the held-out micrograph)."""
    from deepqs.picking.train import TrainConfig, TrainingExample, finetune_picker

    tr, mics = few_label_sets()
    ex, n = [], 0
    for m in tr:
        take = m.coordinates[: max(0, min(len(m.coordinates), 200 - n))]
        n += len(take)
        ex.append(TrainingExample(prepare_array(m.image, m.particle_diameter_px), take))
    base = load_model(model_path)
    cfg = TrainConfig(epochs=30, lr=1e-4, seed=0, patience=5, device=device, progress=False, select_by="ap",
                      freeze_convs=4, freeze_bn_stats=True, score_stride_px=base.score_stride_px)
    res = finetune_picker(ex, base, cfg, mine_rounds=rounds, keep_init=False)
    kept = finetune_picker(ex, base, cfg, mine_rounds=rounds, keep_init=True)
    return {"labelled_particles": n, "hard_negatives": res.n_mined, "threshold": round(res.model.threshold, 4),
            **quality(res.model, mics, device),
            "procedure_kept": kept.kept, "procedure_heldout_f2": {k: round(v, 4) for k, v in kept.heldout_f2.items()},
            "procedure_result": quality(kept.model, mics, device)}


def cryoppp_retrain(model_path, device="cpu", rounds=1):
    """Per EMPIAR id: the shipped model retrained on the train split (4 micrographs), early stopping and
    threshold (max F2) on the valid split, one hard-negative round on the train split; tested on the test split."""
    from dataclasses import replace

    from deepqs.picking.train import TrainConfig, TrainingExample, mine_hard_negatives, train_picker

    out, models, tests = {}, [], []
    for eid in sorted(picking_sets.CRYOPPP_DIAMETER_PX):
        tr = [TrainingExample(prepare_array(m.image, m.diameter_px, path=m.name), m.coordinates)
              for m in picking_sets.cryoppp("train", eid)]
        va = [TrainingExample(prepare_array(m.image, m.diameter_px, path=m.name), m.coordinates)
              for m in picking_sets.cryoppp("valid", eid)]
        te = picking_sets.cryoppp("test", eid)
        if not tr or not va or not te:
            continue
        base = load_model(model_path)
        cfg = TrainConfig(epochs=12, lr=3e-4, seed=0, patience=4, device=device, progress=False,
                          score_stride_px=base.score_stride_px, select_by="ap", max_windows_per_epoch=4096)
        res = train_picker(tr, cfg, init=base, val_examples=va)
        for r in range(rounds):
            tr, _ = mine_hard_negatives(res.model, tr, min_score=0.1, max_per_micrograph=300)
            res = train_picker(tr, replace(cfg, seed=r + 1), init=res.model, val_examples=va)
        out[f"cryoppp_test_{eid}_retrained"] = {"micrographs": len(te), "threshold": round(res.model.threshold, 4),
                                                **quality(res.model, te, device)}
        models.append(res.model)
        tests.append(te)
    if models:
        picks_all = {}
        for f in (0.5, 1.0):
            matches = []
            for model, te in zip(models, tests):
                for m in te:
                    p = pick_prepared(model, prepare_array(m.image, m.diameter_px, path=m.name), threshold="auto",
                                      device=device)
                    matches.append(match_picks(np.stack([p.x, p.y], 1), m.coordinates, f * m.diameter_px / 2,
                                               p.score))
            ev = evaluate_many(matches, f)
            picks_all[f"{f:g}x_radius"] = {k: round(v, 4) if isinstance(v, float) else v
                                           for k, v in ev.as_dict().items() if k != "radius_px"}
        out = {"cryoppp_test_retrained": {"micrographs": sum(len(t) for t in tests), **picks_all}, **out}
    return out


def small_train(device="cpu"):
    from deepqs.picking.train import TrainConfig, TrainingExample, train_picker

    tr, mics = few_label_sets()
    ex, n = [], 0
    for m in tr:
        take = m.coordinates[: max(0, min(len(m.coordinates), 200 - n))]
        n += len(take)
        ex.append(TrainingExample(prepare_array(m.image, m.particle_diameter_px), take))
    res = train_picker(ex, TrainConfig(epochs=40, seed=0, patience=8, device=device, progress=False))
    return {"labelled_particles": n, "few_label_recipe": res.few_label_recipe, **quality(res.model, mics, device)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--n-sim", type=int, default=12)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--small-train", action="store_true")
    ap.add_argument("--retrain-real", action="store_true",
                    help="also retrain the model per cryoppp_dev data set on its train split (DeepEM retraining)")
    ap.add_argument("--json", help="also write the figures as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    report = {"model": os.path.relpath(args.model), "architecture": model.net.architecture,
              "threshold": round(model.threshold, 4), "torch_threads": args.threads}
    report["simulated_test"] = {"micrographs": args.n_sim, **quality(model, picking_sets.simulated("test", args.n_sim))}
    report["demo_micrographs"] = {"micrographs": 3, **quality(model, demo_micrographs())}
    report["pure_noise_4096"] = pure_noise(model)
    real = picking_sets.cryoppp("test")
    if real:
        report["cryoppp_test"] = {"micrographs": len(real), **quality(model, real)}
        for eid in sorted(picking_sets.CRYOPPP_DIAMETER_PX):
            sub = [m for m in real if m.source == f"cryoppp_{eid}"]
            report[f"cryoppp_test_{eid}"] = {"micrographs": len(sub), **quality(model, sub)}
    if real and args.retrain_real:
        report.update(cryoppp_retrain(args.model))
    if not args.skip_speed:
        report["speed_4096_cpu"] = speed(args.model)
        if torch.cuda.is_available():
            report["speed_4096_cuda"] = speed(args.model, device="cuda", repeats=3)
    if args.small_train:
        report["simulated_few_labels_scratch"] = small_train()
        report["simulated_few_labels_recalibrated"] = few_label_recalibrate(args.model)
        report["simulated_few_labels_retrained"] = few_label_retrain(args.model)
        report["simulated_few_labels_procedure"] = {
            "kept": report["simulated_few_labels_retrained"]["procedure_kept"],
            **report["simulated_few_labels_retrained"].pop("procedure_result")}
    print(f"model {report['model']} ({report['architecture']}, auto threshold {report['threshold']})")
    print(f"{'set':28s} {'radius':>7s} {'picks':>6s} {'true':>6s} {'P':>6s} {'R':>6s} {'F1':>6s} {'F2':>6s} {'AP':>6s}")
    for key, val in report.items():
        if isinstance(val, dict) and "0.5x_radius" in val:
            for r in ("0.5x_radius", "1x_radius"):
                v = val[r]
                print(f"{key:28s} {r.split('_')[0]:>7s} {v['n_picks']:6d} {v['n_truth']:6d} {v['precision']:6.3f} "
                      f"{v['recall']:6.3f} {v['f1']:6.3f} {v['f2']:6.3f} {v['average_precision']:6.3f}")
    for key, val in report.items():
        if isinstance(val, dict) and "picks_on_junk" in val:
            print(f"{key}: {val['picks_on_junk']} picks on junk ({100 * val['junk_fraction']:.1f} % of the picks)")
    print(f"pure noise 4096 x 4096 (diameter 100 px, auto threshold): {report['pure_noise_4096']}")
    for key in ("speed_4096_cpu", "speed_4096_cuda"):
        if key in report:
            print(f"{key} (end to end, {args.threads} torch threads): {report[key]}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
