"""``deepqs simulate map|micrographs``: the project's own test and demo data."""

from __future__ import annotations

import argparse
import os
from typing import Optional

import numpy as np

from deepqs.commands.common import positive_float, positive_int, write_json

HELP = "simulate a model, its map and half maps, or micrographs with ground truth"

JUNK_KINDS = ("ice_blobs", "carbon_edge", "aggregates")


def add_parser(sub) -> None:
    p = sub.add_parser("simulate", help=HELP, description=(
        "Simulate data with known answers.  'map': a procedural protein model (or --model), its "
        "noise-free map, a map and two half maps whose half-map FSC crosses 0.143 at --resolution, "
        "and the model map.  'micrographs': projections of the model at random orientations with "
        "CTF and noise, ground-truth particle centres and optional junk."))
    kinds = p.add_subparsers(dest="what", metavar="WHAT")
    kinds.required = True

    m = kinds.add_parser("map", help="model, map, half maps and model map",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _common(m)
    m.add_argument("--voxel-size", type=positive_float, default=1.0, metavar="A", help="voxel size in Å/voxel")
    m.add_argument("--resolution", type=positive_float, default=4.0, metavar="A",
                   help="resolution in Å at which the half-map FSC crosses 0.143")
    m.add_argument("--box", type=positive_int, default=None, metavar="N",
                   help="cubic box edge in voxels (default: the model plus 10 Å padding)")
    m.add_argument("--no-noise", action="store_true", help="noise-free maps (half maps equal the map)")
    m.add_argument("--no-local-blur", action="store_true",
                   help="same blur everywhere (default: termini, loops and surface blurred more than the core)")
    m.set_defaults(func=run_map)

    g = kinds.add_parser("micrographs", help="micrographs with CTF, noise, ground truth and junk",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _common(g)
    g.add_argument("--n", type=positive_int, default=2, help="number of micrographs")
    g.add_argument("--size", type=positive_int, nargs="+", default=[1024], metavar="PX",
                   help="micrograph size in pixels: one number (square) or ny nx")
    g.add_argument("--pixel-size", type=positive_float, default=1.5, metavar="A", help="pixel size in Å/pixel")
    g.add_argument("--particles", type=positive_int, default=40, help="particles per micrograph")
    g.add_argument("--junk", nargs="*", default=[], choices=JUNK_KINDS,
                   help="junk to add for pruning: ice blobs, a carbon edge, aggregates")
    g.add_argument("--box-size", type=positive_int, default=None, metavar="PX",
                   help="box size in pixels written to .box files (default: 1.5 × particle diameter)")
    g.set_defaults(func=run_micrographs)


def _common(p) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--model", default=None, metavar="FILE",
                   help="atomic model (PDB/mmCIF) to simulate from (default: a procedural protein)")
    p.add_argument("--residues", type=positive_int, default=120,
                   help="residues of the procedural protein when no --model is given")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed, same data")
    p.add_argument("--json", action="store_true", help="print the written files and parameters as JSON")


def load_or_build_model(model: Optional[str], residues: int, seed: int):
    """A gemmi Structure: read from ``model`` or built procedurally."""
    if model:
        from deepqs.io import read_model
        return read_model(model)
    from deepqs.simulate import build_protein_model
    return build_protein_model(n_residues=residues, seed=seed)


def write_simulated_map(out: str, st, voxel_size: float = 1.0, resolution: float = 4.0, seed: int = 0,
                        noise: bool = True, local_blur: bool = True, box: Optional[int] = None,
                        global_B: Optional[float] = None) -> dict:
    """Simulate a map from ``st`` and write model, maps and half maps into ``out``; return a manifest."""
    from deepqs.io import atoms_from_structure, write_map, write_model
    from deepqs.simulate import simulate_map
    from deepqs.validation.fsc import fsc, resolution_at

    os.makedirs(out, exist_ok=True)
    atoms = atoms_from_structure(st)
    shape = None if box is None else (box, box, box)
    sim = simulate_map(atoms, voxel_size=voxel_size, resolution=resolution, seed=seed, noise=noise,
                       local_blur=local_blur, shape=shape, global_B=global_B)
    files = {"model": os.path.join(out, "model.cif"), "map": os.path.join(out, "map.mrc"),
             "half_maps": [os.path.join(out, "half1.mrc"), os.path.join(out, "half2.mrc")],
             "noise_free": os.path.join(out, "noise_free.mrc"), "model_map": os.path.join(out, "model_map.mrc")}
    write_model(files["model"], st)
    write_map(files["map"], sim.map)
    write_map(files["half_maps"][0], sim.half1)
    write_map(files["half_maps"][1], sim.half2)
    write_map(files["noise_free"], sim.noise_free)
    write_map(files["model_map"], sim.model_map)
    vs = float(sim.map.voxel_size[0])
    half = fsc(sim.half1.data, sim.half2.data, vs)
    files.update({
        "voxel_size_A": vs,
        "box": [int(v) for v in sim.map.grid_size],
        "origin_A": [float(v) for v in sim.map.origin],
        "requested_resolution_A": float(resolution),
        "half_map_fsc_0.143_A": float(resolution_at(half, 0.143)),
        "n_atoms": len(atoms),
        "seed": seed,
    })
    return files


def write_simulated_micrographs(out: str, st, n: int = 2, size=(1024, 1024), pixel_size: float = 1.5,
                                particles: int = 40, junk=(), seed: int = 0, box_size: Optional[int] = None) -> dict:
    """Simulate micrographs of ``st`` and write them with ground-truth coordinates; return a manifest."""
    from deepqs.io import Coordinates, atoms_from_structure, write_coordinates, write_micrograph
    from deepqs.simulate import simulate_micrographs

    mic_dir = os.path.join(out, "micrographs")
    coord_dir = os.path.join(out, "coordinates")
    os.makedirs(mic_dir, exist_ok=True)
    os.makedirs(coord_dir, exist_ok=True)
    atoms = atoms_from_structure(st)
    mics = simulate_micrographs(n=n, shape=tuple(size), pixel_size=pixel_size, n_particles=particles,
                                atoms=atoms, seed=seed, junk=list(junk) or None)
    extent = np.ptp(atoms.xyz, axis=0).max()
    if box_size is None:
        box_size = int(np.ceil(1.5 * extent / pixel_size / 2.0) * 2)
    truth = []
    names = []
    for i, mic in enumerate(mics, start=1):
        name = f"mic_{i:03d}"
        names.append(name + ".mrc")
        write_micrograph(os.path.join(mic_dir, name + ".mrc"), mic.image, mic.pixel_size_A)
        coords = Coordinates(np.asarray(mic.coordinates[:, 0], float), np.asarray(mic.coordinates[:, 1], float),
                             micrograph=name + ".mrc")
        write_coordinates(os.path.join(coord_dir, name + ".star"), coords, fmt="star")
        write_coordinates(os.path.join(coord_dir, name + ".box"), coords, fmt="box", box_size=box_size)
        truth.append({"micrograph": name + ".mrc", "defocus_um": float(mic.defocus_um),
                      "n_particles": int(len(coords)),
                      "junk": [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in j.items()}
                               for j in (mic.junk or [])]})
    write_json(os.path.join(out, "ground_truth.json"), truth)
    first = mics[0]
    return {"folder": mic_dir, "pattern": "mic_*.mrc", "micrographs": [os.path.join(mic_dir, m) for m in names],
            "coordinates": coord_dir, "ground_truth": os.path.join(out, "ground_truth.json"),
            "pixel_size_A": float(pixel_size), "box_size_px": int(box_size),
            "particle_diameter_A": float(extent), "voltage_kV": float(first.voltage_kV),
            "cs_mm": float(first.cs_mm), "amplitude_contrast": float(first.amplitude_contrast),
            "seed": seed}


def run_map(args) -> int:
    from deepqs.cli import print_json

    st = load_or_build_model(args.model, args.residues, args.seed)
    manifest = write_simulated_map(args.out, st, voxel_size=args.voxel_size, resolution=args.resolution,
                                   seed=args.seed, noise=not args.no_noise, local_blur=not args.no_local_blur,
                                   box=args.box)
    if args.json:
        print_json(manifest)
    else:
        print(f"wrote model, map, half maps, noise-free and model maps to {args.out}")
        print(f"  box {manifest['box']} voxels at {manifest['voxel_size_A']:g} Å/voxel; half-map FSC = 0.143 at "
              f"{manifest['half_map_fsc_0.143_A']:.2f} Å (requested {args.resolution:g} Å)")
    return 0


def run_micrographs(args) -> int:
    from deepqs.cli import print_json

    size = args.size * 2 if len(args.size) == 1 else args.size[:2]
    st = load_or_build_model(args.model, args.residues, args.seed)
    manifest = write_simulated_micrographs(args.out, st, n=args.n, size=size, pixel_size=args.pixel_size,
                                           particles=args.particles, junk=args.junk, seed=args.seed,
                                           box_size=args.box_size)
    if args.json:
        print_json(manifest)
    else:
        print(f"wrote {args.n} micrographs to {manifest['folder']} and ground-truth coordinates to "
              f"{manifest['coordinates']}")
    return 0
