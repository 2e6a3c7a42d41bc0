"""``deepqs validate``: map validation levels (0, 1, 2, 3, 5, A) with an HTML and JSON report."""

from __future__ import annotations

import argparse
import sys

from deepqs.commands.common import positive_float, triple

HELP = "grade a map by levels of evidence (0, 1, 2, 3, 5, A) and write an HTML + JSON report"


def add_parser(sub) -> None:
    p = sub.add_parser("validate", help=HELP, description=(
        "Validation report after Sorzano et al. (Faraday Discuss 2022), every check computed natively.  "
        "Level 0 needs the map, its contour threshold and the reported resolution; level 1 adds half maps, "
        "2 class averages, 3 particles (RELION STAR with _rlnImageName and _rlnClassNumber), 5 micrographs "
        "and coordinates, A an atomic model.  Levels attained: the highest consecutive run of 0, 1, 2, 3, 5 "
        "given (4 is not evaluated), plus A.  Writes DIR/report.html (self-contained), DIR/report.json, "
        "DIR/figures/*.png and, with half maps, DIR/local_resolution.mrc."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--map", required=True, metavar="M", help="the map (MRC/CCP4)")
    p.add_argument("--threshold", type=float, default=None, metavar="T",
                   help="contour threshold in map units (required)")
    p.add_argument("--resolution", type=positive_float, default=None, metavar="R",
                   help="reported resolution in Å (required)")
    p.add_argument("--half1", metavar="H1", help="half map 1 (level 1)")
    p.add_argument("--half2", metavar="H2", help="half map 2 (level 1)")
    p.add_argument("--classes", metavar="C.mrcs", help="2D class averages stack (level 2)")
    p.add_argument("--particles", metavar="P.star", help="particles with class numbers (level 3)")
    p.add_argument("--micrographs", nargs="+", metavar="MIC", help="micrographs (level 5)")
    p.add_argument("--coords", metavar="FILE", nargs="+",
                   help="particle coordinates (level 5): one file per micrograph (.box/.star/.csv, matched by "
                        "file stem) or files naming their micrographs (.star, Topaz .txt, .cs)")
    p.add_argument("--box", type=int, default=None, metavar="PX",
                   help="level 5 box size in micrograph pixels (default: 1.85 × the map's particle diameter)")
    p.add_argument("--model", metavar="X.cif", help="atomic model, PDB or mmCIF (level A)")
    p.add_argument("--out-dir", required=True, metavar="DIR", help="output folder")
    p.add_argument("--device", default="cpu", help="torch device of the DeepQs prediction (0.e, A.c): "
                    "cpu, cuda, cuda:N or auto; a GPU that is not visible falls back to the CPU with a warning")
    p.add_argument("--voxel-size", type=triple, default=None, metavar="A",
                   help="override the voxel size of the map and half maps (Å)")
    p.add_argument("--only", default=None, metavar="IDS",
                   help="run only these checks (comma-separated ids, e.g. 0.a,1.a); the rest are listed as not requested")
    p.add_argument("--json", action="store_true", help="print the summary (levels, score, statuses) as JSON on stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from deepqs.errors import InputError
    from deepqs.validation.inputs import load_inputs
    from deepqs.validation.report import write_report
    from deepqs.validation.runner import validate

    if args.threshold is None:
        raise InputError(args.map, "a contour threshold is required (--threshold, map units)")
    if args.resolution is None:
        raise InputError(args.map, "the reported resolution is required (--resolution, Å)")
    if bool(args.micrographs) != bool(args.coords):
        raise InputError((args.coords or [None])[0] or (args.micrographs or [None])[0],
                         "level 5 needs both --micrographs and --coords")
    inp = load_inputs(args.map, args.threshold, args.resolution, half1=args.half1, half2=args.half2,
                      classes=args.classes, particles=args.particles, micrographs=args.micrographs,
                      coords=args.coords, model=args.model, voxel_size=args.voxel_size,
                      box_px=args.box)
    inp.device = args.device
    only = None if not args.only else [s.strip() for s in args.only.split(",") if s.strip()]
    quiet = args.json
    result = validate(inp, only=only, progress=None if quiet else (lambda s: print(f"  {s}", file=sys.stderr)))
    doc = write_report(result, args.out_dir)
    if args.json:
        from deepqs.cli import print_json
        print_json({"report_html": f"{args.out_dir}/report.html", "report_json": f"{args.out_dir}/report.json",
                    "levels": doc["levels"], "score": doc["score"],
                    "checks": [{"id": c["id"], "name": c["name"], "status": c["status"], "warnings": c["warnings"]}
                               for c in doc["checks"]]})
    else:
        print(f"levels attained: {doc['levels_text']}; {doc['score']['text']}")
        for c in doc["checks"]:
            print(f"  {c['id']:4s} {c['status']:15s} {c['name']}" + (f"  ({c['reason']})" if c["reason"] else ""))
            for w in c["warnings"]:
                print(f"         ! {w}")
        print(f"wrote {args.out_dir}/report.html and report.json")
    return 0
