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
    t.add_argument("--examples", type=positive_int, default=256, metavar="N",
                   help="random crops per epoch with --pairs")
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
    t.add_argument("--init", metavar="W.pt", default=None,
                   help="start from these weights (same --base/--depth); kept unless an epoch beats them on validation")
    t.add_argument("--fresh", action="store_true", help="new simulated examples every epoch")
    t.add_argument("--lr-min", type=positive_float, default=None,
                   help="cosine decay of the learning rate from --lr to this over the epochs")
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
    q.add_argument("--no-calibration", action="store_true",
                   help="raw network output: skip the output calibration stored in the weights (if any)")
    q.add_argument("--batch", type=positive_int, default=2, help="tiles per forward pass")
    q.add_argument("--tile", type=positive_int, default=None,
                   help="tile edge in voxels of 1 Å (default: 64 for maps up to 96 Å across, else 96)")
    q.add_argument("--out", required=True, metavar="LOCALQ.mrc", help="local-Q map")
    q.add_argument("--out-resolution", metavar="LOCRES.mrc", help="local-resolution map (Å)")
    q.add_argument("--json", metavar="SUMMARY.json", help="summary as JSON")
    q.add_argument("--figures", metavar="DIR", help="also write figures into DIR: localq_slices.png (orthogonal "
                   "slices coloured by local Q), localq_histogram.png, color_by_localq.cxc (ChimeraX: map "
                   "surface coloured by local Q)")
    add_grid_options(q)
    q.set_defaults(func=run_predict)

    c = lsub.add_parser("compare", help="compare a local-Q map with the true Q-scores of a model",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                        description="Each atom's predicted Q is the local-Q map sampled (trilinear) at the atom; "
                                    "its true Q comes from the Q-score engine on MAP.  Prints Pearson r per "
                                    "residue and per atom and the medians; atoms outside the predicted region "
                                    "are counted and left out.")
    c.add_argument("map", help="the map the prediction was made from (MRC/CCP4)")
    c.add_argument("localq", help="local-Q map from 'deepqs localq predict'")
    c.add_argument("model", help="atomic model (PDB/mmCIF) fitted to the map")
    c.add_argument("--sigma", type=positive_float, default=0.6, help="Q-score sigma (Å)")
    c.add_argument("--out-residues", metavar="RESIDUES.csv", help="per-residue table (true and predicted Q)")
    c.add_argument("--plot", metavar="SCATTER.png", help="predicted vs true per-residue Q scatter")
    c.add_argument("--json", metavar="SUMMARY.json", help="figures as JSON")
    add_grid_options(c)
    c.set_defaults(func=run_compare)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_train(args) -> int:
    from deepqs.errors import InputError
    from deepqs.localq.dataset import list_structures
    from deepqs.localq.train import TrainConfig, read_pairs, train_localq

    from deepqs.device import resolve_device

    args.device = str(resolve_device(args.device))  # a GPU that is not visible -> CPU with a warning
    cfg = TrainConfig(n_examples=args.simulate or args.examples, n_val=args.val, epochs=args.epochs, batch=args.batch,
                      lr=args.lr, crop=args.crop, seed=args.seed, workers=args.workers, device=args.device,
                      threads=args.threads, base=args.base, depth=args.depth, max_steps=args.max_steps,
                      fresh=args.fresh, lr_min=args.lr_min, init=args.init)
    if args.init and not os.path.isfile(args.init):
        raise InputError(args.init, "file not found")
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
                                device=args.device, batch=args.batch, tile=args.tile, progress=progress,
                                calibrate=not args.no_calibration)
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
    if args.figures:
        written += write_figures(args.figures, mapdata, result, args.out)
    for path in written:
        print(f"  wrote {path}")
    return 0


def write_figures(folder: str, mapdata, result, localq_path: str) -> list:
    """Slices coloured by local Q, the local-Q histogram and a ChimeraX colouring script."""
    from deepqs.chimerax import write_map_color_script
    from deepqs.plots import _pyplot, draw_score_histogram, plot_localq_slices
    from deepqs.io.atomic import atomic_output

    os.makedirs(folder, exist_ok=True)
    files = [os.path.join(folder, n) for n in ("localq_slices.png", "localq_histogram.png", "color_by_localq.cxc")]
    s = result.summary
    plot_localq_slices(files[0], mapdata.data, result.localq.data, result.mask, mapdata.voxel_size,
                       title=f"DeepQs local Q (median {s['median_q']:.3f} -> {s['resolution_from_median_A']:.2f} Å)")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        draw_score_histogram(ax, result.localq.data[result.mask], label="local Q (inside the mask)",
                             markers={"median": s["median_q"]})
        ax.set_ylabel("voxels")
        fig.tight_layout()
        with atomic_output(files[1]) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    level = s.get("threshold")
    write_map_color_script(files[2], mapdata.path or localq_path, localq_path, score="local Q", low=0.0, high=1.0,
                           map_level=level)
    return files


def run_compare(args) -> int:
    from deepqs.io import read_atoms
    from deepqs.io.models import check_model_in_map
    from deepqs.localq.compare import compare_localq
    from deepqs.plots import _pyplot, draw_pred_vs_true
    from deepqs.io.atomic import atomic_output

    mapdata = read_map_from_args(args.map, args)
    localq = read_map_from_args(args.localq, args)  # any grid: atoms are sampled in Å
    atoms = read_atoms(args.model)
    check_model_in_map(atoms, mapdata, path=args.model)
    result = compare_localq(mapdata, localq, atoms, sigma=args.sigma)
    s = {"map": os.fspath(args.map), "localq": os.fspath(args.localq), "model": os.fspath(args.model),
         **result.summary}
    written = []
    if args.out_residues:
        result.write_residues_csv(args.out_residues)
        written.append(args.out_residues)
    if args.plot:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(5.0, 5.0), dpi=100)
        try:
            draw_pred_vs_true(ax, result.residues["q_true"], result.residues["q_pred"], s["pearson_residue"])
            fig.tight_layout()
            with atomic_output(args.plot) as tmp:
                fig.savefig(tmp, format="png")
        finally:
            plt.close(fig)
        written.append(args.plot)
    if args.json:
        write_json(args.json, s)
        written.append(args.json)
    print(f"{args.model} in {args.map}: per-residue Pearson r {s['pearson_residue']:.3f} "
          f"({s['residues_compared']} residues), per-atom r {s['pearson_atom']:.3f}; median Q predicted "
          f"{s['median_pred_q']:.3f} vs true {s['median_true_q']:.3f} (|difference| {s['abs_median_diff']:.3f})")
    if s["atoms_without_prediction"]:
        print(f"  {s['atoms_without_prediction']} atoms lie outside the predicted region and were left out")
    for path in written:
        print(f"  wrote {path}")
    return 0
