"""``deepqs demo --out DIR``: the engine demo on data the project simulates itself."""

from __future__ import annotations

import argparse
import os
import time

from deepqs.commands.common import write_json

HELP = "run the demo on simulated data and print where the outputs are"
DEMO_MAP_B = 300.0  # Å², see run()


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help=HELP, formatter_class=argparse.ArgumentDefaultsHelpFormatter, description=(
        "Simulate a small protein model, its map and half maps at 4 Å (1 Å/voxel) and micrographs "
        "with ground truth and junk, then run the engine on them.  Writes demo_manifest.json listing "
        "every output."))
    p.add_argument("--out", default="demo_output", metavar="DIR", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from deepqs.cli import print_json
    from deepqs.commands.simulate import write_simulated_map, write_simulated_micrographs
    from deepqs.info import describe_file
    from deepqs.plots import plot_histogram
    from deepqs.simulate import build_protein_model

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    step = lambda text: print(f"[{time.time() - t0:6.1f} s] {text}", flush=True)

    step("building a procedural protein model")
    st = build_protein_model(n_residues=120, seed=args.seed)
    step("simulating its map and half maps at 4 Å, 1 Å/voxel")
    # B = 300 Å² blurs the map as much as deposited 4 Å maps are: its mean Q (about 0.42) then
    # matches MapQ's EMDB-wide relation (0.41 at 4 Å); the half-map FSC still crosses 0.143 at 4 Å.
    map_manifest = write_simulated_map(os.path.join(out, "map"), st, voxel_size=1.0, resolution=4.0, seed=args.seed,
                                       global_B=DEMO_MAP_B)
    step("simulating micrographs with ice blobs, a carbon edge and aggregates")
    mic_manifest = write_simulated_micrographs(os.path.join(out, "micrographs"), st, n=3, size=(1024, 1024),
                                               pixel_size=1.0, particles=30,
                                               junk=("ice_blobs", "carbon_edge", "aggregates"), seed=args.seed)
    step("Q-scores of the model in its map (MapQ algorithm, sigma 0.6 Å)")
    qscore_files = run_qscore(map_manifest, os.path.join(out, "map"), resolution=4.0)
    step("DeepQs: local Q predicted from the map alone (shipped weights)")
    localq_files = run_localq(map_manifest["map"], os.path.join(out, "map"))
    step("DeepEM picking on the micrographs (shipped general model) and evaluation against the truth")
    picking_files = run_picking(mic_manifest, os.path.join(out, "picks"))
    step("describing the map")
    summary = describe_file(map_manifest["map"])
    hist_png = os.path.join(out, "map", "map_histogram.png")
    h = summary["histogram"]
    plot_histogram(h["counts"], h["edges"], hist_png, title="simulated map: voxel values", xlabel="voxel value",
                   markers={"mean": summary["mean"], "mean + 3 std": summary["mean"] + 3 * summary["std"]})
    manifest = {"map": map_manifest, "micrographs": mic_manifest, "qscore": qscore_files, "localq": localq_files,
                "picking": picking_files,
                "map_summary": {k: v for k, v in summary.items() if k != "histogram"},
                "map_histogram_png": hist_png}
    write_json(os.path.join(out, "demo_manifest.json"), manifest)
    step("done")
    if args.json:
        print_json(manifest)
    else:
        print(f"\nDemo outputs in {out}:")
        print(f"  model, map, half maps:  {os.path.join(out, 'map')}  (half-map FSC 0.143 at "
              f"{map_manifest['half_map_fsc_0.143_A']:.2f} Å, requested 4 Å)")
        print(f"  Q-scores:               {qscore_files['model']} (mean Q {qscore_files['mean_q']:.3f}; "
              f"expected at 4 Å: {qscore_files['expected_q']:.3f})")
        print(f"  DeepQs local Q:         {localq_files['localq']} (median {localq_files['median_q']:.3f} -> "
              f"{localq_files['implied_resolution_A']:.2f} Å)")
        print(f"  micrographs:            {mic_manifest['folder']}")
        print(f"  DeepEM picks:           {picking_files['folder']} (F1 {picking_files['f1']:.2f} against the truth)")
        print(f"  ground-truth picks:     {mic_manifest['coordinates']} (.star, .box)")
        print(f"  map histogram:          {hist_png}")
        print(f"  manifest:               {os.path.join(out, 'demo_manifest.json')}")
    return 0


def run_qscore(map_manifest: dict, out: str, resolution: float) -> dict:
    """Q-scores of the simulated model in the simulated map; writes model, residue table, summary."""
    from deepqs.io import atoms_from_structure, read_map, read_model, write_model
    from deepqs.qscore import compute_qscores, residue_table, summarise

    mapdata = read_map(map_manifest["map"])
    st = read_model(map_manifest["model"])
    atoms = atoms_from_structure(st)
    result = compute_qscores(mapdata, atoms, sigma=0.6)
    files = {"model": os.path.join(out, "model_qscore.cif"), "residues": os.path.join(out, "qscore_residues.tsv"),
             "summary": os.path.join(out, "qscore_summary.json")}
    write_model(files["model"], st, per_atom_columns={"Q-score": result.q})
    residue_table(atoms, result.q).write_tsv(files["residues"])
    summary = summarise(atoms, result, resolution=resolution)
    write_json(files["summary"], summary)
    files.update({"mean_q": summary["mean_q"], "expected_q": summary["expected_q"]})
    return files


def _cli(args) -> None:
    from deepqs.cli import main

    rc = main([str(a) for a in args])
    if rc:
        raise SystemExit(rc)


def run_localq(map_path: str, out: str) -> dict:
    """DeepQs prediction with the shipped weights: local-Q and local-resolution maps + summary."""
    import json

    files = {"localq": os.path.join(out, "localq.mrc"), "local_resolution": os.path.join(out, "local_resolution.mrc"),
             "summary": os.path.join(out, "localq_summary.json")}
    _cli(["localq", "predict", map_path, "--out", files["localq"], "--out-resolution", files["local_resolution"],
          "--json", files["summary"]])
    with open(files["summary"]) as fh:
        summary = json.load(fh)
    files.update({"median_q": summary["median_q"], "implied_resolution_A": summary["resolution_from_median_A"]})
    return files


def run_picking(mic_manifest: dict, out: str) -> dict:
    """Pick the simulated micrographs with the shipped model and score the picks against the truth."""
    import json

    summary = os.path.join(out, "pick_summary.json")
    evaluation = os.path.join(out, "pick_eval.json")
    diameter = mic_manifest["particle_diameter_A"]
    pixel = mic_manifest["pixel_size_A"]
    _cli(["pick", "run", "--micrographs", *mic_manifest["micrographs"], "--diameter", diameter,
          "--pixel-size", pixel, "--out-dir", out, "--format", "star", "--json", summary])
    picks = [os.path.join(out, os.path.splitext(os.path.basename(m))[0] + ".star") for m in mic_manifest["micrographs"]]
    truth = [os.path.join(mic_manifest["coordinates"], os.path.basename(p)) for p in picks]
    _cli(["pick", "eval", "--picks", *picks, "--truth", *truth, "--diameter", diameter, "--pixel-size", pixel,
          "--pr-curve", os.path.join(out, "pr_curve.png"), "--json", evaluation])
    with open(evaluation) as fh:
        ev = json.load(fh)
    return {"folder": out, "summary": summary, "evaluation": evaluation, "f1": _find_f1(ev)}


def _find_f1(ev: dict) -> float:
    """The F1 at half the particle radius from a ``deepqs pick eval`` summary."""
    for key in ("radius_0.5", "half_radius", "at_0.5r"):
        if key in ev and "f1" in ev[key]:
            return float(ev[key]["f1"])
    for value in ev.values():
        if isinstance(value, dict) and "f1" in value:
            return float(value["f1"])
    return float(ev.get("f1", float("nan")))
