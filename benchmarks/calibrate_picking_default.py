"""Choose the score-map stride (2 or 4 working px) and recalibrate the "auto" threshold of a picking model:
``python benchmarks/calibrate_picking_default.py IN.pt OUT.pt [--real-val]``.

Calibration micrographs: 12 simulated "val" micrographs and 8 particle-free noise micrographs of
1024 x 1024 (white, smoothed, 1/f and CTF-filtered Gaussian noise; labelled empty, so every pick on
them is a false positive), plus the cryoppp_dev valid split with ``--real-val``.  The threshold is
the max-F2 point at 0.5x radius over all of them (``calibrate_threshold``).

The stride with the higher F1 at 0.5x radius wins; 4 (about twice as fast) is kept unless 2 is
better by more than 0.01.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import picking_sets  # noqa: E402

from deepqs.picking.evaluate import evaluate_many, match_picks  # noqa: E402
from deepqs.picking.model import load_model, save_model  # noqa: E402
from deepqs.picking.pick import pick_prepared  # noqa: E402
from deepqs.picking.preprocess import prepare_array  # noqa: E402
from deepqs.picking.train import TrainingExample, calibrate_threshold  # noqa: E402


def noise_floor(model, fraction, size=1536, seed=4242):
    """The lowest threshold that leaves at most ``fraction`` x (particles that would fit) picks on pure noise:
    Gaussian noise of ``size``^2, white and low-passed (sigma 1-1.5 px), particle diameters 40-100 px."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    scores, area = [], 0.0
    for d, smooth in ((40.0, 0.0), (80.0, 1.5), (60.0, 1.0), (100.0, 0.0), (50.0, 1.5), (70.0, 0.0)):
        img = rng.standard_normal((size, size)).astype(np.float32)
        if smooth:
            img = ndimage.gaussian_filter(img, smooth)
        scores.append(pick_prepared(model, prepare_array(img, d), threshold=None).score)
        area += img.size / (np.pi * (d / 2) ** 2)
    s = np.sort(np.concatenate(scores))[::-1]
    k = int(fraction * area)
    return float(s[k]) + 1e-6 if k < len(s) else 0.0


def main() -> int:
    import argparse

    from train_picking_default import noise_examples

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--real-val", action="store_true")
    ap.add_argument("--n-val", type=int, default=12)
    ap.add_argument("--n-noise", type=int, default=8)
    ap.add_argument("--max-noise-fraction", type=float, default=None,
                    help="floor of the threshold: at most this share of the particles that would fit gives a pick on "
                         "large pure-noise micrographs (white and low-passed Gaussian noise, seeds unlike the tests')")
    ap.add_argument("--strides", default="4,2", help="score-map strides to try")
    args = ap.parse_args()
    src, dst = args.src, args.dst
    torch.set_num_threads(1)
    model = load_model(src)
    val = picking_sets.simulated("val", args.n_val) + (picking_sets.cryoppp("valid") if args.real_val else [])
    ex = [TrainingExample(prepare_array(m.image, m.diameter_px, path=m.name), m.coordinates) for m in val]
    ex += noise_examples(args.n_noise, seed=78, shape=(1024, 1024))
    results = {}
    strides = [int(v) for v in args.strides.split(",")]
    for stride in strides:
        model.score_stride_px = stride
        thr, f2 = calibrate_threshold(model, ex)
        if args.max_noise_fraction is not None:
            floor = noise_floor(model, args.max_noise_fraction)
            print(f"stride {stride}: max-F2 threshold {thr:.3f}, noise floor {floor:.3f}", flush=True)
            if floor > thr:
                from deepqs.picking.evaluate import f_beta
                from deepqs.picking.train import _val_matches

                ms = _val_matches(model, ex, "cpu")
                tp = sum(int((m.matched & (m.scores >= floor)).sum()) for m in ms)
                n_p = sum(int((m.scores >= floor).sum()) for m in ms)
                n_t = sum(m.n_truth for m in ms)
                thr, f2 = floor, f_beta(tp / max(n_p, 1), tp / max(n_t, 1), 2.0)
        model.threshold = thr
        matches = []
        for e in ex:
            if len(e.positives) == 0:
                continue
            p = pick_prepared(model, e.prepared, threshold="auto")
            matches.append(match_picks(np.stack([p.x, p.y], 1), e.positives, e.prepared.diameter_px / 4, p.score))
        ev = evaluate_many(matches, 0.5)
        results[stride] = (thr, f2, ev.f1)
        print(f"stride {stride}: threshold {thr:.3f}, validation F2 {f2:.3f}, F1 {ev.f1:.3f} (0.5x radius)", flush=True)
    stride = 2 if 2 in results and (4 not in results or results[2][2] > results[4][2] + 0.01) else 4
    model.score_stride_px = stride
    model.threshold = results[stride][0]
    model.info["threshold_source"] = (f"max F2 at 0.5x radius on {args.n_val} simulated val micrographs + {args.n_noise} "
                                      "noise micrographs (1024^2, labelled empty)"
                                      + (" + cryoppp_dev valid split" if args.real_val else ""))
    model.info["threshold_f2"] = results[stride][1]
    if args.max_noise_fraction is not None:
        model.info["threshold_source"] += (f"; at least the score leaving <= {args.max_noise_fraction:g} x the particles "
                                           "that would fit as picks on 1536^2 pure-noise micrographs")
    save_model(dst, model)
    print(f"chose stride {stride}; wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
