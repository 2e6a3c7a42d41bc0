"""Training of the local-Q network.

* Data: :class:`deepqs.localq.dataset.LocalQDataset` (simulated, seeded per example) or
  :class:`PairsDataset` (real map + model pairs from a CSV with ``map,model`` columns).  The
  *structures* are split into training and validation sets (``val_fraction``, at least one
  structure each when there are two or more), so validation maps are of unseen models.
* Loss: masked mean squared error over labelled voxels, ``Σ w (pred - label)² / Σ w``.
* Optimiser: Adam (``lr``), gradient norm clipped at 1; with ``lr_min`` the learning rate follows a
  cosine from ``lr`` (first epoch) to ``lr_min`` (last epoch), set at the start of every epoch.
* ``fresh``: every epoch draws new simulated examples (example index offset by
  ``epoch · n_examples``) instead of repeating the same ``n_examples``; the validation examples
  are always the same (generated once and kept in memory).
* ``init``: start from the weights of an existing weights file (same architecture and config);
  its validation figures are logged first (epoch 0 of the history is *not* added).
* Seeds: ``torch.manual_seed(seed)`` for the initial weights and the shuffling; each DataLoader
  worker gets ``seed + worker id`` for numpy/torch; examples are deterministic per index anyway.
* Checkpoints: after every epoch ``OUT.ckpt`` (network, optimiser, epoch, history; loads with
  ``weights_only=True``); ``resume=True`` continues from it.  The final (best validation loss)
  weights go to ``OUT`` with :func:`deepqs.io.save_weights`, and a report to ``OUT_report.json``
  and ``OUT_report.png`` (loss curves).
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from deepqs.errors import InputError
from deepqs.io.atomic import atomic_output
from deepqs.localq.dataset import LocalQDataset
from deepqs.localq.network import ARCHITECTURE, DEFAULT_CONFIG, LocalQUNet

__all__ = ["TrainConfig", "TrainReport", "masked_mse", "train_localq", "PairsDataset", "read_pairs",
           "split_sources", "report_paths"]

WEIGHTS_VERSION = "1"


@dataclass
class TrainConfig:
    """Training settings (sizes in voxels of 1 Å, learning rate per Adam step)."""

    n_examples: int = 256          # training examples per epoch
    n_val: int = 32                # validation examples (fixed across epochs)
    epochs: int = 10
    batch: int = 4
    lr: float = 1e-3
    crop: int = 48
    seed: int = 0
    val_fraction: float = 0.1
    workers: int = 0
    device: str = "cpu"
    threads: Optional[int] = None  # torch CPU threads (None: torch's default)
    base: int = DEFAULT_CONFIG["base"]
    depth: int = DEFAULT_CONFIG["depth"]
    max_steps: Optional[int] = None   # stop an epoch after this many steps (tests, smoke runs)
    fresh: bool = False            # new simulated examples every epoch
    lr_min: Optional[float] = None  # cosine decay of the learning rate from lr to lr_min
    init: Optional[str] = None     # initial weights (a weights file of the same architecture)


@dataclass
class TrainReport:
    """History per epoch and the final figures (losses are masked MSE; r = voxel Pearson)."""

    epochs: List[int] = field(default_factory=list)
    train_loss: List[float] = field(default_factory=list)
    val_loss: List[float] = field(default_factory=list)
    val_pearson: List[float] = field(default_factory=list)
    val_mae_median: List[float] = field(default_factory=list)
    best_epoch: int = -1
    seconds: float = 0.0
    n_train_sources: int = 0
    n_val_sources: int = 0
    init_val: Dict[str, float] = field(default_factory=dict)
    lr: List[float] = field(default_factory=list)


def masked_mse(pred: torch.Tensor, label: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``Σ w (pred - label)² / max(Σ w, 1)``."""
    return (weight * (pred - label) ** 2).sum() / weight.sum().clamp_min(1.0)


def report_paths(out: str) -> Dict[str, str]:
    """Checkpoint and report paths next to the weights file ``out``."""
    stem = os.path.splitext(os.fspath(out))[0]
    return {"checkpoint": os.fspath(out) + ".ckpt", "json": stem + "_report.json", "png": stem + "_report.png"}


def split_sources(sources: Sequence, val_fraction: float, seed: int):
    """Shuffle ``sources`` (seeded) and split them into (train, validation) lists."""
    src = list(sources)
    order = np.random.default_rng(seed).permutation(len(src))
    src = [src[i] for i in order]
    if len(src) < 2:
        return src, src
    n_val = min(max(1, int(round(val_fraction * len(src)))), len(src) - 1)
    return src[n_val:], src[:n_val]


def read_pairs(path: str) -> List[tuple]:
    """``(map, model)`` rows of a CSV with a header holding ``map`` and ``model`` columns
    (relative paths are relative to the CSV's folder)."""
    if not os.path.isfile(path):
        raise InputError(path, "file not found")
    folder = os.path.dirname(os.path.abspath(path))
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "map" not in reader.fieldnames or "model" not in reader.fieldnames:
            raise InputError(path, "needs a header line with 'map' and 'model' columns")
        rows = [(os.path.join(folder, r["map"]), os.path.join(folder, r["model"])) for r in reader]
    if not rows:
        raise InputError(path, "no map/model pairs")
    for m, s in rows:
        for f in (m, s):
            if not os.path.isfile(f):
                raise InputError(path, f"listed file {f} not found")
    return rows


class PairsDataset:
    """Random ``crop``³ crops of real maps (resampled to 1 Å) with labels from their models.

    Same item format as :class:`LocalQDataset`; example ``i`` uses pair ``i % len(pairs)`` and
    a crop centred on a random atom (``np.random.default_rng([seed, i])``).
    """

    def __init__(self, pairs: Sequence[tuple], n_examples: int, seed: int = 0, crop: int = 48):
        self.pairs, self.n, self.seed, self.crop = list(pairs), int(n_examples), int(seed), int(crop)
        self._cache = {}

    def __len__(self) -> int:
        return self.n

    def _prepared(self, k: int):
        if k not in self._cache:
            from deepqs.io import atoms_from_structure, read_map, read_model
            from deepqs.localq.labels import label_map
            from deepqs.localq.normalise import normalise_map
            from deepqs.localq.resample import resample_to_spacing
            from deepqs.qscore import compute_qscores
            mpath, spath = self.pairs[k]
            m = read_map(mpath)
            st = read_model(spath)
            st.remove_hydrogens()
            at = atoms_from_structure(st)
            q = compute_qscores(m, at, threads=1).q
            m1 = resample_to_spacing(m, 1.0)
            lab, w = label_map(m1, at.xyz, q)
            x = normalise_map(m1.data)
            pad = self.crop // 2
            pads = [(pad, pad)] * 3
            idx = np.rint(m1.xyz_to_index(at.xyz)).astype(np.int64)[:, ::-1] + pad    # z, y, x
            self._cache[k] = (np.pad(x, pads), np.pad(lab, pads), np.pad(w, pads), idx)
        return self._cache[k]

    def __getitem__(self, i: int):
        rng = np.random.default_rng([self.seed, int(i)])
        x, y, w, idx = self._prepared(int(i) % len(self.pairs))
        c = idx[rng.integers(len(idx))]
        h = self.crop // 2
        c = np.clip(c, h, np.array(x.shape) - h)
        sl = tuple(slice(int(a) - h, int(a) - h + self.crop) for a in c)
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a[sl], dtype=np.float32)[None])
        return t(x), t(y), t(w)


def _worker_init(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    base = info.seed if info is not None else worker_id
    np.random.seed((base + worker_id) % 2 ** 32)
    torch.manual_seed(base + worker_id)
    torch.set_num_threads(1)


def _loader(ds, cfg: TrainConfig, shuffle: bool, epoch: int):
    g = torch.Generator()
    g.manual_seed(cfg.seed * 1000 + epoch)
    return torch.utils.data.DataLoader(ds, batch_size=cfg.batch, shuffle=shuffle, num_workers=cfg.workers,
                                       worker_init_fn=_worker_init, generator=g,
                                       persistent_workers=False)


def epoch_lr(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate of (0-based) ``epoch``: ``lr``, or the cosine from ``lr`` to ``lr_min``."""
    if cfg.lr_min is None or cfg.epochs <= 1:
        return float(cfg.lr)
    t = min(max(epoch / (cfg.epochs - 1), 0.0), 1.0)
    return float(cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + np.cos(np.pi * t)))


def _evaluate(net, loader, device) -> Dict[str, float]:
    net.eval()
    tot, wsum, preds, labs, med_err = 0.0, 0.0, [], [], []
    with torch.no_grad():
        for x, y, w in loader:
            x, y, w = x.to(device), y.to(device), w.to(device)
            p = net(x)
            tot += float((w * (p - y) ** 2).sum())
            wsum += float(w.sum())
            for pi, yi, wi in zip(p, y, w):
                sel = wi > 0
                if sel.any():
                    pv, yv = pi[sel].cpu().numpy(), yi[sel].cpu().numpy()
                    preds.append(pv)
                    labs.append(yv)
                    med_err.append(abs(float(np.median(pv)) - float(np.median(yv))))
    if preds:
        pv, yv = np.concatenate(preds), np.concatenate(labs)
        r = float(np.corrcoef(pv, yv)[0, 1]) if pv.size > 2 and pv.std() > 0 and yv.std() > 0 else 0.0
    else:
        r = 0.0
    return {"loss": tot / max(wsum, 1.0), "pearson": r, "mae_median": float(np.mean(med_err)) if med_err else 0.0}


def _plot(report: TrainReport, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(report.epochs, report.train_loss, "o-", label="training")
    ax[0].plot(report.epochs, report.val_loss, "s-", label="validation")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("masked MSE of local Q")
    ax[0].legend()
    ax[1].plot(report.epochs, report.val_pearson, "o-", label="voxel Pearson r")
    ax[1].plot(report.epochs, report.val_mae_median, "s-", label="|median pred - median true|")
    ax[1].set_xlabel("epoch")
    ax[1].legend()
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def train_localq(out: str, sources: Optional[Sequence] = None, pairs: Optional[Sequence[tuple]] = None,
                 config: Optional[TrainConfig] = None, resume: bool = False, progress: bool = True,
                 training_data: str = "", log: bool = True) -> TrainReport:
    """Train a :class:`LocalQUNet` and write its weights to ``out`` (see module doc).

    ``sources``: model paths / procedural seeds for simulated examples; or ``pairs``: real
    ``(map, model)`` paths.  ``progress``: tqdm bar per epoch; ``log``: one line per epoch on stdout.
    Returns the :class:`TrainReport` (also written as JSON + PNG).
    """
    from deepqs.io.weights import save_weights

    cfg = config or TrainConfig()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    paths = report_paths(out)
    if pairs:
        tr_src, va_src = split_sources(pairs, cfg.val_fraction, cfg.seed)
        train_ds = PairsDataset(tr_src, cfg.n_examples, seed=cfg.seed, crop=cfg.crop)
        val_ds = PairsDataset(va_src, cfg.n_val, seed=cfg.seed + 10 ** 6, crop=cfg.crop)
    else:
        if not sources:
            raise InputError(None, "no training structures (give --simulate N or --pairs)")
        tr_src, va_src = split_sources(sources, cfg.val_fraction, cfg.seed)
        train_ds = LocalQDataset(tr_src, cfg.n_examples, seed=cfg.seed, crop=cfg.crop)
        val_ds = LocalQDataset(va_src, cfg.n_val, seed=cfg.seed + 10 ** 6, crop=cfg.crop)
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    net = LocalQUNet(base=cfg.base, depth=cfg.depth).to(device)
    if cfg.init and not resume:
        from deepqs.io.weights import load_network
        init_net, init_header = load_network(cfg.init, {ARCHITECTURE: LocalQUNet})
        if init_net.config() != net.config():
            raise InputError(cfg.init, f"config {init_net.config()} differs from --base/--depth {net.config()}")
        net.load_state_dict(init_net.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    report = TrainReport(n_train_sources=len(tr_src), n_val_sources=len(va_src))
    start_epoch, best, best_state = 0, float("inf"), None
    if resume and os.path.exists(paths["checkpoint"]):
        ck = torch.load(paths["checkpoint"], weights_only=True, map_location=device)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch = int(ck["epoch"]) + 1
        hist = json.loads(ck["history"])
        report = TrainReport(**hist)
        best = float(ck["best"])
        best_state = ck.get("best_model")
    t0 = time.time() - report.seconds
    val_items = [val_ds[i] for i in range(len(val_ds))]      # generated once, same every epoch
    val_loader = torch.utils.data.DataLoader(val_items, batch_size=cfg.batch, shuffle=False)
    if cfg.init and start_epoch == 0 and not report.init_val:
        report.init_val = _evaluate(net, val_loader, device)
        best = report.init_val["loss"]
        best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        report.best_epoch = 0
        if progress or log:
            print(f"initial weights {cfg.init}: val {best:.4f}, r {report.init_val['pearson']:.3f}, "
                  f"|dmedian| {report.init_val['mae_median']:.3f}", flush=True)
    for epoch in range(start_epoch, cfg.epochs):
        net.train()
        lr = epoch_lr(cfg, epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        if cfg.fresh and hasattr(train_ds, "offset"):
            train_ds.offset = epoch * cfg.n_examples
        loader = _loader(train_ds, cfg, True, epoch)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=min(len(loader), cfg.max_steps or len(loader)), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       unit="batch", leave=False)
        tot, nb = 0.0, 0
        for step, (x, y, w) in enumerate(loader):
            if cfg.max_steps is not None and step >= cfg.max_steps:
                break
            x, y, w = x.to(device), y.to(device), w.to(device)
            opt.zero_grad(set_to_none=True)
            loss = masked_mse(net(x), y, w)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            tot += float(loss.detach())
            nb += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{tot / nb:.4f}")
        if bar is not None:
            bar.close()
        ev = _evaluate(net, val_loader, device)
        report.epochs.append(epoch + 1)
        report.train_loss.append(tot / max(nb, 1))
        report.val_loss.append(ev["loss"])
        report.val_pearson.append(ev["pearson"])
        report.val_mae_median.append(ev["mae_median"])
        report.lr.append(lr)
        report.seconds = time.time() - t0
        if ev["loss"] <= best:
            best = ev["loss"]
            report.best_epoch = epoch + 1
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        if progress or log:
            print(f"epoch {epoch + 1}: lr {lr:.2e}, train {report.train_loss[-1]:.4f}, val {ev['loss']:.4f}, "
                  f"r {ev['pearson']:.3f}, |dmedian| {ev['mae_median']:.3f}, {report.seconds / 60:.1f} min",
                  flush=True)
        ck = {"model": {k: v.detach().cpu() for k, v in net.state_dict().items()}, "optimizer": opt.state_dict(),
              "epoch": epoch, "history": json.dumps(asdict(report)), "best": best,
              "best_model": best_state}
        with atomic_output(paths["checkpoint"]) as tmp:
            torch.save(ck, tmp)
    if best_state is None:
        best_state = net.state_dict()
    header = {
        "architecture": ARCHITECTURE, "version": WEIGHTS_VERSION, "config": {"base": cfg.base, "depth": cfg.depth},
        "input_pixel_size_A": 1.0,
        "training_data": training_data or ("real map/model pairs" if pairs else "simulated maps (deepqs.localq.dataset)"),
        "normalisation": "deepqs.localq.normalise v1 (median, MAD noise, asinh(z/4))",
        "label_rule": "Q (sigma 0.6 A) of the nearest atom within 1.5 A; other voxels weight 0",
        "train_settings": {k: v for k, v in asdict(cfg).items() if k not in ("device", "threads", "workers")},
        "validation": {"best_epoch": report.best_epoch,
                       "val_loss": (report.val_loss[report.best_epoch - 1] if report.best_epoch > 0
                                    else report.init_val.get("loss")),
                       "val_pearson_voxel": (report.val_pearson[report.best_epoch - 1] if report.best_epoch > 0
                                             else report.init_val.get("pearson"))},
        "n_train_sources": report.n_train_sources, "n_val_sources": report.n_val_sources,
    }
    save_weights(out, best_state, header)
    with atomic_output(paths["json"]) as tmp:
        with open(tmp, "w") as fh:
            json.dump({"config": asdict(cfg), **asdict(report)}, fh, indent=2)
            fh.write("\n")
    if report.epochs:
        _plot(report, paths["png"])
    return report
