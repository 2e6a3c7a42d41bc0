"""``deepqs qscore MAP MODEL``: MapQ-exact per-atom Q-scores, tables and a JSON summary."""

from __future__ import annotations

import argparse
import os
import sys

from deepqs.commands.common import add_grid_options, positive_float, positive_int, read_map_from_args, write_json

HELP = "per-atom Q-scores of a model in a map (MapQ's numbers), with residue table and summary"

_CIF_EXTS = (".cif", ".mmcif", ".cif.gz", ".mmcif.gz")
_PDB_EXTS = (".pdb", ".ent", ".pdb.gz", ".ent.gz")
#: Models at least this big get a progress bar (on a terminal).
PROGRESS_MIN_ATOMS = 20000


def add_parser(sub) -> None:
    p = sub.add_parser("qscore", help=HELP, description=(
        "Q-score (Pintilie et al., Nat Methods 2020) of every non-hydrogen atom: the correlation "
        "of the map values on shells of 0.1-2.0 Å around the atom with a reference Gaussian of "
        "width sigma.  Reproduces MapQ's single-process values (sample points closer to another "
        "atom than to the scored one are left out).  Hydrogens take the Q of the heavy atom they "
        "are bonded to.  Atoms outside the map box are scored (values outside read 0) and counted."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("map", help="map (MRC/CCP4); its header origin and voxel size place the model")
    p.add_argument("model", help="atomic model (PDB or mmCIF)")
    p.add_argument("--sigma", type=positive_float, default=0.6, metavar="A",
                   help="reference Gaussian width in Å (0.6: MapQ command line; 0.4: EMDB, MapQ GUI)")
    p.add_argument("--resolution", type=positive_float, default=None, metavar="R",
                   help="map resolution in Å: report the expected Q at R")
    add_grid_options(p)
    p.add_argument("--out-model", metavar="OUT.cif|OUT.pdb",
                   help="write the model with Q-scores: mmCIF adds _atom_site.Q-score (%%.6f), "
                        "PDB puts Q in the B-factor column")
    p.add_argument("--out-residues", metavar="OUT.tsv",
                   help="write the per-residue table (TSV: chain, residue number, insertion code, "
                        "name, type, atoms, Q residue/backbone/side chain/phosphate/sugar/base)")
    p.add_argument("--json", metavar="SUMMARY.json", help="write the summary as JSON")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="worker processes (default: all cores this process may use)")
    p.add_argument("--device", default="cpu",
                   help="cpu (numpy), cuda or cuda:N (torch on that GPU; the same algorithm), or auto; a GPU "
                        "that is not visible falls back to the CPU with a warning")
    p.set_defaults(func=run)


def run(args) -> int:
    from deepqs.errors import InputError
    from deepqs.io import atoms_from_structure, read_model, write_model
    from deepqs.qscore import compute_qscores, residue_table, summarise

    out_fmt = None
    if args.out_model:
        low = args.out_model.lower()
        if low.endswith(_CIF_EXTS):
            out_fmt = "mmcif"
        elif low.endswith(_PDB_EXTS):
            out_fmt = "pdb"
        else:
            raise InputError(args.out_model, "--out-model must end in .cif or .pdb")
    mapdata = read_map_from_args(args.map, args)
    st = read_model(args.model)
    atoms = atoms_from_structure(st)

    bar = None
    progress = None
    n_heavy = int((~atoms.is_hydrogen).sum())
    if n_heavy >= PROGRESS_MIN_ATOMS and sys.stderr.isatty():
        from tqdm import tqdm
        bar = tqdm(total=n_heavy, unit="atom", desc="Q-score", file=sys.stderr, leave=False)
        progress = bar.update
    try:
        result = compute_qscores(mapdata, atoms, sigma=args.sigma, threads=args.threads,
                                 device=args.device, progress=progress, model_path=args.model)
    finally:
        if bar is not None:
            bar.close()

    summary = summarise(atoms, result, resolution=args.resolution)
    summary = {"map": os.fspath(args.map), "model": os.fspath(args.model), **summary}
    written = []
    if args.out_model:
        write_model(args.out_model, st, per_atom_columns={"Q-score": result.q}, fmt=out_fmt)
        written.append(args.out_model)
    if args.out_residues:
        residue_table(atoms, result.q).write_tsv(args.out_residues)
        written.append(args.out_residues)
    if args.json:
        write_json(args.json, summary)
        written.append(args.json)
    print(format_summary(summary, written))
    return 0


def format_summary(s: dict, written=()) -> str:
    """Human-readable lines of a Q-score summary."""
    f = lambda v, fmt="%.4f": "n/a" if v is None else fmt % v
    a = s["atoms"]
    lines = [f"{s['map']} + {s['model']}: Q-score, sigma {s['sigma_A']:g} Å",
             f"  atoms: {a['scored']} scored, {a['hydrogens']} hydrogens, "
             f"{a['outside_map']} outside the map, {a['waters']} waters",
             f"  mean Q {f(s['mean_q'])}, median {f(s['median_q'])}"
             f"  (waters left out: mean {f(s['mean_q_no_water'])}, median {f(s['median_q_no_water'])})"]
    chains = s["chains"]
    for c in chains[:20]:
        lines.append(f"  chain {c['chain']}: {c['atoms']} atoms, mean {f(c['mean_q'])}, median {f(c['median_q'])}")
    if len(chains) > 20:
        lines.append(f"  ... {len(chains) - 20} more chains (see --json)")
    if s.get("relation"):
        if s.get("resolution_A") is not None:
            lines.append(f"  expected Q at {s['resolution_A']:.2f} Å: {f(s['expected_q'])} ({s['relation']})")
        if s.get("implied_resolution_A") is not None:
            lines.append(f"  resolution implied by the mean Q: {s['implied_resolution_A']:.2f} Å ({s['relation']})")
    else:
        lines.append(f"  no published Q-resolution relation for sigma {s['sigma_A']:g} Å")
    for path in written:
        lines.append(f"  wrote {path}")
    return "\n".join(lines)
