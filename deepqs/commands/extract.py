"""``deepqs extract``: cut particle boxes around picked centres into MRC stacks and a RELION STAR.

Coordinates (.box/.star/Topaz .txt/.cs/.csv; centres in micrograph pixels, x = column, y = row)
are matched to micrographs by file stem.  Boxes are BOX x BOX micrograph pixels, one stack per
micrograph (``DIR/<micrograph>.mrcs``) and ``DIR/particles.star`` listing them
(``_rlnImageName``, ``_rlnMicrographName``, ``_rlnCoordinateX/Y``), plus ``DIR/extracted.csv``
(micrograph, index of the coordinate in its file, x, y, stack, slice).  By default every box is
normalised (background outside the circle: mean 0, s.d. 1) and boxes running off the micrograph
are skipped and counted.

examples:
  deepqs extract --micrographs mics/*.mrc --coords picks/*.csv --box 128 --out-dir particles/
  deepqs extract --micrographs mics/*.mrc --coords run_it025_data.star --box 200 --invert --out-dir p/ --json
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

from deepqs.commands.common import emit_json, positive_float, positive_int
from deepqs.io import atomic_output

HELP = "extract particle boxes around picked coordinates (MRC stacks + RELION .star)"


def add_parser(sub) -> None:
    p = sub.add_parser("extract", help=HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--micrographs", nargs="+", required=True, metavar="M", help="micrographs (MRC, or 8-bit images)")
    p.add_argument("--coords", nargs="+", required=True, metavar="C",
                   help="coordinate files (.box/.star/.txt/.cs/.csv), matched to the micrographs by file stem")
    p.add_argument("--box", type=positive_int, required=True, metavar="PX", help="box size in micrograph pixels")
    p.add_argument("--out-dir", required=True, metavar="DIR", help="folder for the stacks and particles.star")
    p.add_argument("--invert", action="store_true", help="invert the contrast (protein white, for RELION/cryoSPARC)")
    p.add_argument("--no-normalise", dest="normalise", action="store_false",
                   help="keep the micrograph values (default: background mean 0, s.d. 1 per box)")
    p.add_argument("--keep-edge", action="store_true",
                   help="keep boxes running off the micrograph, padded with their mean (default: skip them)")
    p.add_argument("--pixel-size", type=positive_float, default=None, metavar="A",
                   help="pixel size in Å/pixel when the headers are wrong or absent")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="print the summary as JSON (or write it to FILE)")
    p.set_defaults(func=run)


def run(args) -> int:
    from deepqs.picking.extract import extract_particles

    warn = lambda msg: print(f"deepqs extract: warning: {msg}", file=sys.stderr)  # noqa: E731
    res = extract_particles(args.micrographs, args.coords, args.box, args.out_dir, invert=args.invert,
                            normalise=args.normalise, keep_edge=args.keep_edge, pixel_size=args.pixel_size, warn=warn)
    table = os.path.join(args.out_dir, "extracted.csv")
    with atomic_output(table) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["micrograph", "index", "x", "y", "stack", "slice"])
            w.writerows([key, i, "%.2f" % x, "%.2f" % y, os.path.abspath(s), k] for key, i, x, y, s, k in res.rows)
    summary = {"n_coordinates": res.n_coordinates, "n_particles": res.n_particles,
               "n_skipped_off_edge": res.n_skipped_off_edge, "n_unmatched_coordinates": sum(res.unmatched.values()),
               "box_px": res.box_px, "pixel_size_A": res.pixel_size_A, "star": os.path.abspath(res.star),
               "table": os.path.abspath(table), "stacks": [os.path.abspath(s) for s in res.stacks]}
    if args.json != "-":
        print(f"extracted {res.n_particles} of {res.n_coordinates} particles ({res.n_skipped_off_edge} off the edge "
              f"skipped) into {len(res.stacks)} stacks; {res.star}")
    emit_json(args.json, summary)
    return 0
