"""Side by side with Topaz (not a deepqs dependency): ``/tmp/topaz_venv/bin/python benchmarks/topaz_picking_compare.py [SCALE]``.

Run it in a throwaway venv with ``pip install --no-deps topaz-em==0.3.20 scikit-learn`` and a ``.pth`` file pointing
at the project venv site-packages (torch, numpy, scipy).  Pretrained Topaz (resnet16_u64, general model shipped in topaz-em 0.3.20) on cryoppp_dev valid+test.
Preprocess as topaz does: integer downsample (Fourier), GMM normalisation; score; NMS radius = particle radius
(downsampled px); threshold = max F2 on the valid split (same protocol as deepqs); output JSON of figures."""
import sys, json, os, time
import numpy as np, torch
torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__)); sys.path.insert(0, os.path.dirname(HERE)); sys.path.insert(0, HERE)
import picking_sets
from deepqs.picking.evaluate import match_picks, evaluate_many, best_f2_threshold
from topaz.model.factory import load_model
from topaz.algorithms import non_maximum_suppression
from topaz.utils.image import downsample
from topaz.stats import normalize
scale = int(sys.argv[1]) if len(sys.argv) > 1 else 2
model = load_model('resnet16_u64'); model.eval(); model.fill()
def pick(m):
    x = downsample(m.image.astype(np.float32), scale)
    x, _ = normalize(x, method='gmm', sample=1, num_iters=100, alpha=900, beta=1)
    with torch.no_grad():
        s = model(torch.from_numpy(np.ascontiguousarray(x)).float()[None, None])[0, 0].numpy()
    r = max(1, int(round(m.diameter_px / 2 / scale)))
    t = time.time(); sc, xy = non_maximum_suppression(s, r, threshold=-5.0)
    print(m.name, s.shape, len(sc), "nms %.1f s" % (time.time() - t), file=sys.stderr, flush=True)
    return xy.astype(float) * scale, sc
res = {}
t0 = time.time()
for eid in sorted(picking_sets.CRYOPPP_DIAMETER_PX):
    val = picking_sets.cryoppp('valid', eid); te = picking_sets.cryoppp('test', eid)
    vm = []
    for m in val:
        xy, sc = pick(m); vm.append(match_picks(xy, m.coordinates, m.diameter_px / 4, sc))
    thr, f2 = best_f2_threshold(vm)
    picks = [pick(m) for m in te]
    out = {'threshold_logit': thr}
    for f in (0.5, 1.0):
        mt = [match_picks(xy[sc >= thr], m.coordinates, f * m.diameter_px / 2, sc[sc >= thr]) for (xy, sc), m in zip(picks, te)]
        allm = [match_picks(xy, m.coordinates, f * m.diameter_px / 2, sc) for (xy, sc), m in zip(picks, te)]
        ev = evaluate_many(mt, f).as_dict(); ev['average_precision_all_picks'] = evaluate_many(allm, f).average_precision
        out[f'{f:g}x_radius'] = ev
    res[eid] = out
    print(eid, json.dumps(out, default=float), file=sys.stderr, flush=True)
    res.setdefault('_picks', []).extend([(xy, sc, thr, m) for (xy, sc), m in zip(picks, te)])
pooled = {}
for f in (0.5, 1.0):
    mt = [match_picks(xy[sc >= thr], m.coordinates, f * m.diameter_px / 2, sc[sc >= thr]) for xy, sc, thr, m in res['_picks']]
    pooled[f'{f:g}x_radius'] = evaluate_many(mt, f).as_dict()
del res['_picks']
res['pooled'] = pooled; res['scale'] = scale; res['seconds'] = time.time() - t0
print(json.dumps(res, indent=1, default=float))
