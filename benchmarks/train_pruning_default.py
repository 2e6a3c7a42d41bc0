"""Train the shipped pretrained pruning classifier ``deepqs/weights/pruning_default.pt``.

    python benchmarks/train_pruning_default.py [--n-train 360] [--max-minutes 10] [--threads 1] [--out PATH]

Training data: ``--n-train`` simulated micrographs (:func:`deepqs.pruning.simulated.simulated_set`,
seed ``--seed``, 12 particle shapes) plus, when ``shared/data`` is present, the CryoPPP-derived
**train** split (good = annotated centres, bad = far from every centre), each real box drawn ``--real-repeat``
(3) times as often as a simulated one.  Validation (early
stopping, "balanced" threshold): ``--n-val`` simulated micrographs of seed ``--seed + 1`` plus the
CryoPPP **valid** split.  The CryoPPP **test** split is never used here (benchmarks use it).
Losses: cross-entropy + focal (γ 2) + supervised contrastive (τ 0.1), weights 1 / 1 / 0.2.
CPU, one thread by default; about 15 minutes with the defaults (10 of them training, on a busy
2-core machine; the time budget, not the epoch count, ends the run there).  The weights are written atomically
(never half-written) and the model card figures are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from deepqs.pruning.losses import LossWeights  # noqa: E402
from deepqs.pruning.model import DEFAULT_MODEL, save_model  # noqa: E402
from deepqs.pruning.real import cryoppp_boxes  # noqa: E402
from deepqs.pruning.simulated import LabelledBoxes, concat, particle_pool, simulated_set  # noqa: E402
from deepqs.pruning.train import TrainConfig, train_classifier  # noqa: E402


def _simulated(args, log):
    """(train, val) simulated sets, from ``--cache`` when they were generated with the same settings."""
    name = f"sim_{args.n_train}_{args.n_val}_{args.shapes}_{args.seed}.npz"
    path = os.path.join(args.cache, name) if args.cache else None
    if path and os.path.exists(path):
        z = np.load(path)
        log(f"simulated sets loaded from {path}")
        return (LabelledBoxes(z["tb"], z["tl"], z["tg"]), LabelledBoxes(z["vb"], z["vl"], z["vg"]))
    pool = particle_pool(args.shapes, seed=0)
    log(f"{len(pool)} particle shapes built")
    train = simulated_set(args.n_train, seed=args.seed, pool=pool)
    val = simulated_set(args.n_val, seed=args.seed + 1, pool=pool)
    if path:
        os.makedirs(args.cache, exist_ok=True)
        np.savez(path, tb=train.boxes, tl=train.labels, tg=train.group, vb=val.boxes, vl=val.labels, vg=val.group)
    return train, val


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-train", type=int, default=360, help="simulated training micrographs")
    ap.add_argument("--n-val", type=int, default=60, help="simulated validation micrographs")
    ap.add_argument("--shapes", type=int, default=12, help="particle shapes in the pool")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--samples-per-epoch", type=int, default=12000, help="class-balanced boxes drawn per epoch")
    ap.add_argument("--max-minutes", type=float, default=10.0, help="stop training after this (best epoch kept)")
    ap.add_argument("--no-real", action="store_true", help="simulated data only")
    ap.add_argument("--real-repeat", type=int, default=3, help="draw each real training box this many times as often")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=DEFAULT_MODEL)
    ap.add_argument("--cache", default=None, metavar="DIR",
                    help="keep the generated simulated sets here (.npz) and reuse them when present")
    ap.add_argument("--init", default=None, metavar="MODEL.pt",
                    help="continue training from this model (e.g. the shipped one) instead of from scratch")
    ap.add_argument("--lr", type=float, default=2e-3, help="learning rate (AdamW, cosine schedule)")
    ap.add_argument("--max-mask-fraction", type=float, default=0.02,
                    help="real bad boxes: largest share of the box covered by the annotated particle mask "
                         "(deepqs.pruning.real.cryoppp_boxes); negative: no mask check (the old labelling)")
    ap.add_argument("--generate-only", action="store_true", help="build (and cache) the data sets, do not train")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    log = lambda s: print(f"[{time.time() - t0:7.1f} s] {s}", file=sys.stderr, flush=True)  # noqa: E731
    train, val = _simulated(args, log)
    log(f"simulated: train {len(train)} boxes {train.counts()}, val {len(val)} boxes {val.counts()}")
    sim_counts = train.counts()
    if args.generate_only:
        return 0
    real_train = real_val = None
    if not args.no_real:
        mmf = None if args.max_mask_fraction < 0 else args.max_mask_fraction
        real_train = cryoppp_boxes(splits=("train",), seed=args.seed, max_mask_fraction=mmf)
        real_val = cryoppp_boxes(splits=("valid",), seed=args.seed + 1, max_mask_fraction=mmf)
    if real_train is not None:
        log(f"cryoppp_dev: train {len(real_train)} boxes {real_train.counts()}, valid {len(real_val)} {real_val.counts()}")
        train = concat([train] + [real_train] * max(1, args.real_repeat))
        val = concat([val, real_val])
    else:
        log("cryoppp_dev not found: simulated data only")
    cfg = TrainConfig(epochs=args.epochs, batch_size=128, lr=args.lr, loss=LossWeights(1.0, 1.0, 0.2, 2.0, 0.1), patience=5,
                      samples_per_epoch=args.samples_per_epoch,
                      seed=args.seed, threads=args.threads, max_seconds=args.max_minutes * 60)
    init = None
    if args.init:
        from deepqs.pruning.model import load_model
        init = load_model(args.init)
        log(f"continuing from {args.init}")
    res = train_classifier(train, cfg, log=log, val_data=val, init=init)
    m = res.model
    m.box_to_diameter = 1.85
    m.info["training_data"] = {
        "simulated": {"micrographs": args.n_train, "seed": args.seed, "shapes": args.shapes,
                      "boxes_per_class": sim_counts,
                      "generator": "deepqs.pruning.simulated.simulated_set (diameter 22-60 px, box 1.5-2.2 "
                                   "diameters, SNR 0.05-0.4, defocus 0.8-3 um, ice blobs, aggregates, carbon edges, "
                                   "crystalline-ice patches)"},
        "real": None if real_train is None else {"cryoppp_dev": "EMPIAR 10028/10059/10947 train split",
                                                 "boxes_per_class": real_train.counts(),
                                                 "repeat": args.real_repeat},
        "validation": {"simulated_micrographs": args.n_val, "seed": args.seed + 1,
                       "real": None if real_val is None else "cryoppp_dev valid split", "boxes": val.counts()},
    }
    if args.init:
        m.info["continued_from"] = {"path": os.path.basename(args.init),
                                    "training_data": init.info.get("training_data"),
                                    "command": init.info.get("command")}
    m.info["command"] = "python benchmarks/train_pruning_default.py " + " ".join(argv if argv is not None else sys.argv[1:])
    m.info["history"] = [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in h.items()} for h in res.history]
    save_model(args.out, m)
    report = {"out": args.out, "size_MB": round(os.path.getsize(args.out) / 1e6, 3), "threshold": m.threshold,
              "best_epoch": res.best_epoch, "epochs_run": len(res.history), "validation": res.validation,
              "minutes": round((time.time() - t0) / 60, 2)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
