"""``deepqs pick train|run|eval``: DeepEM-style particle picking.

Coordinates are particle centres in pixels of the original micrograph, x = column, y = row.
The particle size is needed in pixels: ``--diameter-px``, or ``--diameter`` in Å with the pixel
size from the micrograph headers (or ``--pixel-size``).  Items that cannot be used (unreadable
micrographs, micrographs without coordinates, coordinates outside the micrograph) are skipped,
reported on stderr and counted in the summary.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, List, Optional

from deepqs.commands.common import emit_json, positive_float, positive_int

HELP = "train a particle picker, pick particles, evaluate picks against ground truth"
FORMAT_EXT = {"box": ".box", "star": ".star", "csv": ".csv"}


def _size_options(p) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--diameter", type=positive_float, metavar="D_A", help="particle diameter in Å (needs a pixel size)")
    g.add_argument("--diameter-px", type=positive_float, metavar="D",
                   help="particle diameter in pixels of the micrographs (pixel size not needed)")
    p.add_argument("--pixel-size", type=positive_float, metavar="A",
                   help="pixel size in Å/pixel (overrides the headers; 8-bit images have none)")


def _threshold(text: str):
    if text == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {text!r}")


def _std_range(text: str):
    if text in ("model", "off"):
        return text
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'model', 'off' or LOW,HIGH, got {text!r}")
    return (lo, hi)


def add_parser(sub) -> None:
    p = sub.add_parser("pick", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ps = p.add_subparsers(dest="pick_command", metavar="ACTION")

    t = ps.add_parser("train", help="train a picker from micrographs and particle coordinates",
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--micrographs", nargs="+", required=True, metavar="M", help="micrographs (MRC, PNG, JPEG, TIFF)")
    t.add_argument("--coords", nargs="+", required=True, metavar="C",
                   help="particle centres (.box/.star/.txt/.cs/.csv), matched to micrographs by name")
    t.add_argument("--negatives", nargs="+", default=(), metavar="C",
                   help="explicit non-particle positions (e.g. verified false positives)")
    _size_options(t)
    t.add_argument("--arch", choices=("default", "deepem"), default="default",
                   help="default: ReLU/BatchNorm CNN, cross-entropy; deepem: the published DeepEM network")
    t.add_argument("--init", metavar="MODEL.pt",
                   help="fine-tune this model (iterative retraining): held-out micrographs (--val-fraction) judge it, "
                        "the first --freeze convolutions and the BatchNorm statistics stay fixed, and the model "
                        "itself (threshold re-chosen on the labels) is kept when it does as well on them")
    t.add_argument("--freeze", type=int, default=4, metavar="N",
                   help="with --init: convolutions whose weights stay fixed (0 = fine-tune all)")
    t.add_argument("--no-keep-init", action="store_true",
                   help="with --init: always return the fine-tuned model, even when the initial one does better "
                        "on the held-out micrographs")
    t.add_argument("--out", required=True, metavar="MODEL.pt", help="where to write the trained model")
    t.add_argument("--few-labels", choices=("auto", "on", "off"), default="auto",
                   help="few-label recipe for training from scratch: every labelled particle drawn 8 times per "
                        "epoch with rotations by any angle, scale and contrast jitter, early stopping on the "
                        "average precision of the picks on the held-out micrographs, 40 epochs, patience 8; "
                        "auto: on without --init and with fewer than 1000 labelled particles")
    t.add_argument("--epochs", type=positive_int, default=None,
                   help="training epochs (unset: 30, or 40 with the few-label recipe; default: %(default)s)")
    t.add_argument("--patience", type=positive_int, default=None,
                   help="early stopping patience in epochs (unset: 5, or 8 with the few-label recipe; default: %(default)s)")
    t.add_argument("--val-fraction", type=float, default=0.2, help="share of micrographs (or particles) held out")
    t.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate (default 1e-3; deepem 1e-2; with --init a tenth of these)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint", metavar="CKPT.pt",
                   help="checkpoint written every epoch (with CKPT.pt.state: optimiser state); resumes when it exists")
    t.add_argument("--mine-negatives", type=int, default=0, metavar="ROUNDS",
                   help="hard-negative rounds: pick the training micrographs, add every pick away from the labels "
                        "(junk, carbon, ice, gaps between neighbours) as a negative and retrain; only for fully "
                        "labelled micrographs")
    t.add_argument("--mine-min-score", type=float, default=0.1, help="lowest score of a mined negative")
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    t.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    t.add_argument("--json", nargs="?", const="-", metavar="SUMMARY.json", help="JSON summary (stdout without a path)")
    t.set_defaults(func=run_train)

    r = ps.add_parser("run", help="pick particles with a trained model",
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("--model", metavar="MODEL.pt", help="picking model (default: the shipped general model)")
    r.add_argument("--micrographs", nargs="+", required=True, metavar="M")
    _size_options(r)
    r.add_argument("--out-dir", required=True, metavar="DIR", help="one coordinate file per micrograph: DIR/<stem>.<fmt>")
    r.add_argument("--format", choices=tuple(FORMAT_EXT), default="csv",
                   help="csv (x,y,score centres), star (RELION) or box (EMAN2 corners, box = 1.5 diameters)")
    r.add_argument("--threshold", type=_threshold, default="auto", metavar="T|auto",
                   help="minimum score (0-1), or auto: the threshold stored with the model")
    r.add_argument("--std-range", type=_std_range, default="model", metavar="model|off|LOW,HIGH",
                   help="window standard-deviation filter (carbon, ice): learned range, off, or explicit")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    r.add_argument("--tile", type=positive_int, default=1024, help="tile size in working pixels (GPU memory)")
    r.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    r.add_argument("--json", nargs="?", const="-", metavar="SUMMARY.json", help="JSON summary (stdout without a path)")
    r.set_defaults(func=run_pick)

    e = ps.add_parser("eval", help="compare picks with ground truth (Hungarian matching)",
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("--picks", nargs="+", required=True, metavar="P", help="picked coordinates (any format)")
    e.add_argument("--truth", nargs="+", required=True, metavar="T", help="true coordinates (any format)")
    g = e.add_mutually_exclusive_group(required=True)
    g.add_argument("--diameter", type=positive_float, metavar="D_A", help="particle diameter in Å (needs --pixel-size)")
    g.add_argument("--diameter-px", type=positive_float, metavar="D", help="particle diameter in pixels")
    e.add_argument("--pixel-size", type=positive_float, metavar="A", help="pixel size in Å/pixel")
    e.add_argument("--min-score", type=float, default=None, help="ignore picks scoring below this")
    e.add_argument("--pr-curve", metavar="PR.png", help="write the precision-recall curve")
    e.add_argument("--json", nargs="?", const="-", metavar="SUMMARY.json", help="JSON summary (stdout without a path)")
    e.set_defaults(func=run_eval)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


# --- helpers ---------------------------------------------------------------------------------------
def _warn(msg: str) -> None:
    print(f"deepqs pick: warning: {msg}", file=sys.stderr)


def _emit_json(dest: Optional[str], obj: dict) -> None:
    emit_json(dest, obj)


def _diameter_px(args, pixel_size: Optional[float], path: Optional[str] = None) -> float:
    from deepqs.picking.preprocess import particle_diameter_px

    return particle_diameter_px(args.diameter, pixel_size, args.diameter_px, path)


def _device(name: str):
    from deepqs.device import resolve_device

    dev = resolve_device(name, warn=lambda m: print(f"deepqs pick: {m}", file=sys.stderr))  # no GPU: CPU + warning
    if name == "auto" and dev.type == "cpu":
        print("deepqs pick: no CUDA device found, running on the CPU", file=sys.stderr)
    return dev


def _prepare_all(paths: List[str], args, dropped, d_work: float):
    """Yield PreparedMicrographs; unreadable ones are counted in ``dropped`` and skipped."""
    from deepqs.errors import InputError
    from deepqs.picking.data import check_pixel_sizes
    from deepqs.picking.preprocess import prepare_micrograph

    ps = check_pixel_sizes(paths, args.pixel_size)
    for path in paths:
        try:
            prep = prepare_micrograph(path, args.diameter, ps if args.pixel_size is None else args.pixel_size,
                                      args.diameter_px, d_work)
        except InputError as exc:
            if "no pixel size" in str(exc) or "particle diameter" in str(exc):
                raise
            _warn(f"skipping micrograph: {exc}")
            dropped.add("unreadable micrograph", path)
            continue
        except MemoryError:
            raise
        yield prep


# --- train -------------------------------------------------------------------------------------------
def run_train(args) -> int:
    import numpy as np
    import torch

    from deepqs.errors import InputError
    from deepqs.picking.data import Dropped, inside_micrograph, read_coordinate_files, stem
    from deepqs.picking.model import load_model, save_model
    from deepqs.picking.preprocess import WORKING_DIAMETER_PX
    from deepqs.picking.train import FEW_LABELS, TrainConfig, TrainingExample, train_picker

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = _device(args.device)
    coords = read_coordinate_files(args.coords)
    negs = read_coordinate_files(args.negatives) if args.negatives else {}
    init = load_model(args.init) if args.init else None
    d_work = init.working_diameter_px if init is not None else WORKING_DIAMETER_PX
    dropped = Dropped()
    n_outside = 0
    examples = []
    mic_stems = {stem(p) for p in args.micrographs}
    for key in coords:
        if key not in mic_stems:
            _warn(f"coordinates for {key!r} match no given micrograph; left out")
            dropped.add("coordinates without a micrograph", key)
    for prep in _prepare_all(list(args.micrographs), args, dropped, d_work):
        key = prep.name
        c = coords.get(key)
        if c is None:
            _warn(f"{prep.path}: no coordinates for this micrograph; left out")
            dropped.add("micrograph without coordinates", prep.path)
            continue
        if len(c) == 0:
            _warn(f"{prep.path}: its coordinate file is empty; left out")
            dropped.add("empty coordinate file", prep.path)
            continue
        ok = inside_micrograph(c, prep.original_shape)
        if not ok.all():
            n_bad = int((~ok).sum())
            n_outside += n_bad
            _warn(f"{prep.path}: {n_bad} of {len(c)} coordinates lie outside the "
                  f"{prep.original_shape[1]} x {prep.original_shape[0]} micrograph; dropped")
            c = c.select(ok)
        if len(c) == 0:
            dropped.add("no coordinates on the micrograph", prep.path)
            continue
        neg = negs.get(key)
        neg_xy = None
        if neg is not None and len(neg):
            nok = inside_micrograph(neg, prep.original_shape)
            if not nok.all():
                _warn(f"{prep.path}: {int((~nok).sum())} of {len(neg)} negative positions lie outside the "
                      f"micrograph; dropped")
            n_outside += int((~nok).sum())
            neg_xy = neg.select(nok).xy
        examples.append(TrainingExample(prep, c.xy, neg_xy))
    if not examples:
        raise InputError(None, f"no usable micrograph with coordinates (dropped: {dropped.counts()})")
    arch = init.net.architecture if init is not None else args.arch
    lr = args.lr if args.lr is not None else (1e-2 if arch == "deepem" else 1e-3) * (0.1 if init is not None else 1.0)
    if args.freeze < 0:
        raise InputError(None, f"--freeze must be 0 or more, got {args.freeze}")
    n_labels = int(sum(len(e.positives) for e in examples))
    few = {"on": True, "off": False}.get(args.few_labels, init is None and n_labels < FEW_LABELS)
    epochs = args.epochs if args.epochs is not None else (40 if few else 30)
    patience = args.patience if args.patience is not None else (8 if few else 5)
    cfg = TrainConfig(arch=args.arch, epochs=epochs, lr=lr, val_fraction=args.val_fraction,
                      patience=patience, seed=args.seed, device=str(dev), threads=args.threads, few_labels=few)
    t0 = time.time()
    if args.mine_negatives < 0:
        raise InputError(None, f"--mine-negatives must be 0 or more, got {args.mine_negatives}")
    log = (lambda s: print(s, file=sys.stderr) if not sys.stderr.isatty() else None)
    n_mined = 0
    kept = None
    from dataclasses import replace as _replace

    if init is not None and len(examples) >= 2 and not args.checkpoint:
        from deepqs.picking.train import finetune_picker

        fcfg = _replace(cfg, score_stride_px=init.score_stride_px, freeze_convs=args.freeze, freeze_bn_stats=True,
                        select_by="ap")
        fres = finetune_picker(examples, init, fcfg, mine_rounds=args.mine_negatives,
                               mine_min_score=args.mine_min_score, keep_init=not args.no_keep_init, log=log)
        n_mined, kept = fres.n_mined, fres.kept
        res = fres.train
        res.model = fres.model
        res.threshold_source = fres.model.info.get("threshold_source", res.threshold_source)
        print(f"fine-tuning: held-out max F2 {fres.heldout_f2}; kept the {kept} model", file=sys.stderr)
        examples_rounds = 0
    else:
        res = train_picker(examples, cfg, init=init, checkpoint=args.checkpoint, log=log)
        examples_rounds = args.mine_negatives
    for r in range(examples_rounds):
        from deepqs.picking.train import mine_hard_negatives

        examples, n_new = mine_hard_negatives(res.model, examples, min_score=args.mine_min_score, device=str(dev))
        n_mined += n_new
        print(f"hard-negative round {r + 1}: {n_new} false positives added as negatives", file=sys.stderr)
        if n_new == 0:
            break
        res = train_picker(examples, _replace(cfg, seed=cfg.seed + r + 1, lr=cfg.lr * 0.3), init=res.model, log=log)
    res.model.info["training_data"] = {
        "micrographs": len(examples), "particles": int(sum(len(e.positives) for e in examples)),
        "diameter_px": float(np.median([e.prepared.diameter_px for e in examples])),
    }
    save_model(args.out, res.model)
    summary = {
        "model": os.fspath(args.out), "architecture": res.model.net.architecture,
        "micrographs_used": len(examples), "particles_train": res.n_train_positives,
        "particles_validation": res.n_val_positives, "epochs_run": res.epochs_run, "best_epoch": res.best_epoch,
        "stopped_early": res.stopped_early, "threshold": res.model.threshold,
        "threshold_source": res.threshold_source,
        "std_range": None if res.model.std_range is None else list(res.model.std_range),
        "coordinates_outside_dropped": n_outside, "dropped": dropped.counts(), "device": str(dev),
        "hard_negatives_mined": n_mined,
        "few_label_recipe": bool(few),
        "kept": kept,
        "seconds": round(time.time() - t0, 3),
        "final_val_loss": res.history[-1]["val_loss"] if res.history else None,
    }
    print(f"trained {summary['architecture']} on {len(examples)} micrographs "
          f"({res.n_train_positives} + {res.n_val_positives} validation particles), "
          f"{res.epochs_run} epochs, auto threshold {res.model.threshold:.3f}; wrote {args.out}",
          file=sys.stderr if args.json == "-" else sys.stdout)
    if dropped.total() or n_outside:
        print(f"dropped: {dropped.counts()}, coordinates outside micrographs: {n_outside}", file=sys.stderr)
    _emit_json(args.json, summary)
    return 0


# --- run ----------------------------------------------------------------------------------------------
def run_pick(args) -> int:
    import torch

    from deepqs.errors import InputError
    from deepqs.io.coords import Coordinates, write_coordinates
    from deepqs.picking import DEFAULT_MODEL
    from deepqs.picking.data import Dropped
    from deepqs.picking.model import load_model
    from deepqs.picking.pick import pick_prepared

    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.model or DEFAULT_MODEL
    if not args.model and not os.path.exists(DEFAULT_MODEL):
        raise InputError(DEFAULT_MODEL, "the shipped general picking model is not installed; "
                                        "train one with 'deepqs pick train' and pass --model")
    model = load_model(path)
    dev = _device(args.device)
    std = None if args.std_range == "off" else args.std_range
    if isinstance(args.threshold, float) and not 0.0 <= args.threshold <= 1.0:
        raise InputError(None, f"--threshold must be between 0 and 1 (scores are probabilities), got {args.threshold}")
    os.makedirs(args.out_dir, exist_ok=True)
    dropped = Dropped()
    per: List[Dict] = []
    t0 = time.time()
    ext = FORMAT_EXT[args.format]
    seen = set()
    for prep in _prepare_all(list(args.micrographs), args, dropped, model.working_diameter_px):
        if prep.name in seen:
            _warn(f"{prep.path}: another micrograph has the same name {prep.name!r}; left out (outputs would clash)")
            dropped.add("duplicate micrograph name", prep.path)
            continue
        seen.add(prep.name)
        t1 = time.time()
        picks = pick_prepared(model, prep, threshold=args.threshold, std_range=std, device=dev, tile=args.tile)
        c = picks.coordinates()
        out = os.path.join(args.out_dir, prep.name + ext)
        write_coordinates(out, Coordinates(c.x, c.y, c.score, None, c.box_size), fmt=args.format)
        per.append({"micrograph": prep.path, "output": out, "picked": len(picks), "peaks": picks.n_peaks,
                    "std_rejected": picks.n_std_rejected, "below_threshold": picks.n_below_threshold,
                    "seconds": round(time.time() - t1, 3)})
    if not per:
        raise InputError(None, f"no micrograph could be picked (dropped: {dropped.counts()})")
    notes = []
    eight_bit = [m["micrograph"] for m in per
                 if os.path.splitext(str(m["micrograph"]))[1].lower() in (".png", ".jpg", ".jpeg")]
    if not args.model and eight_bit:
        notes.append("the shipped general model was trained on simulated micrographs and does poorly on real "
                     "contrast-compressed 8-bit images (F1 0.26 on the cryoppp_dev test images, 0.60 after "
                     "retraining): label a few micrographs and run 'deepqs pick train --init' on them")
        _warn(notes[-1])
    elapsed = time.time() - t0
    summary = {
        "model": os.fspath(path), "architecture": model.net.architecture, "device": str(dev),
        "threshold": float(model.threshold if args.threshold == "auto" else args.threshold),
        "std_range": None if std is None else (list(model.std_range) if std == "model" and model.std_range else
                                                (None if std == "model" else list(std))),
        "micrographs": len(per), "micrographs_dropped": dropped.total(), "dropped": dropped.items,
        "picked": int(sum(m["picked"] for m in per)), "seconds": round(elapsed, 3),
        "micrographs_per_s": round(len(per) / elapsed, 4) if elapsed > 0 else None,
        "format": args.format, "out_dir": os.fspath(args.out_dir), "notes": notes, "per_micrograph": per,
    }
    stream = sys.stderr if args.json == "-" else sys.stdout
    print(f"picked {summary['picked']} particles on {len(per)} micrographs "
          f"(threshold {summary['threshold']:.3f}, {summary['device']}, {elapsed:.2f} s); wrote {args.out_dir}"
          + (f"; {dropped.total()} micrographs dropped: {dropped.counts()}" if dropped.total() else ""), file=stream)
    _emit_json(args.json, summary)
    return 0


# --- eval ---------------------------------------------------------------------------------------------
def run_eval(args) -> int:
    import numpy as np

    from deepqs.errors import InputError
    from deepqs.picking.data import read_coordinate_files
    from deepqs.picking.evaluate import evaluate_many, match_picks, plot_pr_curve

    if args.diameter is not None:
        if args.pixel_size is None:
            raise InputError(None, "--diameter in Å needs --pixel-size (or give --diameter-px)")
        d = args.diameter / args.pixel_size
    else:
        d = args.diameter_px
    picks = read_coordinate_files(args.picks)
    truth = read_coordinate_files(args.truth)
    names = sorted(set(picks) | set(truth))
    missing_picks = [n for n in names if n not in picks]
    missing_truth = [n for n in names if n not in truth]
    for n in missing_truth:
        _warn(f"picks for {n!r} have no ground truth; left out")
    for n in missing_picks:
        _warn(f"ground truth for {n!r} has no picks; counted as missed particles")
    used = [n for n in names if n in truth]
    empty_truth = [n for n in used if len(truth[n]) == 0]
    empty_picks = [n for n in used if n in picks and len(picks[n]) == 0]
    for n in empty_truth:
        _warn(f"ground truth for {n!r} is empty (0 particles); its picks count as false positives")
    for n in empty_picks:
        _warn(f"picks for {n!r} are empty (0 picks)")
    if not used:
        raise InputError(None, "no micrograph has both picks and ground truth (names are matched by file stem)")
    results = {}
    curves = []
    for factor in (0.5, 1.0):
        radius = factor * d / 2.0
        matches = []
        for n in used:
            p = picks.get(n)
            t = truth[n]
            if p is None:
                pxy, ps = np.zeros((0, 2)), np.zeros(0)
            else:
                ps = p.score if p.score is not None else np.ones(len(p))
                keep = np.ones(len(p), bool) if args.min_score is None else ps >= args.min_score
                pxy, ps = p.xy[keep], ps[keep]
            matches.append(match_picks(pxy, t.xy, radius, ps))
        ev = evaluate_many(matches, radius)
        results[f"{factor:g}x_radius"] = ev.as_dict()
        curves.append((f"{factor:g} x radius", matches))
    summary = {"diameter_px": float(d), "micrographs": len(used),
               "micrographs_without_truth": len(missing_truth), "micrographs_without_picks": len(missing_picks),
               "empty_truth_files": len(empty_truth), "empty_pick_files": len(empty_picks),
               **results}
    if args.pr_curve:
        plot_pr_curve(args.pr_curve, curves, title=f"Precision-recall ({len(used)} micrographs)")
        summary["pr_curve"] = os.fspath(args.pr_curve)
    stream = sys.stderr if args.json == "-" else sys.stdout
    for k, v in results.items():
        print(f"{k.replace('_', ' ')} ({v['radius_px']:.1f} px): {v['n_picks']} picks, {v['n_truth']} true, "
              f"precision {v['precision']:.3f}, recall {v['recall']:.3f}, F1 {v['f1']:.3f}, F2 {v['f2']:.3f}, "
              f"AP {v['average_precision']:.3f}", file=stream)
    _emit_json(args.json, summary)
    return 0
