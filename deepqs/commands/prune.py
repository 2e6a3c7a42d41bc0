"""``deepqs prune train|run``: remove false positives of automatic pickers (PickerOptimizer-style).

A small CNN classifies each particle box as particle, ice/contamination or carbon; the good/bad
score is p_particle and a box is kept when p_particle >= the threshold.  Boxes are resampled to the
network size (64 px) and normalised per box, so any box size works; cut boxes about 1.5-2
particle diameters wide (the shipped model was trained with 1.5-2.2).  Protein must be dark
(raw micrographs); invert phase-flipped/inverted stacks first.

Inputs (x = column, y = row, centres in micrograph pixels):
  particle stacks   --particles stack.mrcs | particles.star (RELION _rlnImageName k@stack.mrcs)
  micrographs       --micrographs mic*.mrc --coords picks*.star --box PX
                    (coordinate files .box/.star/.txt/.cs/.csv matched to micrographs by file stem;
                    boxes running off the micrograph edge are padded with the box mean and flagged)

examples:
  deepqs prune run --particles autopick.star --out-dir pruned/ --json
  deepqs prune run --micrographs mics/*.mrc --coords picks/*.star --box 180 --out-dir pruned/
  deepqs prune train --good good.star --bad ice.star --carbon carbon.star --out mine.pt
  deepqs prune train --micrographs mics/*.mrc --box 180 --good ok/*.box --bad junk/*.box --out mine.pt
  deepqs prune run --model mine.pt --particles autopick.star --threshold 0.7 --out-dir pruned/
  deepqs prune run --particles autopick.star --tta --threshold adaptive --out-dir pruned/

thresholds: "balanced" (default) is stored with the model (best balanced accuracy on its validation
data); "adaptive" is chosen on the input boxes themselves (estimated share of particles, best expected
macro-F1: more particles kept when most picks are good); --tta averages over the 8 rotations/flips.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
from typing import Dict, List, Optional

import numpy as np

from deepqs.commands.common import emit_json, number_in, positive_float, positive_int

HELP = "prune false-positive particles (ice, contamination, carbon) with a CNN classifier"


_threshold = number_in(0.0, 1.0, also=("balanced", "adaptive"))


def _weights(text: str):
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers CE,FOCAL,SUPCON, got {text!r}")
    if len(vals) != 3 or min(vals) < 0 or sum(vals) == 0:
        raise argparse.ArgumentTypeError(f"expected three non-negative numbers CE,FOCAL,SUPCON, got {text!r}")
    return vals


_fraction = number_in(0.0, 0.9)


def _json_option(p) -> None:
    p.add_argument("--json", nargs="?", const="-", metavar="SUMMARY.json",
                   help="JSON summary (to stdout without a path)")


def add_parser(sub) -> None:
    p = sub.add_parser("prune", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ps = p.add_subparsers(dest="prune_command", metavar="ACTION")

    t = ps.add_parser("train", help="fine-tune (or train) a pruning classifier on labelled boxes",
                      description="Fine-tune the shipped pretrained classifier (or --init MODEL.pt) on a few labelled "
                                  "boxes per class: first the head alone with the backbone frozen "
                                  "(--freeze-epochs), then everything at a low learning rate; when no epoch lowers the "
                                  "validation loss below the pretrained model's, the pretrained model is kept.  The "
                                  "held-out boxes must be enough to judge that: with fewer than --min-val-per-class "
                                  "per class (about 50 labels per class at the default settings) nothing is trained "
                                  "and the pretrained model is written unchanged.  "
                                  "--good/--bad/--carbon take particle stacks "
                                  "(.mrcs/.mrc) or RELION particle .star files, or, with --micrographs and --box, "
                                  "coordinate files.  --bad is the ice/contamination class, --carbon the carbon/edge "
                                  "class (optional).",
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--good", nargs="+", required=True, metavar="F", help="good particles")
    t.add_argument("--bad", nargs="+", required=True, metavar="F",
                   help="bad boxes: ice, contamination, aggregates, empty")
    t.add_argument("--carbon", nargs="+", default=(), metavar="F", help="bad boxes on carbon film or edges")
    t.add_argument("--micrographs", nargs="+", default=None, metavar="M",
                   help="micrographs: then --good/--bad/--carbon are coordinate files cut with --box")
    t.add_argument("--box", type=positive_int, default=None, metavar="PX", help="box size in micrograph pixels")
    t.add_argument("--pixel-size", type=positive_float, default=None, metavar="A",
                   help="pixel size in Å/pixel (overrides the headers when they are wrong)")
    t.add_argument("--out", required=True, metavar="MODEL.pt", help="where to write the trained model")
    t.add_argument("--init", default=None, metavar="MODEL.pt|none",
                   help="model to fine-tune (default: the shipped pretrained model; 'none' trains from scratch)")
    t.add_argument("--epochs", type=positive_int, default=30)
    t.add_argument("--freeze-epochs", type=int, default=5, help="first epochs training the head only (fine-tuning)")
    t.add_argument("--patience", type=positive_int, default=8, help="early stopping patience (epochs)")
    t.add_argument("--val-fraction", type=_fraction, default=0.2, help="share of the boxes of each class held out")
    t.add_argument("--min-val-per-class", type=int, default=10, metavar="N",
                   help="fine-tuning: with fewer held-out boxes than this in a class the pretrained model is kept "
                        "unchanged (on real data, fine-tuning judged on 2-4 boxes per class did worse than no "
                        "fine-tuning); about 5 x N labels per class are needed; 0 always fine-tunes")
    t.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate of the head (default 3e-4 when fine-tuning, 2e-3 from scratch)")
    t.add_argument("--backbone-lr-factor", type=positive_float, default=0.1,
                   help="backbone learning rate = lr x this (after the frozen epochs)")
    t.add_argument("--loss-weights", type=_weights, default=[1.0, 1.0, 1.0], metavar="CE,FOCAL,SUPCON",
                   help="weights of cross-entropy, focal (gamma 2) and supervised-contrastive (tau 0.2) losses")
    t.add_argument("--samples-per-epoch", type=positive_int, default=1024,
                   help="class-balanced boxes drawn per epoch")
    t.add_argument("--seed", type=int, default=0, help="seed of the split, sampling and augmentation (deterministic)")
    t.add_argument("--workers", type=int, default=0,
                   help="data-loader worker processes (worker k is seeded with seed + k; results do not depend on it)")
    t.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    _json_option(t)
    t.set_defaults(func=run_train)

    r = ps.add_parser("run", help="score boxes and split them into kept and rejected",
                      description="Score every box (p_particle, p_ice, p_carbon) and keep those with p_particle >= "
                                  "the threshold.  Writes DIR/scores.csv (one row per input item, columns "
                                  "micrograph,x,y,p_particle,p_ice,p_carbon,kept,index,off_edge) and the kept and "
                                  "rejected items in the input's format: kept.mrcs/rejected.mrcs (+ kept.star/"
                                  "rejected.star for .star input), or DIR/kept/<file> and DIR/rejected/<file> per "
                                  "coordinate file (cryoSPARC .cs input is written as .star).  The .star files "
                                  "keep every column of the input; _rlnImageName points into DIR/kept.mrcs. "
                                  "An empty subset writes no stack.  --json keys: n_items, n_kept, n_rejected, "
                                  "threshold, threshold_rule, n_predicted_particle/ice/carbon, n_off_edge, "
                                  "n_unmatched_coordinates, model, scores_csv, kept_files, rejected_files, "
                                  "seconds_reading, seconds_scoring, boxes_per_second.",
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("--model", default=None, metavar="MODEL.pt", help="classifier (default: the shipped pretrained one)")
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--particles", metavar="STACK_OR_STAR", help="particle stack (.mrcs/.mrc) or RELION particle .star")
    g.add_argument("--micrographs", nargs="+", metavar="M", help="micrographs (MRC, or 8/16-bit PNG/TIFF)")
    r.add_argument("--coords", nargs="+", default=None, metavar="C",
                   help="coordinate files (.box/.star/.txt/.cs/.csv) for --micrographs, matched by file stem")
    r.add_argument("--box", type=positive_int, default=None, metavar="PX",
                   help="box size in micrograph pixels (about 1.5-2 particle diameters)")
    r.add_argument("--pad", choices=("mean", "reflect"), default="mean",
                   help="fill of boxes running off the micrograph edge")
    r.add_argument("--pixel-size", type=positive_float, default=None, metavar="A",
                   help="pixel size in Å/pixel (overrides the headers when they are wrong)")
    r.add_argument("--out-dir", required=True, metavar="DIR")
    r.add_argument("--threshold", type=_threshold, default="balanced", metavar="T|balanced|adaptive",
                   help="keep boxes with p_particle >= T; balanced: the threshold stored with the model (chosen on its "
                        "validation data for the best balanced accuracy); adaptive: chosen on the input boxes "
                        "(estimated share of particles, best expected macro-F1; better when most boxes are particles)")
    r.add_argument("--batch-size", type=positive_int, default=256, help="boxes per forward pass")
    r.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average the probabilities over the 8 rotations/flips of each box "
                        "(8x slower, slightly more accurate)")
    r.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto; a GPU that is not visible falls "
                                                   "back to the CPU with a warning")
    r.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    _json_option(r)
    r.set_defaults(func=run_prune)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


# --- helpers -----------------------------------------------------------------------------------------
def _warn(msg: str) -> None:
    print(f"deepqs prune: warning: {msg}", file=sys.stderr)


def _emit_json(dest: Optional[str], obj: dict) -> None:
    emit_json(dest, obj)


def _set_threads(n: Optional[int]) -> None:
    if n:
        import torch

        torch.set_num_threads(int(n))


def _labelled_boxes(args, files: List[str], label: int, out_size: int):
    from deepqs.errors import InputError
    from deepqs.pruning.boxes import read_micrograph_boxes, read_particle_boxes
    from deepqs.pruning.simulated import LabelledBoxes, concat

    parts = []
    for f in files:
        if args.micrographs:
            bs = read_micrograph_boxes(args.micrographs, [f], args.box, out_size, args.pixel_size, warn=_warn)
        else:
            bs = read_particle_boxes(f, out_size, args.pixel_size)
        if len(bs) == 0:
            raise InputError(f, "no boxes (empty coordinate file, or no matching micrograph)")
        parts.append(LabelledBoxes(bs.boxes, np.full(len(bs), label, np.int64), np.zeros(len(bs), np.int64)))
    return concat(parts)


# --- train -------------------------------------------------------------------------------------------
def run_train(args) -> int:
    from deepqs.errors import InputError
    from deepqs.pruning.losses import LossWeights
    from deepqs.pruning.model import load_model, save_model
    from deepqs.pruning.simulated import concat
    from deepqs.pruning.train import TrainConfig, train_classifier

    _set_threads(args.threads)
    if args.micrographs and args.box is None:
        raise InputError(None, "--micrographs needs --box (box size in micrograph pixels)")
    if args.box is not None and not args.micrographs:
        raise InputError(None, "--box is for coordinate files; give --micrographs too (stacks have their own box size)")
    if args.freeze_epochs < 0:
        raise InputError(None, f"--freeze-epochs must be 0 or more, got {args.freeze_epochs}")
    if args.min_val_per_class < 0:
        raise InputError(None, f"--min-val-per-class must be 0 or more, got {args.min_val_per_class}")
    init = None if (args.init or "").lower() == "none" else load_model(args.init)
    size = init.box_size if init is not None else 64
    data = concat([_labelled_boxes(args, list(files), k, size)
                   for k, files in enumerate((args.good, args.bad, args.carbon)) if files])
    counts = data.counts()
    if min(counts[0], counts[1]) < 2:
        raise InputError(None, f"need at least 2 good and 2 bad boxes, got {counts[0]} and {counts[1]}")
    for name, n in zip(("good", "bad", "carbon"), counts):
        if 0 < n < 10:
            _warn(f"only {n} {name} boxes: fine-tuning wants 10 or more per class")
    cw = args.loss_weights
    lr = args.lr if args.lr is not None else (3e-4 if init is not None else 2e-3)
    cfg = TrainConfig(epochs=args.epochs, lr=lr, val_fraction=args.val_fraction, patience=args.patience,
                      freeze_epochs=args.freeze_epochs if init is not None else 0,
                      backbone_lr_factor=args.backbone_lr_factor if init is not None else 1.0,
                      samples_per_epoch=args.samples_per_epoch, seed=args.seed, threads=args.threads,
                      num_workers=max(0, args.workers), min_val_per_class=args.min_val_per_class,
                      loss=LossWeights(ce=cw[0], focal=cw[1], supcon=cw[2]))
    t0 = time.time()
    log = (lambda s: print(s, file=sys.stderr)) if args.json != "-" or not sys.stderr.isatty() else None
    res = train_classifier(data, cfg, init=init, log=log)
    res.model.info["training_data"] = {"good": list(args.good), "bad": list(args.bad), "carbon": list(args.carbon),
                                       "class_counts": counts, "box_px": args.box}
    save_model(args.out, res.model)
    summary = {"model": os.path.abspath(args.out), "n_good": counts[0], "n_bad": counts[1], "n_carbon": counts[2],
               "n_train": res.n_train, "n_val": res.n_val, "epochs_run": len(res.history), "best_epoch": res.best_epoch,
               "threshold": float(res.model.threshold), "threshold_rule": res.model.threshold_rule,
               "validation": {k: float(v) for k, v in res.validation.items()},
               "init": None if init is None else os.path.abspath(args.init) if args.init else "shipped",
               "fine_tuned": res.skipped is None, "skipped": res.skipped,
               "seconds": round(time.time() - t0, 2)}
    if res.skipped:
        _warn(res.skipped + f" (label more boxes, about {5 * args.min_val_per_class} per class, or pass "
              "--min-val-per-class 0 to fine-tune anyway)")
    if args.json is None:
        v = res.validation
        extra = f", validation accuracy {v['accuracy']:.3f}" if v else ""
        print(f"wrote {args.out}: {counts[0]} good / {counts[1]} bad / {counts[2]} carbon boxes, "
              f"threshold {res.model.threshold:.3f}{extra}")
    _emit_json(args.json, summary)
    return 0


# --- run ---------------------------------------------------------------------------------------------
def _fmt(v: float) -> str:
    return "" if not np.isfinite(v) else f"{v:.3f}".rstrip("0").rstrip(".")


def write_scores_csv(path: str, bs, proba: np.ndarray, kept: np.ndarray) -> None:
    """``micrograph,x,y,p_particle,p_ice,p_carbon,kept,index,off_edge``, one row per item, atomically."""
    from deepqs.io.atomic import atomic_output

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["micrograph", "x", "y", "p_particle", "p_ice", "p_carbon", "kept", "index", "off_edge"])
    for i in range(len(bs)):                      # text formatting only
        w.writerow([bs.micrograph[i], _fmt(bs.x[i]), _fmt(bs.y[i]), f"{proba[i, 0]:.6f}", f"{proba[i, 1]:.6f}",
                    f"{proba[i, 2]:.6f}", int(kept[i]), int(bs.index[i]), int(bs.off_edge[i])])
    with atomic_output(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())


def _write_stack_subsets(bs, kept: np.ndarray, out_dir: str) -> Dict[str, List[str]]:
    """kept.mrcs/rejected.mrcs (+ .star) from the original images."""
    import starfile

    from deepqs.io import read_stack, write_stack
    from deepqs.io.atomic import atomic_output
    from deepqs.pruning.boxes import _resolve_stack_path, parse_image_name

    src = bs.source
    written: Dict[str, List[str]] = {"kept": [], "rejected": []}
    if src["kind"] == "stack":
        imgs, ps = read_stack(src["path"], pixel_size=bs.pixel_size_A, mmap=True)
        for name, sel in (("kept", kept), ("rejected", ~kept)):
            if sel.any():
                out = os.path.join(out_dir, f"{name}.mrcs")
                write_stack(out, np.asarray(imgs[np.nonzero(sel)[0]]), ps)
                written[name].append(out)
        return written
    blocks = src["blocks"]
    df = blocks[src["block"]].reset_index(drop=True)
    star_dir = os.path.dirname(os.path.abspath(src["path"]))
    parsed = [parse_image_name(v) for v in df["rlnImageName"].astype(str)]
    sections = np.array([k for k, _ in parsed], dtype=np.int64)
    names = np.array([n for _, n in parsed], dtype=object)
    stacks = {n: read_stack(_resolve_stack_path(n, star_dir), pixel_size=bs.pixel_size_A, mmap=True)[0]
              for n in dict.fromkeys(names)}
    for name, sel in (("kept", kept), ("rejected", ~kept)):
        rows = np.nonzero(sel)[0]
        if rows.size == 0:
            continue
        imgs = np.empty((rows.size,) + next(iter(stacks.values())).shape[1:], np.float32)
        for n, stack in stacks.items():                      # one fancy-index gather per stack file
            here = names[rows] == n
            imgs[here] = stack[sections[rows[here]]]
        mrcs = os.path.join(out_dir, f"{name}.mrcs")
        write_stack(mrcs, imgs, bs.pixel_size_A)
        sub = df.iloc[rows].copy()
        # the stack path as RELION expects it: relative to the working folder (out_dir as given)
        sub["rlnImageName"] = [f"{k + 1:06d}@{mrcs}" for k in range(rows.size)]
        out_blocks = {k: (sub if k == src["block"] else v) for k, v in blocks.items()}
        star = os.path.join(out_dir, f"{name}.star")
        with atomic_output(star) as tmp:
            starfile.write(out_blocks, tmp, overwrite=True)
        written[name] += [mrcs, star]
    return written


def _write_coordinate_subsets(bs, kept: np.ndarray, out_dir: str, box_px: int) -> Dict[str, List[str]]:
    """DIR/kept/<file> and DIR/rejected/<file>, one per input coordinate file, in its format."""
    from deepqs.io import write_coordinates

    written: Dict[str, List[str]] = {"kept": [], "rejected": []}
    by_file: Dict[str, list] = {}
    for cfp, fmt, key, c in bs.source["groups"]:
        by_file.setdefault(cfp, []).append((fmt, key, c))
    start = 0
    for cfp, groups in by_file.items():                     # per coordinate file
        fmt = groups[0][0]
        base = os.path.basename(cfp)
        if fmt == "cs":
            fmt, base = "star", os.path.splitext(base)[0] + ".star"
        for name, want in (("kept", True), ("rejected", False)):
            out: Dict[str, object] = {}
            s = start
            for _, key, c in groups:
                sel = kept[s:s + len(c)] == want
                out[c.micrograph or key] = c.select(sel)
                s += len(c)
            path = os.path.join(out_dir, name, base)
            single = len(out) == 1 and groups[0][2].micrograph is None
            write_coordinates(path, next(iter(out.values())) if single else out, fmt=fmt,
                              box_size=groups[0][2].box_size or box_px)
            written[name].append(path)
        start += sum(len(c) for _, _, c in groups)
    return written


def run_prune(args) -> int:
    from deepqs.errors import InputError
    from deepqs.pruning.boxes import read_micrograph_boxes, read_particle_boxes
    from deepqs.pruning.model import DEFAULT_MODEL, load_model
    from deepqs.pruning.predict import predict_proba, resolve_threshold

    _set_threads(args.threads)
    if args.micrographs is not None and (args.coords is None or args.box is None):
        raise InputError(None, "--micrographs needs --coords (coordinate files) and --box (box size in pixels)")
    if args.particles is not None and (args.coords is not None or args.box is not None):
        raise InputError(None, "--coords and --box go with --micrographs, not with --particles")
    model = load_model(args.model)
    threshold = resolve_threshold(model, args.threshold) if args.threshold != "adaptive" else None
    t0 = time.time()
    if args.particles is not None:
        bs = read_particle_boxes(args.particles, model.box_size, args.pixel_size)
    else:
        bs = read_micrograph_boxes(args.micrographs, args.coords, args.box, model.box_size, args.pixel_size,
                                   args.pad, warn=_warn)
    t_read = time.time() - t0
    t1 = time.time()
    proba = (predict_proba(model, bs.boxes, args.batch_size, device=args.device, tta=bool(args.tta)) if len(bs)
             else np.zeros((0, 3), np.float32))
    t_pred = time.time() - t1
    if threshold is None:
        threshold = resolve_threshold(model, "adaptive", proba[:, 0])
    kept = proba[:, 0] >= threshold
    n_edge = int(bs.off_edge.sum())
    if n_edge:
        _warn(f"{n_edge} of {len(bs)} boxes run off the micrograph edge and were padded ({args.pad}); "
              "they are flagged in scores.csv (off_edge = 1)")
    os.makedirs(args.out_dir, exist_ok=True)
    scores = os.path.join(args.out_dir, "scores.csv")
    write_scores_csv(scores, bs, proba, kept)
    if bs.source["kind"] == "coordinates":
        written = _write_coordinate_subsets(bs, kept, args.out_dir, args.box)
    else:
        written = _write_stack_subsets(bs, kept, args.out_dir)
    unmatched = int(sum(bs.source.get("unmatched", {}).values()))
    pred = proba.argmax(1) if len(bs) else np.zeros(0, int)
    summary = {"n_items": len(bs), "n_kept": int(kept.sum()), "n_rejected": int((~kept).sum()),
               "threshold": float(threshold),
               "threshold_rule": {"balanced": model.threshold_rule,
                                  "adaptive": "adaptive: best expected macro-F1 at the estimated share of particles "
                                              "of these boxes"}.get(args.threshold, "given")
               if isinstance(args.threshold, str) else "given",
               "tta": bool(args.tta), "n_predicted_particle": int((pred == 0).sum()), "n_predicted_ice": int((pred == 1).sum()),
               "n_predicted_carbon": int((pred == 2).sum()), "n_off_edge": n_edge,
               "n_unmatched_coordinates": unmatched,
               "model": os.path.abspath(args.model) if args.model else DEFAULT_MODEL,
               "scores_csv": os.path.abspath(scores), "kept_files": [os.path.abspath(p) for p in written["kept"]],
               "rejected_files": [os.path.abspath(p) for p in written["rejected"]],
               "seconds_reading": round(t_read, 3), "seconds_scoring": round(t_pred, 3),
               "boxes_per_second": round(len(bs) / t_pred, 1) if t_pred > 0 and len(bs) else None}
    if args.json is None:
        print(f"kept {summary['n_kept']} of {summary['n_items']} boxes (p_particle >= {threshold:.3f}); "
              f"scores in {scores}")
    _emit_json(args.json, summary)
    return 0
