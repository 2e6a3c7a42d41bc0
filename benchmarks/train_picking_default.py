"""Train the shipped general picking model: ``python benchmarks/train_picking_default.py [--minutes M]``.

Training data: simulated micrographs (``picking_sets.simulated("train")``) plus the cryoppp_dev
train split; validation (early stopping, "auto" threshold): simulated "val" micrographs plus the
cryoppp_dev valid split.  One CPU thread by default.  Writes ``deepqs/weights/picking_default.pt``.

Negatives besides the random and ring ones of :func:`train_picker`: positions on the simulated junk
(ice blobs, aggregates, carbon; from the simulator's junk mask), ``--n-noise`` particle-free
micrographs (white and coloured Gaussian noise, so that pure noise gives no picks), and
``--mine-rounds`` rounds of hard negatives (DeepEM's iterative retraining): the model's own false
positives on the (fully labelled) training micrographs, then retraining from the current model.
``--init MODEL.pt`` skips the first stage and starts the hard-negative stage from that model.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import picking_sets  # noqa: E402

from deepqs.picking.model import save_model  # noqa: E402
from deepqs.picking.preprocess import prepare_array  # noqa: E402
from deepqs.picking.train import TrainConfig, TrainingExample, train_picker  # noqa: E402


def junk_negatives(m, rng, n_max=40):
    """Up to ``n_max`` positions (original px) on the junk mask, at least one diameter from any particle."""
    if m.junk_mask is None or not m.junk_mask.any():
        return None
    from scipy.spatial import cKDTree

    ys, xs = np.nonzero(m.junk_mask[::4, ::4])
    pts = np.stack([xs * 4.0, ys * 4.0], 1)
    if len(m.coordinates):
        d, _ = cKDTree(m.coordinates).query(pts)
        pts = pts[d >= m.diameter_px]
    if len(pts) > n_max:
        pts = pts[rng.choice(len(pts), n_max, replace=False)]
    return pts if len(pts) else None


def noise_image(rng, shape, kind):
    """Gaussian noise: "white", "smooth" (Gaussian low-pass), "pink" (1/f amplitude) or "ctf" (empty ice:
    white noise through a random CTF and a soft envelope)."""
    import scipy.ndimage as ndi

    img = rng.standard_normal(shape).astype(np.float32)
    if kind == "smooth":
        return ndi.gaussian_filter(img, float(rng.uniform(0.5, 3.0))).astype(np.float32)
    if kind in ("pink", "ctf"):
        fy = np.fft.fftfreq(shape[0])[:, None]
        fx = np.fft.rfftfreq(shape[1])[None, :]
        k = np.sqrt(fx ** 2 + fy ** 2)
        if kind == "pink":
            filt = 1.0 / np.maximum(k, 1.0 / max(shape)) ** float(rng.uniform(0.3, 1.0))
        else:
            from deepqs.simulate.micrographs import ctf

            ps = float(rng.uniform(0.8, 3.0))
            k2 = (k / ps) ** 2
            filt = np.abs(ctf(k2, float(rng.uniform(0.8, 3.0)))) * np.exp(-k2 * float(rng.uniform(20, 200))) + 0.3
        img = np.fft.irfftn(np.fft.rfftn(img) * filt, s=shape).astype(np.float32)
    return img


def noise_examples(n, seed=77, shape=(512, 512)):
    """Particle-free micrographs (negatives only): noise of the 4 kinds of :func:`noise_image`, random diameters."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = ("white", "smooth", "pink", "ctf")[i % 4]
        d = float(rng.uniform(20, 100))
        out.append(TrainingExample(prepare_array(noise_image(rng, shape, kind), d, path=f"noise_{kind}_{i:02d}"),
                                   np.zeros((0, 2))))
    return out


def examples(mics, seed=0):
    rng = np.random.default_rng(seed)
    return [TrainingExample(prepare_array(m.image, m.diameter_px, path=m.name), m.coordinates,
                            junk_negatives(m, rng)) for m in mics]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-sim", type=int, default=48)
    ap.add_argument("--n-val", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--arch", default="default")
    ap.add_argument("--channels", default="8,16,32", help="PickNet channels (hidden = last); fast on CPUs")
    ap.add_argument("--stride", type=int, default=4, help="score-map stride in working pixels")
    ap.add_argument("--n-noise", type=int, default=24, help="particle-free noise micrographs (negatives only)")
    ap.add_argument("--n-noise-val", type=int, default=4, help="particle-free noise micrographs in the validation set")
    ap.add_argument("--mine-rounds", type=int, default=1, help="hard-negative rounds after the first training")
    ap.add_argument("--mine-minutes", type=float, default=8.0, help="time limit of each hard-negative round")
    ap.add_argument("--no-real-train", action="store_true",
                    help="leave the cryoppp_dev train split out (simulated + noise micrographs only)")
    ap.add_argument("--real-val", action="store_true",
                    help="also validate (early stopping, auto threshold) on the cryoppp_dev valid split; by default "
                         "the auto threshold is max F2 on simulated val + noise micrographs, since one threshold "
                         "cannot suit both (real data: retrain/recalibrate on labelled micrographs of the data set)")
    ap.add_argument("--init", help="start the hard-negative stage from this model (skips the first training)")
    ap.add_argument("--finetune", action="store_true",
                    help="with --init: first fine-tune that model on the training set (lr --lr), then the hard-negative rounds")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default 1e-3 for PickNet, 1e-2 for DeepEM)")
    ap.add_argument("--real-repeat", type=int, default=1,
                    help="list every cryoppp_dev training micrograph this many times (more real windows per epoch)")
    ap.add_argument("--no-real-mine", action="store_true",
                    help="mine hard negatives on the simulated micrographs only (cryoppp labels may miss particles)")
    ap.add_argument("--patience", type=int, default=8)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "deepqs", "weights",
                                                  "picking_default.pt"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    train = picking_sets.simulated("train", args.n_sim) + ([] if args.no_real_train else picking_sets.cryoppp("train"))
    val = picking_sets.simulated("val", args.n_val) + (picking_sets.cryoppp("valid") if args.real_val else [])
    tr = examples(train) + noise_examples(args.n_noise)
    n_real_tr = sum(1 for m in train if m.source != "simulated")
    if args.real_repeat > 1:
        tr += [e for e in tr if e.prepared.path in {m.name for m in train if m.source != "simulated"}] * (args.real_repeat - 1)
    va = examples(val, seed=1) + noise_examples(args.n_noise_val, seed=78)
    print(f"data: {len(tr)} training micrographs ({sum(len(e.positives) for e in tr)} particles), "
          f"{len(va)} validation; {time.time() - t0:.0f} s", flush=True)
    ch = [int(c) for c in args.channels.split(",")]
    net_cfg = {"channels": ch, "hidden": ch[-1]} if args.arch == "default" else {}
    cfg = TrainConfig(arch=args.arch, config=net_cfg, score_stride_px=args.stride, epochs=args.epochs, max_windows_per_epoch=16384, patience=args.patience, seed=0,
                      lr=args.lr if args.lr is not None else (1e-3 if args.arch == "default" else 1e-2), threads=args.threads,
                      max_seconds=args.minutes * 60, progress=False, select_by="ap")
    log = lambda s: print(s, flush=True)  # noqa: E731
    if args.init:
        from deepqs.picking.model import load_model

        model = load_model(args.init)
        model.score_stride_px = args.stride
        res = None
        stages = [f"initialised from {os.path.basename(args.init)}"]
        if args.finetune:
            res = train_picker(tr, cfg, init=model, val_examples=va, log=log)
            model = res.model
            stages.append(f"fine-tuned at lr {cfg.lr:g}: {res.epochs_run} epochs (best {res.best_epoch})")
    else:
        res = train_picker(tr, cfg, val_examples=va, log=log)
        model = res.model
        stages = [f"from scratch: {res.epochs_run} epochs (best {res.best_epoch})"]
    from dataclasses import replace

    from deepqs.picking.train import mine_hard_negatives

    for r in range(args.mine_rounds):
        real_names = {m.name for m in train if m.source != "simulated"}
        if args.no_real_mine:
            sim_idx = [i for i, e in enumerate(tr) if e.prepared.path not in real_names]
            mined, n_new = mine_hard_negatives(model, [tr[i] for i in sim_idx], min_score=0.1, max_per_micrograph=150)
            tr = list(tr)
            for i, e in zip(sim_idx, mined):
                tr[i] = e
        else:
            tr, n_new = mine_hard_negatives(model, tr, min_score=0.1, max_per_micrograph=150)
        print(f"hard-negative round {r + 1}: {n_new} negatives mined", flush=True)
        rcfg = replace(cfg, lr=cfg.lr * 0.3, seed=cfg.seed + r + 1, max_seconds=args.mine_minutes * 60, patience=4)
        res = train_picker(tr, rcfg, init=model, val_examples=va, log=log)
        model = res.model
        stages.append(f"hard-negative round {r + 1}: {n_new} mined negatives, {res.epochs_run} epochs "
                      f"(best {res.best_epoch})")
    res.model.info["training_data"] = {
        "simulated_micrographs": sum(1 for m in train if m.source == "simulated"),
        "simulated_particles": int(sum(len(m.coordinates) for m in train if m.source == "simulated")),
        "cryoppp_dev_train_micrographs": n_real_tr,
        "cryoppp_dev_train_repeat": args.real_repeat,
        "cryoppp_dev_train_particles": int(sum(len(m.coordinates) for m in train if m.source != "simulated")),
        "validation": f"{args.n_val} simulated val micrographs + {args.n_noise_val} noise micrographs"
                      + (" + cryoppp_dev valid split" if args.real_val else ""),
        "script": "benchmarks/train_picking_default.py",
        "noise_micrographs": args.n_noise,
        "stages": stages,
    }
    save_model(args.out, res.model)
    print(f"wrote {args.out}: {res.epochs_run} epochs (best {res.best_epoch}), threshold {res.model.threshold:.3f} "
          f"(F2 {res.model.info['threshold_f2']:.3f}), std range {res.model.std_range}, "
          f"{(time.time() - t0) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
