"""Benchmark of particle pruning: ``python benchmarks/bench_pruning.py [--model M.pt] [--threads 1] [--parts ...]``.

Prints a markdown table (the "Particle pruning" section of docs/benchmarks.md) and a JSON blob:

1. **Simulated, 50 labels per class**: the pretrained model fine-tuned (CLI schedule: a third of
   the epochs (at most 5) with the backbone frozen, then all at 0.3 × lr for the backbone, multi-loss) on 50 boxes per class drawn from simulated micrographs it never
   saw (seed 101), scored on a held-out simulated set (seed 202): good-vs-bad accuracy and macro-F1
   at the model's threshold, plus the 3-class figures.  Also the pretrained model with no fine-tuning.
2. **Multi-loss vs cross-entropy only**: the same few-label fine-tuning with loss weights
   (1, 1, 0.2) vs (1, 0, 0), over ``--repeats`` label draws (mean ± s.d.), and the same from
   scratch (no pretraining), where the loss has more to do.
3. **Real boxes (cryoppp_dev test split)**: boxes at annotated centres = good, centres farther
   than one diameter from any annotation = bad; 50 labels per class fine-tune, accuracy/F1 on the
   rest (the held-out rest is ~87 % good, so also read the balanced accuracy); zero-shot figures
   too.  Skipped when shared/data is absent.
4. **Real autopicks next to carbon** (``shared/data/micrographs/ucsf_stack_1142``, zero-shot, box
   80 px): share of RELION autopicks rejected on (MicrographCleaner mask > 0.5 at the centre) and off
   the carbon/contamination mask.  No fine-tuning; only a sanity check (45 picks).
5. **Throughput** of :func:`deepqs.pruning.predict.predict_proba` on 64 × 64 boxes (1 and 2 threads).
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
from deepqs.pruning.metrics import binary_report, macro_f1  # noqa: E402
from deepqs.pruning.model import load_model  # noqa: E402
from deepqs.pruning.predict import predict_proba  # noqa: E402
from deepqs.pruning.real import cryoppp_boxes  # noqa: E402
from deepqs.pruning.simulated import LabelledBoxes, particle_pool, simulated_set  # noqa: E402
from deepqs.pruning.train import TrainConfig, train_classifier  # noqa: E402

MULTI = LossWeights(1.0, 1.0, 0.2)
CE = LossWeights(1.0, 0.0, 0.0)


def few_labels(data: LabelledBoxes, n: int, rng: np.random.Generator) -> LabelledBoxes:
    """``n`` random boxes per class present."""
    idx = np.concatenate([rng.choice(np.nonzero(data.labels == c)[0], n, replace=False)
                          for c in np.unique(data.labels)])
    return data.select(np.sort(idx))


def finetune(model, labelled, loss, seed, epochs, scratch=False):
    cfg = TrainConfig(epochs=epochs, lr=1e-3 if not scratch else 2e-3, freeze_epochs=0 if scratch else min(5, epochs // 3),
                      backbone_lr_factor=1.0 if scratch else 0.3, samples_per_epoch=1024, patience=8, seed=seed,
                      loss=loss, val_fraction=0.2)
    return train_classifier(labelled, cfg, init=None if scratch else model).model


def scores(model, test: LabelledBoxes) -> dict:
    p = predict_proba(model, test.boxes)
    rep = binary_report(p[:, 0], test.labels == 0, model.threshold)
    rep["macro_f1_3class"] = macro_f1(test.labels, p.argmax(1), 3)
    rep["accuracy_3class"] = float(np.mean(p.argmax(1) == test.labels))
    return rep


def throughput(model, threads: int, n: int = 8192) -> dict:
    """Boxes per second of wall-clock time and per second of this process's CPU time (contention-free)."""
    torch.set_num_threads(threads)
    boxes = np.random.default_rng(0).standard_normal((n, 64, 64)).astype(np.float32)
    predict_proba(model, boxes[:512])
    t, c = time.perf_counter(), time.process_time()
    predict_proba(model, boxes)
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
    ap.add_argument("--parts", default="sim,simce,scratch,real,realce,ucsf,speed",
                    help="comma-separated parts: sim (zero-shot + multi-loss fine-tuning), simce (CE-only "
                         "fine-tuning), scratch (both losses without pretraining), real, realce (CE-only on the "
                         "real boxes), ucsf, speed")
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
    if parts & {"sim", "simce", "scratch"}:
        label_pool, test = sim_sets(args.micrographs, args.cache)
        log(f"simulated: label pool {label_pool.counts()}, test {test.counts()}")
        if "sim" in parts:
            res["sim_zero_shot"] = scores(model, test)
        runs = [k for k, want in (("multi_pre", "sim"), ("ce_pre", "simce"), ("multi_scratch", "scratch"),
                                  ("ce_scratch", "scratch")) if want in parts]
        rows = {k: [] for k in runs}
        for r in range(args.repeats):                                  # label draws
            few = few_labels(label_pool, args.labels, np.random.default_rng(1000 + r))
            for k in runs:
                loss = MULTI if k.startswith("multi") else CE
                rows[k].append(scores(finetune(model, few, loss, r, args.epochs, scratch=k.endswith("scratch")), test))
            log(f"draw {r + 1}/{args.repeats}: " + ", ".join(f"{k} acc {v[-1]['accuracy']:.3f}" for k, v in rows.items()))
        res["sim_few_labels"] = {k: {m: [float(x[m]) for x in v] for m in v[0]} for k, v in rows.items() if v}
    if "real" in parts:
        real = cryoppp_boxes(splits=("test",), seed=7)
        if real is not None:
            rng = np.random.default_rng(5)
            real_rows = {"zero_shot": [], "multi": [], "ce": []}
            for r in range(args.repeats):
                idx = np.concatenate([rng.choice(np.nonzero(real.labels == c)[0], args.labels, replace=False)
                                      for c in (0, 1)])
                rest = np.setdiff1d(np.arange(len(real)), idx)
                few, held = real.select(idx), real.select(rest)
                real_rows["zero_shot"].append(scores(model, held))
                real_rows["multi"].append(scores(finetune(model, few, MULTI, r, args.epochs), held))
                if "realce" in parts:
                    real_rows["ce"].append(scores(finetune(model, few, CE, r, args.epochs), held))
                log(f"real draw {r + 1}/{args.repeats}: zero-shot acc {real_rows['zero_shot'][-1]['accuracy']:.3f}, "
                    f"multi acc {real_rows['multi'][-1]['accuracy']:.3f}")
            res["real_cryoppp_test"] = {"counts": real.counts(),
                                        **{k: {m: [float(x[m]) for x in v] for m in v[0]}
                                           for k, v in real_rows.items() if v}}
        else:
            res["real_cryoppp_test"] = None
            log("shared/data not found: real-data benchmark skipped")
    if "ucsf" in parts:
        res["ucsf_autopicks"] = ucsf_check(model)
    if "speed" in parts:
        res["throughput_boxes_per_s"] = {"1_thread": throughput(model, 1), "2_threads": throughput(model, 2)}
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
    print("| setting | accuracy | macro-F1 | balanced accuracy | 3-class accuracy | 3-class macro-F1 |")
    print("|---|---|---|---|---|---|")

    def row(label, v, three=True):
        extra = f"{_ms(v['accuracy_3class'])} | {_ms(v['macro_f1_3class'])}" if three else "– | –"
        print(f"| {label} | {_ms(v['accuracy'])} | {_ms(v['macro_f1'])} | {_ms(v['balanced_accuracy'])} | {extra} |")

    if "sim_zero_shot" in res:
        row("simulated held-out, pretrained, no fine-tuning", res["sim_zero_shot"])
    names = {"multi_pre": f"simulated, pretrained + {n}/class, multi-loss",
             "ce_pre": f"simulated, pretrained + {n}/class, CE only",
             "multi_scratch": f"simulated, from scratch on {n}/class, multi-loss",
             "ce_scratch": f"simulated, from scratch on {n}/class, CE only"}
    for k, label in names.items():
        if k in res.get("sim_few_labels", {}):
            row(label, res["sim_few_labels"][k])
    real = res.get("real_cryoppp_test")
    if real:
        for k, label in (("zero_shot", "cryoppp_dev test, pretrained, no fine-tuning"),
                         ("multi", f"cryoppp_dev test, pretrained + {n}/class, multi-loss"),
                         ("ce", f"cryoppp_dev test, pretrained + {n}/class, CE only")):
            if k in real:
                row(label, real[k], three=False)
    u = res.get("ucsf_autopicks")
    if u:
        print(f"\nReal autopicks beside carbon (ucsf_stack_1142, zero-shot, box 80 px): "
              f"{u['rejected_on_mask']:.0%} of the {u['n_on_mask']} picks on the carbon/contamination mask rejected, "
              f"{u['rejected_off_mask']:.0%} of the {u['n_off_mask']} picks off it.")
    t = res.get("throughput_boxes_per_s")
    if t:
        print(f"\nThroughput (64 × 64 boxes, CPU): {t['1_thread']['wall']:.0f} boxes/s wall-clock on 1 thread "
              f"({t['1_thread']['per_cpu_second']:.0f} per CPU-second), {t['2_threads']['wall']:.0f} boxes/s on 2 threads "
              f"({t['2_threads']['per_cpu_second']:.0f} per CPU-second).")


if __name__ == "__main__":
    sys.exit(main())
