"""``deepqs info FILE``: what a map, model, coordinate or weights file holds."""

from __future__ import annotations

import argparse

from deepqs.commands.common import add_grid_options, positive_int, write_json

HELP = "what a map, model, coordinate or weights file holds"


def add_parser(sub) -> None:
    p = sub.add_parser("info", help=HELP, description=(
        "Describe a file.  Maps (.mrc/.map/.ccp4/.mrcs, also .gz/.bz2): grid, voxel size (Å/voxel), "
        "origin (Å; header origin, else nstart × voxel size, as Chimera/ChimeraX and MapQ read it), "
        "axis order and value statistics.  Models (.pdb/.cif): atoms, residues, chains, waters, "
        "ligands, hydrogens, altlocs.  Coordinates (.box/.star/.txt/.cs): particles per micrograph.  "
        "Weights (.pt): the model card header."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("file", help="file to describe")
    add_grid_options(p)
    p.add_argument("--bins", type=positive_int, default=100, help="histogram bins for maps")
    p.add_argument("--histogram", metavar="PNG", help="also write the map's value histogram to this PNG")
    p.add_argument("--output", metavar="JSON", help="also write the summary to this JSON file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of text")
    p.set_defaults(func=run)


def run(args) -> int:
    from deepqs.cli import print_json
    from deepqs.info import describe_file
    from deepqs.errors import InputError

    summary = describe_file(args.file, voxel_size=args.voxel_size, origin=args.origin, bins=args.bins)
    if args.histogram:
        if summary["kind"] != "map":
            raise InputError(args.file, "--histogram applies to maps only")
        from deepqs.plots import plot_histogram
        h = summary["histogram"]
        plot_histogram(h["counts"], h["edges"], args.histogram, title=f"{args.file}: voxel values",
                       xlabel="voxel value", markers={"mean": summary["mean"],
                                                      "mean + 3 std": summary["mean"] + 3 * summary["std"]})
    if args.output:
        write_json(args.output, summary)
    if args.json:
        print_json(summary)
    else:
        print(format_summary(summary))
    return 0


def format_summary(s: dict) -> str:
    """Human-readable lines of a ``describe_file`` summary (histogram left out)."""
    fmt = lambda v: ", ".join(f"{x:g}" for x in v)
    lines = [f"{s['path']}: {s['kind']}"]
    if s["kind"] == "map":
        h = s["header"]
        lines += [f"  box (x, y, z):      {fmt(s['grid_size_xyz'])} voxels",
                  f"  voxel size:         {fmt(s['voxel_size_A'])} Å/voxel",
                  f"  origin:             {fmt(s['origin_A'])} Å",
                  f"  box size:           {fmt(s['box_size_A'])} Å",
                  f"  mode, axis order:   {h.get('mode')}, {h.get('axis_order')}",
                  f"  min / max:          {s['min']:.6g} / {s['max']:.6g}",
                  f"  mean / std:         {s['mean']:.6g} / {s['std']:.6g}",
                  f"  zero voxels:        {100 * s['fraction_zero']:.1f} %"]
    else:
        for key, value in s.items():
            if key not in ("path", "kind", "per_micrograph"):
                lines.append(f"  {key.replace('_', ' ')}: {value}")
        for mic, n in list(s.get("per_micrograph", {}).items())[:20]:
            lines.append(f"    {mic}: {n}")
    return "\n".join(lines)
