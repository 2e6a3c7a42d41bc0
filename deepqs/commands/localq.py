"""``deepqs localq train|predict``: DeepQs local-Q maps predicted from the density alone."""

from __future__ import annotations

import argparse
import os
import sys

from deepqs.commands.common import add_grid_options, positive_float, positive_int, read_map_from_args, write_json

HELP = "DeepQs: predict local Q-score (and local resolution) maps from a map alone; train the network"


def add_parser(sub) -> None:
    p = sub.add_parser("localq", help=HELP, description=(
        "DeepQs local quality: a 3D convolutional network predicts, for every voxel inside the "
        "molecule, the Q-score (sigma 0.6 Å) an atom there would get; local resolution follows from "
        "R = -3.816 Q + 5.679 Å."))
    lsub = p.add_subparsers(dest="localq_command", metavar="ACTION")

    t = lsub.add_parser("train", help="train local-Q network weights",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        description="Train on simulated maps of real models (--simulate N: N examples per epoch) "
                                    "or on real map/model pairs (--pairs CSV with map,model columns).")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--simulate", type=positive_int, metavar="N", help="simulated training examples per epoch")
    src.add_argument("--pairs", metavar="PAIRS.csv", help="CSV with 'map' and 'model' columns (real pairs)")
    t.add_argument("--structures", metavar="DIR", default=None,
                   help="folder of models with index.csv (default ../shared/data/structures; "
                        "the procedural model when absent)")
    t.add_argument("--out", required=True, metavar="WEIGHTS.pt", help="weights file to write")
    t.add_argument("--epochs", type=positive_int, default=10)
    t.add_argument("--batch", type=positive_int, default=4)
    t.add_argument("--crop", type=positive_int, default=48, help="training crop edge in voxels (1 Å)")
    t.add_argument("--lr", type=positive_float, default=1e-3)
    t.add_argument("--val", type=positive_int, default=32, metavar="N", help="validation examples")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    t.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    t.add_argument("--base", type=positive_int, default=12, help="channels of the first U-Net level")
    t.add_argument("--depth", type=positive_int, default=3, help="U-Net down-sampling levels")
    t.add_argument("--resume", action="store_true", help="continue from OUT.ckpt")
    t.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    t.add_argument("--max-steps", type=positive_int, default=None, help=argparse.SUPPRESS)
    t.set_defaults(func=run_train)

    q = lsub.add_parser("predict", help="predict local-Q and local-resolution maps",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        description="Output maps share the input grid (shape, voxel size, origin); voxels "
                                    "outside the molecular mask are 0.  Without --mask or --threshold the "
                                    "mask is the map above median + 3 x (MAD noise sigma) (see "
                                    "deepqs.localq.predict).")
    q.add_argument("map", help="map (MRC/CCP4)")
    mk = q.add_mutually_exclusive_group()
    mk.add_argument("--mask", metavar="MASK", help="molecular mask on the same grid (> 0.5 inside)")
    mk.add_argument("--threshold", type=float, metavar="T", help="mask = map > T (map units)")
    q.add_argument("--weights", metavar="W.pt", default=None,
                   help="network weights (default: the shipped deepqs/weights/localq_default.pt)")
    q.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    q.add_argument("--batch", type=positive_int, default=2, help="tiles per forward pass")
    q.add_argument("--tile", type=positive_int, default=64, help="tile edge in voxels of 1 Å")
    q.add_argument("--out", required=True, metavar="LOCALQ.mrc", help="local-Q map")
    q.add_argument("--out-resolution", metavar="LOCRES.mrc", help="local-resolution map (Å)")
    q.add_argument("--json", metavar="SUMMARY.json", help="summary as JSON")
    add_grid_options(q)
    q.set_defaults(func=run_predict)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_train(args) -> int:
    from deepqs.errors import InputError
    from deepqs.localq.dataset import list_structures
    from deepqs.localq.train import TrainConfig, read_pairs, train_localq

    if str(args.device).startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise InputError(None, f"--device {args.device}: no CUDA GPU is available here (use --device cpu)")
    cfg = TrainConfig(n_examples=args.simulate or 256, n_val=args.val, epochs=args.epochs, batch=args.batch,
                      lr=args.lr, crop=args.crop, seed=args.seed, workers=args.workers, device=args.device,
                      threads=args.threads, base=args.base, depth=args.depth, max_steps=args.max_steps)
    if args.pairs:
        pairs = read_pairs(args.pairs)
        report = train_localq(args.out, pairs=pairs, config=cfg, resume=args.resume,
                              progress=sys.stderr.isatty(), training_data=f"pairs from {args.pairs}")
    else:
        if args.structures and not os.path.isdir(args.structures):
            raise InputError(args.structures, "folder not found")
        sources = list_structures(args.structures)
        desc = f"{len(sources)} models from {args.structures or 'shared/data/structures'}"
        if not sources:
            sources = list(range(20))
            desc = "20 procedural models (deepqs.simulate.build_protein_model)"
        report = train_localq(args.out, sources=sources, config=cfg, resume=args.resume,
                              progress=sys.stderr.isatty(), training_data=f"simulated maps of {desc}")
    last = len(report.epochs) - 1
    print(f"wrote {args.out}: {len(report.epochs)} epochs, best epoch {report.best_epoch}, "
          f"validation loss {report.val_loss[last]:.4f}, voxel r {report.val_pearson[last]:.3f}" if last >= 0
          else f"wrote {args.out} (no epoch run)")
    return 0


def run_predict(args) -> int:
    from deepqs.io import read_map, write_map
    from deepqs.localq.predict import predict_localq

    mapdata = read_map_from_args(args.map, args)
    mask = None
    if args.mask:
        mask = read_map(args.mask)
        if args.voxel_size is not None:
            mask = read_map(args.mask, voxel_size=args.voxel_size)
        if args.origin is not None:
            mask.origin = mapdata.origin.copy()
    bar = None
    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm
        bar = tqdm(desc="local Q", unit="tile", file=sys.stderr, leave=False)
        progress = bar.update
    try:
        result = predict_localq(mapdata, mask=mask, threshold=args.threshold, weights=args.weights,
                                device=args.device, batch=args.batch, tile=args.tile, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    write_map(args.out, result.localq)
    written = [args.out]
    if args.out_resolution:
        write_map(args.out_resolution, result.resolution)
        written.append(args.out_resolution)
    s = {"map": os.fspath(args.map), **result.summary}
    if args.json:
        write_json(args.json, s)
        written.append(args.json)
    p = s["percentiles_q"]
    print(f"{args.map}: local Q median {s['median_q']:.3f} -> {s['resolution_from_median_A']:.2f} Å "
          f"(R = -3.816 Q + 5.679); percentiles 2.5/25/50/75/97.5: "
          + " ".join(f"{v:.3f}" for v in p.values()))
    print(f"  mask: {s['mask_voxels']} voxels ({s['mask_source']})")
    for w in result.warnings:
        print(f"  warning: {w}")
    for path in written:
        print(f"  wrote {path}")
    return 0
