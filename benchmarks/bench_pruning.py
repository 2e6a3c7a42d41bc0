"""Benchmark of particle pruning: ``python benchmarks/bench_pruning.py [--model M.pt] [--threads 1] [--parts ...]``.

Prints a markdown table (the "Particle pruning" section of docs/benchmarks.md) and a JSON blob:

1. **Simulated, 50 labels per class**: the pretrained model fine-tuned with the ``deepqs prune train``
   schedule (a third of the epochs (at most 5) with the backbone frozen, then all, lr 3e-4, backbone
   at 0.1 × lr, the pretrained weights kept when no epoch lowers the validation loss) on 50 boxes per
   class drawn from simulated micrographs it never saw (seed 101), scored on a held-out simulated set
   (seed 202): good-vs-bad accuracy and macro-F1 at the model's threshold, plus the 3-class figures.
   Also the pretrained model with no fine-tuning.
2. **Multi-loss vs cross-entropy only**: the same few-label fine-tuning with the multi-loss weights
   (``MULTI``) vs (1, 0, 0), on the same label draws and seeds (mean ± s.d. over ``--repeats``), and the
   same from scratch (no pretraining), where the loss has more to do; on the real boxes too.
3. **Real boxes (cryoppp_dev test split)**: good = boxes at annotated centres, bad = boxes centred
   more than one diameter from every annotation *and* whose area the annotated particle mask covers
   for at most 2 % (:func:`deepqs.pruning.real.cryoppp_boxes`); the 50 labels per class are drawn
   from the test split's boxes, the figures are on all the other test boxes (~94 % good).  Each model
   is scored at its own ("balanced") threshold and with test-time augmentation + the "adaptive"
   threshold (chosen without labels on the boxes being pruned: ``deepqs prune run --tta --threshold
   adaptive``).  Zero-shot figures too, and the zero-shot figures with the old labelling (bad = more
   than one diameter from every annotation, no mask check).  Skipped when shared/data is absent.
4. **Real autopicks next to carbon** (``shared/data/micrographs/ucsf_stack_1142``, zero-shot, box
   80 px): share of RELION autopicks rejected on (MicrographCleaner mask > 0.5 at the centre) and off
   the carbon/contamination mask.  No fine-tuning; only a sanity check (45 picks).
5. **Few-label paired comparison** (``--parts fewlabel``): multi-loss (``MULTI``) vs cross-entropy alone, trained
   from scratch on few labels from the seed-101 pool, scored on the seed-202 test set, for each class-count
   setting of ``--few-counts`` (default 50/50/50 and the imbalanced 50/50/10 particle/ice/carbon).  Draw ``r``
   (of ``--repeats``) takes its boxes with ``default_rng(7000 + r)`` and trains with seed ``r`` for both losses
   (same boxes, same initialisation, same batches and augmentation); 15 epochs of 1,024 class-balanced boxes,
   lr 2e-3, all labels used for training (no validation split: with 10 validation boxes per class the early
   stopping picked near-random epochs and its noise swamped any loss effect), threshold 0.5.  Prints the mean
   paired difference (multi − CE), its standard error and the sign count, for good-vs-bad and 3-class accuracy.
6. **Few-label fine-tuning, paired, real boxes** (``--parts fewlabel-ft``; pre-registered protocol): the shipped
   model fine-tuned with the ``deepqs prune train`` defaults (:func:`cli_finetune`: 30 epochs of 1,024
   class-balanced boxes, 5 with the backbone frozen, patience 8, 20 % validation, lr 3e-4, backbone 0.1 × lr,
   pretrained weights kept when no epoch lowers the validation loss) on ``--ft-counts`` good and bad labels
   (default 10 and 20 per class), each variant of ``--ft-variants`` (``FT_VARIANTS``) against cross-entropy alone on
   the same draw and seed.  Boxes: the cryoppp_dev **test** split (``cryoppp_boxes(seed=7)``; the train and valid
   splits trained and thresholded the shipped model), split by micrograph into a DEV pool (2 micrographs per EMPIAR
   set) and a TEST pool (the other 3) with ``default_rng(2026)`` (:func:`ft_pools`).  Draw ``r`` takes the labels
   from ``--ft-pool`` with ``default_rng(9000 + r)`` (TEST; DEV: ``8000 + r``), trains with seed ``r``, and scores
   the rest of that pool at the fine-tuned model's threshold.  The labelled boxes get one group per class (one
   file per class in the CLI, so a stratified validation split).  Prints the mean paired macro-F1 and accuracy
   difference (variant − CE) ± its standard error, the sign counts and the pretrained model's own figures.
7. **Throughput** of :func:`deepqs.pruning.predict.predict_proba` on 64 × 64 boxes (1 and 2 threads).
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
from deepqs.pruning.metrics import binary_report, expected_f1_threshold, macro_f1  # noqa: E402
from deepqs.pruning.model import load_model  # noqa: E402
from deepqs.pruning.predict import predict_proba  # noqa: E402
from deepqs.pruning.real import cryoppp_boxes  # noqa: E402
from deepqs.pruning.simulated import LabelledBoxes, particle_pool, simulated_set  # noqa: E402
from deepqs.pruning.train import TrainConfig, train_classifier  # noqa: E402

MULTI = LossWeights(1.0, 1.0, 1.0, gamma=2.0, temperature=0.2)   # = LossWeights(), tuned on simulated validation
CE = LossWeights(1.0, 0.0, 0.0)
#: Variants of the ``fewlabel-ft`` part (each against ``CE``); "supcon0.1" was frozen on the DEV pool.
FT_VARIANTS = {
    "supcon0.1": LossWeights(1.0, 0.0, 0.1, temperature=0.2),
    "supconproj0.3": LossWeights(1.0, 0.0, 0.3, temperature=0.1, proj_dim=32),
    "centre0.3": LossWeights(1.0, 0.0, 0.0, centre=0.3),
    "focal": LossWeights(1.0, 1.0, 0.0, gamma=2.0),
    "default": LossWeights(),
}


def few_labels(data: LabelledBoxes, n: int, rng: np.random.Generator) -> LabelledBoxes:
    """``n`` random boxes per class present."""
    idx = np.concatenate([rng.choice(np.nonzero(data.labels == c)[0], n, replace=False)
                          for c in np.unique(data.labels)])
    return data.select(np.sort(idx))


def finetune(model, labelled, loss, seed, epochs, scratch=False):
    """The ``deepqs prune train`` schedule (fine-tuning) or plain training from scratch (``scratch``)."""
    cfg = TrainConfig(epochs=epochs, lr=3e-4 if not scratch else 2e-3, freeze_epochs=0 if scratch else min(5, epochs // 3),
                      backbone_lr_factor=1.0 if scratch else 0.1, samples_per_epoch=1024, patience=8, seed=seed,
                      loss=loss, val_fraction=0.2, min_val_per_class=0)   # the schedule itself (no few-label guard)
    res = train_classifier(labelled, cfg, init=None if scratch else model)
    res.model.info["bench_best_epoch"] = res.best_epoch
    return res.model


def cli_finetune(model, labelled: LabelledBoxes, loss: LossWeights, seed: int):
    """Fine-tuning with the ``deepqs prune train`` defaults (30 epochs, 5 frozen, patience 8, val 0.2, lr 3e-4,
    backbone 0.1 × lr, 1,024 boxes per epoch) but without the CLI's few-label guard (``min_val_per_class`` 0:
    with 10-20 labels per class the CLI now keeps the pretrained model untouched), so that the schedule itself
    is measured; returns the :class:`TrainResult`."""
    cfg = TrainConfig(epochs=30, lr=3e-4, val_fraction=0.2, patience=8, freeze_epochs=5, backbone_lr_factor=0.1,
                      samples_per_epoch=1024, seed=seed, loss=loss, min_val_per_class=0)
    return train_classifier(labelled, cfg, init=model)


def ft_pools(real: LabelledBoxes, n_dev: int = 2, seed: int = 2026):
    """(DEV, TEST) pools of the ``fewlabel-ft`` part: per EMPIAR set (in the order 10028, 10059, 10947),
    ``default_rng(seed).permutation`` of its micrographs, the first ``n_dev`` to DEV, the rest to TEST."""
    from deepqs.pruning.real import cryoppp_micrographs

    mics = cryoppp_micrographs()
    rng = np.random.default_rng(seed)
    dev = []
    for ds in dict.fromkeys(m[0] for m in mics):                  # per EMPIAR set
        g = np.array([i for i, m in enumerate(mics) if m[0] == ds])
        dev.extend(g[rng.permutation(g.size)[:n_dev]].tolist())
    in_dev = np.isin(real.group, dev)
    return real.select(np.nonzero(in_dev)[0]), real.select(np.nonzero(~in_dev)[0])


def ft_draw(pool: LabelledBoxes, n: int, rng: np.random.Generator):
    """(``n`` good + ``n`` bad labels with one group per class, the rest of ``pool``)."""
    idx = np.sort(np.concatenate([rng.choice(np.nonzero(pool.labels == c)[0], n, replace=False) for c in (0, 1)]))
    few = pool.select(idx)
    return (LabelledBoxes(few.boxes, few.labels, few.labels.copy()),
            pool.select(np.setdiff1d(np.arange(len(pool)), idx)))


def few_labels_counts(data: LabelledBoxes, counts, rng: np.random.Generator) -> LabelledBoxes:
    """``counts[c]`` random boxes of class ``c``."""
    idx = np.concatenate([rng.choice(np.nonzero(data.labels == c)[0], int(n), replace=False)
                          for c, n in enumerate(counts)])
    return data.select(np.sort(idx))


def scratch_all_labels(labelled: LabelledBoxes, loss: LossWeights, seed: int, epochs: int):
    """From scratch on every given label (no validation split, threshold 0.5): the ``fewlabel`` protocol."""
    cfg = TrainConfig(epochs=epochs, lr=2e-3, samples_per_epoch=1024, patience=8, seed=seed, loss=loss,
                      val_fraction=0.0)
    return train_classifier(labelled, cfg).model


def paired_summary(a, b) -> dict:
    """Mean paired difference a − b, its standard error, and the sign count (a better / b better)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
    return {"n": int(d.size), "mean_a": float(np.mean(a)), "mean_b": float(np.mean(b)), "diff": float(d.mean()),
            "se": se, "a_better": int((d > 0).sum()), "b_better": int((d < 0).sum())}


def scores(model, test: LabelledBoxes, tta: bool = False, adaptive: bool = False) -> dict:
    """Good-vs-bad figures at the model's threshold (or the adaptive one), 3-class figures, the best epoch."""
    p = predict_proba(model, test.boxes, tta=tta)
    t = expected_f1_threshold(p[:, 0]) if adaptive else model.threshold
    rep = binary_report(p[:, 0], test.labels == 0, t)
    rep["macro_f1_3class"] = macro_f1(test.labels, p.argmax(1), 3)
    rep["accuracy_3class"] = float(np.mean(p.argmax(1) == test.labels))
    rep["best_epoch"] = float(model.info.get("bench_best_epoch", -1))
    return rep


def fewlabel_ft(model, args, log):
    """The ``fewlabel-ft`` part (module doc, item 6); None without the shared data."""
    real = cryoppp_boxes(splits=("test",), seed=7)
    if real is None:
        log("shared/data not found: fewlabel-ft skipped")
        return None
    dev, test = ft_pools(real)
    pool = dev if args.ft_pool == "dev" else test
    base = 8000 if args.ft_pool == "dev" else 9000
    variants = [v for v in args.ft_variants.split(",") if v]
    out = {"pool": args.ft_pool, "pool_counts": pool.counts(), "variants": {v: FT_VARIANTS[v].as_dict() for v in variants},
           "counts": {}}
    metrics = ("accuracy", "macro_f1", "balanced_accuracy", "threshold", "best_epoch")
    for n in [int(x) for x in args.ft_counts.split(",")]:                 # labels per class
        rows = {k: [] for k in ["zero_shot", "ce"] + variants}
        for r in range(args.repeats):                                      # label draws, same for every loss
            few, held = ft_draw(pool, n, np.random.default_rng(base + r))
            rows["zero_shot"].append(scores(model, held))
            for k in ["ce"] + variants:
                fit = cli_finetune(model, few, CE if k == "ce" else FT_VARIANTS[k], r)
                fit.model.info["bench_best_epoch"] = fit.best_epoch
                rows[k].append(scores(fit.model, held))
            log(f"fewlabel-ft {n}/class draw {r + 1}/{args.repeats}: " + ", ".join(
                f"{k} F1 {v[-1]['macro_f1']:.4f}" + ("" if k == "zero_shot" else f" (epoch {int(v[-1]['best_epoch'])})")
                for k, v in rows.items()))
        out["counts"][str(n)] = {k: {m: [float(x[m]) for x in v] for m in metrics} for k, v in rows.items()}
    return out


def throughput(model, threads: int, n: int = 8192, tta: bool = False) -> dict:
    """Boxes per second of wall-clock time and per second of this process's CPU time (contention-free)."""
    torch.set_num_threads(threads)
    boxes = np.random.default_rng(0).standard_normal((n, 64, 64)).astype(np.float32)
    predict_proba(model, boxes[:512])
    t, c = time.perf_counter(), time.process_time()
    predict_proba(model, boxes, tta=tta)
    return {"wall": n / (time.perf_counter() - t), "per_cpu_second": n / (time.process_time() - c)}


def sim_sets(n_micrographs: int, cache=None):
    """(label pool, test): simulated micrographs of seeds 101 and 202, 12 particle shapes; cached as .npz."""
    path = os.path.join(cache, f"bench_sim_{n_micrographs}.npz") if cache else None
    if path and os.path.exists(path):
        z = np.load(path)
        return LabelledBoxes(z["pb"], z["pl"], z["pg"]), LabelledBoxes(z["tb"], z["tl"], z["tg"])
    pool = particle_pool(12, seed=0)
    label_pool = simulated_set(n_micrographs, seed=101, pool=pool)
    test = simulated_set(n_micrographs, seed=202, pool=pool)
    if path:
        os.makedirs(cache, exist_ok=True)
        np.savez(path, pb=label_pool.boxes, pl=label_pool.labels, pg=label_pool.group, tb=test.boxes, tl=test.labels,
                 tg=test.group)
    return label_pool, test


def ucsf_check(model):
    """Zero-shot rejection of autopicks on / off the carbon-contamination mask (None without the data)."""
    from deepqs.io import read_coordinates, read_micrograph
    from deepqs.pruning.boxes import extract_boxes
    from deepqs.pruning.real import SHARED_DATA

    d = os.path.join(SHARED_DATA, "micrographs", "ucsf_stack_1142")
    if not os.path.isdir(d):
        return None
    img, _ = read_micrograph(os.path.join(d, "Ucsf_stack_1142_DW.mrc"))
    mask, _ = read_micrograph(os.path.join(d, "Ucsf_stack_1142_DW_carbon_mask.mrc"))
    c = read_coordinates(os.path.join(d, "Ucsf_stack_1142_DW_autopick.star"))
    boxes, _ = extract_boxes(img, c.xy, 80, model.box_size)
    p = predict_proba(model, boxes)
    on = mask[np.clip(np.rint(c.y).astype(int), 0, img.shape[0] - 1), np.clip(np.rint(c.x).astype(int), 0, img.shape[1] - 1)] > 0.5
    kept = p[:, 0] >= model.threshold
    return {"n_on_mask": int(on.sum()), "n_off_mask": int((~on).sum()),
            "rejected_on_mask": float(np.mean(~kept[on])) if on.any() else None,
            "rejected_off_mask": float(np.mean(~kept[~on])) if (~on).any() else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="pretrained model (default: the shipped one)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="label draws (mean ± s.d. over them)")
    ap.add_argument("--epochs", type=int, default=15, help="fine-tuning epochs (1024 boxes each)")
    ap.add_argument("--labels", type=int, default=50, help="labels per class")
    ap.add_argument("--few-counts", default="50,50,50;50,50,10",
                    help="fewlabel part: ';'-separated particle,ice,carbon label counts")
    ap.add_argument("--ft-counts", default="10,20", help="fewlabel-ft part: good and bad labels per draw")
    ap.add_argument("--ft-pool", default="test", choices=("dev", "test"), help="fewlabel-ft part: micrograph pool")
    ap.add_argument("--ft-variants", default="supcon0.1",
                    help=f"fewlabel-ft part: comma-separated variants vs CE, of {', '.join(FT_VARIANTS)}")
    ap.add_argument("--parts", default="sim,simce,scratch,real,realce,ucsf,speed",
                    help="comma-separated parts: sim (zero-shot + multi-loss fine-tuning), simce (CE-only "
                         "fine-tuning), scratch (both losses without pretraining), real, realce (CE-only on the "
                         "real boxes), ucsf, speed, fewlabel (paired multi-loss vs CE from scratch, "
                         "not in the default list), fewlabel-ft (paired loss variants vs CE, fine-tuning on few "
                         "real labels, not in the default list)")
    ap.add_argument("--micrographs", type=int, default=40, help="simulated micrographs per set (label pool, test)")
    ap.add_argument("--json-out", default=None, help="also write the results here")
    ap.add_argument("--cache", default=None, metavar="DIR", help="keep/reuse the simulated sets here (.npz)")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    torch.set_num_threads(args.threads)
    t0 = time.time()
    log = lambda s: print(f"[{time.time() - t0:7.1f} s] {s}", file=sys.stderr, flush=True)  # noqa: E731
    model = load_model(args.model)
    res: dict = {"labels_per_class": args.labels, "threads": args.threads, "repeats": args.repeats,
                 "epochs": args.epochs, "model": args.model or "shipped"}
    if parts & {"sim", "simce", "scratch", "fewlabel"}:
        label_pool, test = sim_sets(args.micrographs, args.cache)
        log(f"simulated: label pool {label_pool.counts()}, test {test.counts()}")
        if "sim" in parts:
            res["sim_zero_shot"] = scores(model, test)
        runs = [k for k, want in (("multi_pre", "sim"), ("ce_pre", "simce"), ("multi_scratch", "scratch"),
                                  ("ce_scratch", "scratch")) if want in parts]
        rows = {k: [] for k in runs}
        for r in range(args.repeats if runs else 0):                   # label draws
            few = few_labels(label_pool, args.labels, np.random.default_rng(1000 + r))
            for k in runs:
                loss = MULTI if k.startswith("multi") else CE
                rows[k].append(scores(finetune(model, few, loss, r, args.epochs, scratch=k.endswith("scratch")), test))
            log(f"draw {r + 1}/{args.repeats}: " + ", ".join(f"{k} acc {v[-1]['accuracy']:.3f}" for k, v in rows.items()))
        if runs:
            res["sim_few_labels"] = {k: {m: [float(x[m]) for x in v] for m in v[0]} for k, v in rows.items() if v}
    if "fewlabel" in parts:
        res["fewlabel"] = {}
        for spec in args.few_counts.split(";"):                         # class-count settings
            counts = [int(x) for x in spec.split(",")]
            rows = {"multi": [], "ce": []}
            for r in range(args.repeats):                                  # label draws, same for both losses
                few = few_labels_counts(label_pool, counts, np.random.default_rng(7000 + r))
                for k, loss in (("multi", MULTI), ("ce", CE)):
                    rows[k].append(scores(scratch_all_labels(few, loss, r, args.epochs), test))
                log(f"fewlabel {spec} draw {r + 1}/{args.repeats}: " + ", ".join(
                    f"{k} acc {v[-1]['accuracy']:.3f}" for k, v in rows.items()))
            res["fewlabel"][spec] = {k: {m: [float(x[m]) for x in v] for m in v[0]} for k, v in rows.items()}
    if "fewlabel-ft" in parts:
        res["fewlabel_ft"] = fewlabel_ft(model, args, log)
    if "real" in parts:
        real = cryoppp_boxes(splits=("test",), seed=7)
        if real is not None:
            old = cryoppp_boxes(splits=("test",), seed=7, max_mask_fraction=None)
            res["real_old_labels_zero_shot"] = {"counts": old.counts(), **scores(model, old)}
            rng = np.random.default_rng(5)
            real_rows = {k: [] for k in ("zero_shot", "zero_shot_tta", "multi", "multi_tta", "ce", "ce_tta")}
            for r in range(args.repeats):                                # label draws (same for both losses)
                idx = np.concatenate([rng.choice(np.nonzero(real.labels == c)[0], args.labels, replace=False)
                                      for c in (0, 1)])
                rest = np.setdiff1d(np.arange(len(real)), idx)
                few, held = real.select(idx), real.select(rest)
                real_rows["zero_shot"].append(scores(model, held))
                real_rows["zero_shot_tta"].append(scores(model, held, tta=True, adaptive=True))
                for k, loss, want in (("multi", MULTI, "real"), ("ce", CE, "realce")):
                    if want in parts:
                        ft = finetune(model, few, loss, r, args.epochs)
                        real_rows[k].append(scores(ft, held))
                        real_rows[k + "_tta"].append(scores(ft, held, tta=True, adaptive=True))
                log(f"real draw {r + 1}/{args.repeats}: " + ", ".join(
                    f"{k} acc {v[-1]['accuracy']:.3f} F1 {v[-1]['macro_f1']:.3f}" for k, v in real_rows.items() if v))
            res["real_cryoppp_test"] = {"counts": real.counts(), "held_out_good_fraction": float(np.mean(held.labels == 0)),
                                        **{k: {m: [float(x[m]) for x in v] for m in v[0]}
                                           for k, v in real_rows.items() if v}}
        else:
            res["real_cryoppp_test"] = None
            log("shared/data not found: real-data benchmark skipped")
    if "ucsf" in parts:
        res["ucsf_autopicks"] = ucsf_check(model)
    if "speed" in parts:
        res["throughput_boxes_per_s"] = {"1_thread": throughput(model, 1), "2_threads": throughput(model, 2),
                                         "1_thread_tta": throughput(model, 1, 2048, tta=True)}
        torch.set_num_threads(args.threads)
    res["minutes"] = (time.time() - t0) / 60
    print_table(res)
    print("\n```json\n" + json.dumps(res, indent=1) + "\n```")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


def _ms(v):
    v = np.asarray(v, float)
    return f"{v.mean():.3f}" if v.size == 1 else f"{v.mean():.3f} ± {v.std():.3f}"


def print_table(res: dict) -> None:
    n = res["labels_per_class"]
    if any(k in res for k in ("sim_zero_shot", "sim_few_labels", "real_old_labels_zero_shot", "real_cryoppp_test")):
        print("| setting | accuracy | macro-F1 | balanced accuracy | F1 good | 3-class accuracy | 3-class macro-F1 |")
        print("|---|---|---|---|---|---|---|")

    def row(label, v, three=True):
        extra = f"{_ms(v['accuracy_3class'])} | {_ms(v['macro_f1_3class'])}" if three else "– | –"
        print(f"| {label} | {_ms(v['accuracy'])} | {_ms(v['macro_f1'])} | {_ms(v['balanced_accuracy'])} | "
              f"{_ms(v['f1_good'])} | {extra} |")

    if "sim_zero_shot" in res:
        row("simulated held-out, pretrained, no fine-tuning", res["sim_zero_shot"])
    names = {"multi_pre": f"simulated, pretrained + {n}/class, multi-loss",
             "ce_pre": f"simulated, pretrained + {n}/class, CE only",
             "multi_scratch": f"simulated, from scratch on {n}/class, multi-loss",
             "ce_scratch": f"simulated, from scratch on {n}/class, CE only"}
    for k, label in names.items():
        if k in res.get("sim_few_labels", {}):
            row(label, res["sim_few_labels"][k])
    if res.get("real_old_labels_zero_shot"):
        row("cryoppp_dev test, old labels (bad: > 1 diameter, no mask check), pretrained, no fine-tuning",
            res["real_old_labels_zero_shot"], three=False)
    real = res.get("real_cryoppp_test")
    if real:
        for k, label in (("zero_shot", "cryoppp_dev test, pretrained, no fine-tuning"),
                         ("zero_shot_tta", "cryoppp_dev test, pretrained, no fine-tuning, TTA + adaptive threshold"),
                         ("multi", f"cryoppp_dev test, pretrained + {n}/class, multi-loss"),
                         ("multi_tta", f"cryoppp_dev test, pretrained + {n}/class, multi-loss, TTA + adaptive threshold"),
                         ("ce", f"cryoppp_dev test, pretrained + {n}/class, CE only"),
                         ("ce_tta", f"cryoppp_dev test, pretrained + {n}/class, CE only, TTA + adaptive threshold")):
            if k in real:
                row(label, real[k], three=False)
        for k in ("multi", "ce"):
            if k in real:
                print(f"\nbest epochs ({k}): {[int(e) for e in real[k]['best_epoch']]} (0 = pretrained weights kept)")
    bars(res)
    few = res.get("fewlabel")
    if few:
        print("\nFew labels from scratch, multi-loss vs CE alone, paired over the same draws (diff = multi − CE):\n")
        print("| labels particle/ice/carbon | metric | draws | multi-loss | CE only | mean paired diff | s.e. | "
              "multi better / CE better |")
        print("|---|---|---|---|---|---|---|---|")
        for spec, v in few.items():
            for m, name in (("accuracy", "good-vs-bad accuracy"), ("accuracy_3class", "3-class accuracy")):
                p = paired_summary(v["multi"][m], v["ce"][m])
                print(f"| {spec.replace(',', '/')} | {name} | {p['n']} | {p['mean_a']:.3f} | {p['mean_b']:.3f} | "
                      f"{p['diff']:+.4f} | {p['se']:.4f} | {p['a_better']} / {p['b_better']} |")
    ft = res.get("fewlabel_ft")
    if ft:
        print(f"\nFew real labels, fine-tuning with the `deepqs prune train` defaults, variant vs CE alone on the same "
              f"draws ({ft['pool']} pool, {ft['pool_counts'][0]} good / {ft['pool_counts'][1]} bad; good-vs-bad at the "
              f"model's threshold; diff = variant − CE ± s.e.; signs = variant better / CE better / tie):\n")
        print("| labels per class | variant | draws | macro-F1 variant | macro-F1 CE | macro-F1 diff | signs | "
              "accuracy variant | accuracy CE | accuracy diff | signs | zero-shot macro-F1 / accuracy | "
              "CE kept epoch 0 / <= 5 |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for n, v in ft["counts"].items():
            ep = np.asarray(v["ce"]["best_epoch"])
            for k in v:
                if k in ("ce", "zero_shot"):
                    continue
                f = paired_summary(v[k]["macro_f1"], v["ce"]["macro_f1"])
                a = paired_summary(v[k]["accuracy"], v["ce"]["accuracy"])
                print(f"| {n} | {k} | {f['n']} | {f['mean_a']:.4f} | {f['mean_b']:.4f} | {f['diff']:+.4f} ± {f['se']:.4f} | "
                      f"{f['a_better']} / {f['b_better']} / {f['n'] - f['a_better'] - f['b_better']} | {a['mean_a']:.4f} | "
                      f"{a['mean_b']:.4f} | {a['diff']:+.4f} ± {a['se']:.4f} | {a['a_better']} / {a['b_better']} / "
                      f"{a['n'] - a['a_better'] - a['b_better']} | {np.mean(v['zero_shot']['macro_f1']):.4f} / "
                      f"{np.mean(v['zero_shot']['accuracy']):.4f} | {int((ep == 0).sum())} / {int((ep <= 5).sum())} |")
    u = res.get("ucsf_autopicks")
    if u:
        print(f"\nReal autopicks beside carbon (ucsf_stack_1142, zero-shot, box 80 px): "
              f"{u['rejected_on_mask']:.0%} of the {u['n_on_mask']} picks on the carbon/contamination mask rejected, "
              f"{u['rejected_off_mask']:.0%} of the {u['n_off_mask']} picks off it.")
    t = res.get("throughput_boxes_per_s")
    if t:
        print(f"\nThroughput (64 × 64 boxes, CPU): {t['1_thread']['wall']:.0f} boxes/s wall-clock on 1 thread "
              f"({t['1_thread']['per_cpu_second']:.0f} per CPU-second), {t['2_threads']['wall']:.0f} boxes/s on 2 threads "
              f"({t['2_threads']['per_cpu_second']:.0f} per CPU-second); with --tta {t['1_thread_tta']['wall']:.0f} "
              f"boxes/s on 1 thread ({t['1_thread_tta']['per_cpu_second']:.0f} per CPU-second).")


def bars(res: dict) -> None:
    """The issue's bars as measured here."""
    n = res["labels_per_class"]
    lines = []
    sim = res.get("sim_few_labels", {})
    if "multi_pre" in sim:
        v = sim["multi_pre"]
        lines.append(f"simulated, {n}/class: accuracy {_ms(v['accuracy'])}, macro-F1 {_ms(v['macro_f1'])} (bar >= 0.95: "
                     f"{'met' if min(np.mean(v['accuracy']), np.mean(v['macro_f1'])) >= 0.95 else 'NOT met'})")
    real = res.get("real_cryoppp_test")
    if real and "multi_tta" in real:
        v = real["multi_tta"]
        ok = min(np.mean(v["accuracy"]), np.mean(v["macro_f1"])) >= 0.9
        lines.append(f"cryoppp_dev test, {n}/class from the test split, rest scored (TTA + adaptive threshold): accuracy "
                     f"{_ms(v['accuracy'])}, macro-F1 {_ms(v['macro_f1'])}, balanced accuracy "
                     f"{_ms(v['balanced_accuracy'])}, F1 good {_ms(v['f1_good'])} (bar >= 0.9: {'met' if ok else 'NOT met'})")
    for a, b, what in (("multi_pre", "ce_pre", "simulated, pretrained"), ("multi_scratch", "ce_scratch", "simulated, scratch")):
        if a in sim and b in sim:
            lines.append(_versus(sim[a], sim[b], what))
    if real:
        for a, b, what in (("multi", "ce", "cryoppp_dev"), ("multi_tta", "ce_tta", "cryoppp_dev, TTA + adaptive")):
            if a in real and b in real:
                lines.append(_versus(real[a], real[b], what))
    if lines:
        print("\nAgainst the bars:\n" + "\n".join("- " + x for x in lines))


def _versus(a: dict, b: dict, what: str) -> str:
    """Multi-loss vs CE on the same draws: mean paired difference of the macro-F1 and its s.d."""
    d = np.asarray(a["macro_f1"]) - np.asarray(b["macro_f1"])
    sd = float(max(np.std(a["macro_f1"]), np.std(b["macro_f1"])))
    verdict = "multi-loss better" if d.mean() > sd else ("CE better" if -d.mean() > sd else "no difference beyond the s.d.")
    return (f"multi-loss vs CE ({what}): macro-F1 {_ms(a['macro_f1'])} vs {_ms(b['macro_f1'])}, paired difference "
            f"{d.mean():+.3f} (per draw {', '.join(f'{x:+.3f}' for x in d)}): {verdict}")


if __name__ == "__main__":
    sys.exit(main())
