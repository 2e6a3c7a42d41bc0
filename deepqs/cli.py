"""The ``deepqs`` command line: one sub-command per capability.

Every sub-command lives in ``deepqs.commands.<name>`` and provides ``add_parser(subparsers)``
(which sets ``func``) and its ``run(args) -> int``.  Bad input ends with one line on stderr and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import List, Optional

from deepqs import __version__
from deepqs.errors import InputError

#: Sub-command modules, in the order ``deepqs --help`` lists them.
COMMANDS = ("info", "simulate", "qscore", "localq", "pick", "extract", "prune", "validate", "demo")

EXIT_INPUT_ERROR = 2

DESCRIPTION = """\
deepqs: deep-learning quality control for cryo-EM single-particle analysis.

Maps are MRC/CCP4 (voxel size and origin from the header, overridable), models PDB/mmCIF,
particle coordinates EMAN2 .box, RELION .star, Topaz .txt or cryoSPARC .cs.  Lengths are in Å.
Run 'deepqs COMMAND --help' for the options of each command.
"""

EPILOG = """\
examples:
  deepqs info emd_1234.map                 what a map holds (grid, origin, value statistics)
  deepqs info model.cif --json             atom, residue and chain counts as JSON
  deepqs simulate map --out sim/           a model, its map and two half maps at 4 Å
  deepqs demo --out demo/                  the whole demo on data the project generates
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepqs", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"deepqs {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"deepqs.commands.{name}").add_parser(sub)
    return parser


def print_json(obj) -> None:
    """Print one JSON object (the ``--json`` output of every command)."""
    json.dump(obj, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_INPUT_ERROR
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"deepqs {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except MemoryError:
        print(f"deepqs {args.command}: error: not enough memory for this input; "
              "use a smaller box, tile size or batch size", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print(f"deepqs {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
