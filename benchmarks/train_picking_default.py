"""Train the shipped general picking model: ``python benchmarks/train_picking_default.py [--minutes M]``.

Training data: simulated micrographs (``picking_sets.simulated("train")``) plus the cryoppp_dev
train split; validation (early stopping, "auto" threshold): simulated "val" micrographs plus the
cryoppp_dev valid split.  One CPU thread by default.  Writes ``deepqs/weights/picking_default.pt``.
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


def examples(mics):
    return [TrainingExample(prepare_array(m.image, m.diameter_px, path=m.name), m.coordinates) for m in mics]


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
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "deepqs", "weights",
                                                  "picking_default.pt"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    train = picking_sets.simulated("train", args.n_sim) + picking_sets.cryoppp("train")
    val = picking_sets.simulated("val", args.n_val) + picking_sets.cryoppp("valid")
    tr, va = examples(train), examples(val)
    print(f"data: {len(tr)} training micrographs ({sum(len(e.positives) for e in tr)} particles), "
          f"{len(va)} validation; {time.time() - t0:.0f} s", flush=True)
    ch = [int(c) for c in args.channels.split(",")]
    net_cfg = {"channels": ch, "hidden": ch[-1]} if args.arch == "default" else {}
    cfg = TrainConfig(arch=args.arch, config=net_cfg, score_stride_px=args.stride, epochs=args.epochs, max_windows_per_epoch=16384, patience=8, seed=0,
                      lr=1e-3 if args.arch == "default" else 1e-2, threads=args.threads,
                      max_seconds=args.minutes * 60, progress=False)
    res = train_picker(tr, cfg, val_examples=va, log=lambda s: print(s, flush=True))
    res.model.info["training_data"] = {
        "simulated_micrographs": sum(1 for m in train if m.source == "simulated"),
        "simulated_particles": int(sum(len(m.coordinates) for m in train if m.source == "simulated")),
        "cryoppp_dev_train_micrographs": sum(1 for m in train if m.source != "simulated"),
        "cryoppp_dev_train_particles": int(sum(len(m.coordinates) for m in train if m.source != "simulated")),
        "validation": "simulated val seeds + cryoppp_dev valid split",
        "script": "benchmarks/train_picking_default.py",
    }
    save_model(args.out, res.model)
    print(f"wrote {args.out}: {res.epochs_run} epochs (best {res.best_epoch}), threshold {res.model.threshold:.3f} "
          f"(F2 {res.model.info['threshold_f2']:.3f}), std range {res.model.std_range}, "
          f"{(time.time() - t0) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
