"""Q-score speed: ``python benchmarks/bench_qscore.py [--threads N] [--keep DIR] [--skip-big]``.

Prints atoms/s, end to end (reading the map and the model included), on

1. the MapQ reference pair (EMD-30342 zone map + 7CEC chain A, 4,308 atoms) from
   ``../shared/data/qscore/emd30342_7cec_A`` when that folder exists, with the agreement with
   MapQ's own values;
2. a ribosome-sized job: the full 7CEC model (``../shared/data/structures/mapq__390_7cec.cif``,
   17,561 atoms) tiled 3 x 3 (158,049 atoms, chains renamed per copy) on a map made here with
   numpy (atoms splatted on a 1.1 Å grid whose origin is a multiple of the voxel size, 1 Å
   Gaussian blur, 5 % noise).  Without the shared data a
   random-but-plausible model (atoms 1.5 Å apart along chains, packed at protein density) is
   used instead.

Each job runs in a fresh subprocess.  Peak memory: that process's peak resident set (VmHWM) and
the largest worker process's (``getrusage(RUSAGE_CHILDREN)``; workers share the map and the model
with the main process copy-on-write, so the two overlap).

When ``cctbx`` is importable (install ``cctbx-base`` and ``pandas`` in a throwaway environment
and run this script with that Python), cctbx's ``mmtbx`` Q-score runs on the same inputs and the
ratio is printed.  The project itself never depends on cctbx.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
REF_DIR = SHARED / "qscore" / "emd30342_7cec_A"
BIG_SOURCE = SHARED / "structures" / "mapq__390_7cec.cif"


# ---------------------------------------------------------------------------- inputs
def make_tiled_model(out_cif: Path, copies=(3, 3, 1), gap: float = 6.0) -> int:
    """Tile the full 7CEC model ``copies`` times (chains renamed A1, B1, ..., A2, ...)."""
    import gemmi
    from deepqs.io import read_model
    st = read_model(BIG_SOURCE)
    model = st[0]
    xyz = np.array([[a.pos.x, a.pos.y, a.pos.z] for ch in model for r in ch for a in r])
    lo, hi = xyz.min(axis=0), xyz.max(axis=0)
    size = hi - lo + gap
    new = gemmi.Structure()
    new.cell = gemmi.UnitCell()
    new.spacegroup_hm = "P 1"
    out_model = gemmi.Model("1")
    k = 0
    for ix in range(copies[0]):
        for iy in range(copies[1]):
            for iz in range(copies[2]):
                k += 1
                shift = gemmi.Position(*(size * (ix, iy, iz)))
                for ch in model:
                    c = ch.clone()
                    c.name = f"{ch.name}{k}"
                    for res in c:
                        for atom in res:
                            atom.pos = atom.pos + shift
                    out_model.add_chain(c)
    new.add_model(out_model)
    new.setup_entities()
    doc = new.make_mmcif_document()
    doc.write_file(str(out_cif))
    return new[0].count_atom_sites()


def make_random_model(out_cif: Path, n_atoms: int = 150_000, seed: int = 0) -> int:
    """Random chains of atoms 1.5 Å apart, packed at about protein density (no shared data)."""
    import gemmi
    rng = np.random.default_rng(seed)
    side = (n_atoms * 11.0) ** (1.0 / 3.0)        # ~11 Å^3 per heavy atom
    st = gemmi.Structure()
    model = gemmi.Model("1")
    per_chain = 1000
    for c in range(-(-n_atoms // per_chain)):
        ch = gemmi.Chain(f"C{c}")
        pos = rng.uniform(2.0, side - 2.0, 3)
        n_here = min(per_chain, n_atoms - c * per_chain)
        for i in range(n_here):
            step = rng.normal(size=3)
            pos = np.clip(pos + 1.5 * step / np.linalg.norm(step), 0.0, side)
            if i % 8 == 0:
                res = gemmi.Residue()
                res.name = "GLY"
                res.seqid = gemmi.SeqId(i // 8 + 1, " ")
                res.entity_type = gemmi.EntityType.Polymer
            atom = gemmi.Atom()
            atom.name = ("N", "CA", "C", "O", "CB", "CG", "CD", "CE")[i % 8]
            atom.element = gemmi.Element(atom.name[0])
            atom.pos = gemmi.Position(*pos)
            atom.occ = 1.0
            atom.b_iso = 30.0
            res.add_atom(atom)
            if i % 8 == 7 or i == n_here - 1:
                ch.add_residue(res)
        model.add_chain(ch)
    st.add_model(model)
    st.setup_entities()
    st.make_mmcif_document().write_file(str(out_cif))
    return st[0].count_atom_sites()


def make_map_for(model_path: Path, out_mrc: Path, voxel: float = 1.1, blur: float = 1.0,
                 noise: float = 0.05, seed: int = 0) -> tuple:
    """A density map for the model: atoms splatted on a grid, Gaussian blur (Å), noise."""
    from scipy.ndimage import gaussian_filter
    from deepqs.io import read_atoms, write_map
    atoms = read_atoms(model_path)
    xyz = atoms.xyz[~atoms.is_hydrogen]
    # origin on the voxel lattice, so that tools which snap the origin (cctbx) place it too
    origin = np.floor((xyz.min(axis=0) - 8.0) / voxel) * voxel
    shape_xyz = np.ceil((xyz.max(axis=0) + 8.0 - origin) / voxel).astype(int) + 1
    grid = np.zeros(shape_xyz[::-1], dtype=np.float32)
    idx = np.rint((xyz - origin) / voxel).astype(int)
    np.add.at(grid, (idx[:, 2], idx[:, 1], idx[:, 0]), 1.0)
    grid = gaussian_filter(grid, blur / voxel, mode="constant")
    grid += np.random.default_rng(seed).normal(0.0, noise * grid.max(), grid.shape).astype(np.float32)
    write_map(out_mrc, grid, voxel_size=voxel, origin=tuple(origin))
    return grid.shape, grid.nbytes


# ---------------------------------------------------------------------------- one timed job
def _vm_hwm_mb() -> float:
    """This process's peak resident set (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_job(map_path: str, model_path: str, threads: int, reference: str = "") -> dict:
    """Time one end-to-end Q-score job in this process (read map + model, score)."""
    import resource
    from deepqs.io import atoms_from_structure, read_map, read_model
    from deepqs.qscore import compute_qscores
    t0 = time.perf_counter()
    m = read_map(map_path)
    t1 = time.perf_counter()
    st = read_model(model_path)
    atoms = atoms_from_structure(st)
    t2 = time.perf_counter()
    res = compute_qscores(m, atoms, sigma=0.6, threads=threads)
    t3 = time.perf_counter()
    out = {
        "atoms": int(len(atoms)), "scored": int(res.n_scored), "read_map_s": t1 - t0,
        "read_model_s": t2 - t1, "qscore_s": t3 - t2, "total_s": t3 - t0,
        "atoms_per_s": res.n_scored / (t3 - t0), "mean_q": float(np.nanmean(res.q[res.scored])),
        "peak_rss_mb": _vm_hwm_mb(),
        "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0,
        "map_voxels": int(m.data.size),
    }
    if reference:
        from deepqs.io import read_atom_site_column
        ref = read_atom_site_column(reference, "Q_score")
        d = np.abs(res.q - ref)
        out.update(max_abs_diff=float(d.max()), frac_within_1e3=float(np.mean(d <= 1e-3)),
                   mapq_mean=float(ref.mean()))
    return out


def cctbx_job(map_path: str, model_path: str, nproc: int) -> dict:
    """cctbx's Q-score (``cctbx.maptbx.qscore.calc_qscore``, the engine of
    ``mmtbx.development.qscore``, with that program's defaults: 32 probes per shell, 20 shells
    0.1-2.0 Å, rtol 0.9), end to end: reading the files included.  Runs in a Python that has cctbx."""
    t0 = time.perf_counter()
    from cctbx.maptbx.qscore import calc_qscore
    from iotbx.data_manager import DataManager
    dm = DataManager()
    dm.process_model_file(model_path)
    dm.process_real_map_file(map_path)
    mmm = dm.get_map_model_manager(model_file=model_path, map_files=map_path)
    model = mmm.model()
    model.add_crystal_symmetry_if_necessary()
    mmm.set_model(model.remove_hydrogens(), overwrite=True)
    shells = list(np.linspace(0.1, 2.0, 20))
    result = calc_qscore(mmm, selection=None, n_probes=32, rtol=0.9, shells=shells, nproc=nproc)
    q = np.asarray(result["qscore_per_atom"])
    return {"total_s": time.perf_counter() - t0, "atoms": int(q.size), "mean_q": float(np.nanmean(q))}


def run_cctbx(map_path, model_path, nproc: int, python: str = "") -> dict:
    """:func:`cctbx_job` here (cctbx importable) or in ``python`` (a throwaway cctbx environment)."""
    if not python:
        return cctbx_job(str(map_path), str(model_path), nproc)
    proc = subprocess.run([python, __file__, "--cctbx-job", str(map_path), str(model_path), str(nproc)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def job_in_subprocess(map_path, model_path, threads, reference="") -> dict:
    code = ("import json,sys; sys.path.insert(0, %r); from bench_qscore import run_job; "
            "print(json.dumps(run_job(%r, %r, %d, %r)))"
            % (str(Path(__file__).parent), str(map_path), str(model_path), threads, str(reference)))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def report(label: str, r: dict) -> None:
    print(f"{label}")
    print(f"  atoms {r['atoms']:,} (scored {r['scored']:,}), map {r['map_voxels']:,} voxels")
    print(f"  read map {r['read_map_s']:.2f} s, read model {r['read_model_s']:.2f} s, "
          f"Q-score {r['qscore_s']:.2f} s, total {r['total_s']:.2f} s")
    print(f"  {r['atoms_per_s']:,.0f} atoms/s end to end; peak RSS {r['peak_rss_mb']:.0f} MB "
          f"(largest worker process {r['worker_peak_rss_mb']:.0f} MB); mean Q {r['mean_q']:.4f}")
    if "max_abs_diff" in r:
        print(f"  vs MapQ: mean {r['mapq_mean']:.4f}, max |diff| {r['max_abs_diff']:.2e}, "
              f"within 1e-3: {100 * r['frac_within_1e3']:.2f} %")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--cctbx-job":                 # helper mode, run by run_cctbx
        print(json.dumps(cctbx_job(argv[1], argv[2], int(argv[3]))))
        return 0
    sys.path.insert(0, str(REPO))
    from deepqs.qscore.core import default_threads
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=default_threads())
    ap.add_argument("--keep", metavar="DIR", help="build the big inputs here (reused when present)")
    ap.add_argument("--skip-big", action="store_true", help="only the reference pair")
    ap.add_argument("--cctbx-python", metavar="PYTHON", default="",
                    help="a Python with cctbx-base and pandas, to time cctbx when it is not importable here")
    ap.add_argument("--json", metavar="OUT.json", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    print(f"deepqs Q-score benchmark: {os.cpu_count()} CPUs visible, workers={args.threads}")
    try:
        import cctbx  # noqa: F401
        cctbx_python = ""
        have_cctbx = True
    except ImportError:
        cctbx_python = args.cctbx_python
        have_cctbx = bool(cctbx_python)
        if not have_cctbx:
            print("cctbx: not importable here and no --cctbx-python (no cctbx comparison)")

    results = {}
    jobs = []
    if REF_DIR.is_dir():
        jobs.append(("reference pair EMD-30342 / 7CEC chain A", "reference", REF_DIR / "map.mrc",
                     REF_DIR / "model.cif", REF_DIR / "mapq_sigma0.6_single.cif"))
    if not args.skip_big:
        work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_qscore_"))
        work.mkdir(parents=True, exist_ok=True)
        model = work / "big_model.cif"
        mrc = work / "big_map.mrc"
        if not model.exists() or not mrc.exists():
            t0 = time.perf_counter()
            if BIG_SOURCE.exists():
                n = make_tiled_model(model)
                kind = "7CEC tiled 3 x 3"
            else:
                n = make_random_model(model)
                kind = "random chains"
            shape, _ = make_map_for(model, mrc)
            print(f"(built {kind}: {n:,} atoms, map {tuple(shape[::-1])} voxels, "
                  f"in {time.perf_counter() - t0:.1f} s)")
        jobs.append(("ribosome-sized job (>= 150,000 atoms)", "big", mrc, model, ""))
    # deepqs first for every input, then cctbx (so that one tool's processes never slow the other)
    for label, key, mrc, model, ref in jobs:
        r = job_in_subprocess(mrc, model, args.threads, ref)
        report(label, r)
        results[key] = r
    if have_cctbx:
        for label, key, mrc, model, ref in jobs:
            r = results[key]
            try:
                c = run_cctbx(mrc, model, args.threads, cctbx_python)
            except Exception as exc:     # report, keep going
                msg = str(exc).strip().splitlines()
                print(f"cctbx on {label}: failed: {msg[-1] if msg else exc!r}")
                continue
            r["cctbx_total_s"] = c["total_s"]
            r["cctbx_mean_q"] = c["mean_q"]
            r["speedup_vs_cctbx"] = c["total_s"] / r["total_s"]
            print(f"cctbx on {label} ({args.threads} processes, end to end): {c['total_s']:.2f} s, "
                  f"mean Q {c['mean_q']:.4f} -> deepqs is {r['speedup_vs_cctbx']:.1f}x faster")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
