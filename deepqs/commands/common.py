"""Argument types and output helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import json

from deepqs.io.atomic import atomic_output


def triple(text: str):
    """Parse ``"1.2"`` or ``"1.2,1.2,1.5"`` into a float or an (x, y, z) tuple."""
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or three numbers x,y,z, got {text!r}")
    if len(values) == 1:
        return values[0]
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected a number or three numbers x,y,z, got {text!r}")
    return tuple(values)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def number_in(lo: float, hi: float, also: tuple = ()):
    """An argparse type: a number in [lo, hi], or one of the words ``also``."""
    what = f"a number in [{lo:g}, {hi:g}]" + "".join(f", {w!r}" for w in also)

    def parse(text: str):
        if text in also:
            return text
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def write_json(path: str, obj) -> None:
    """Write one JSON object to ``path`` atomically."""
    with atomic_output(path) as tmp:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2)
            fh.write("\n")


def xyz(text: str):
    """Parse ``"x,y,z"`` (three numbers, Å) into a tuple."""
    value = triple(text)
    if not isinstance(value, tuple):
        raise argparse.ArgumentTypeError(f"expected three numbers x,y,z, got {text!r}")
    return value


def add_grid_options(p) -> None:
    """``--voxel-size`` and ``--origin``: correct a map's header from the command line."""
    p.add_argument("--voxel-size", type=triple, default=None, metavar="A",
                   help="override the map's voxel size in Å/voxel (one number or x,y,z) when the header is wrong")
    p.add_argument("--origin", type=xyz, default=None, metavar="X,Y,Z",
                   help="replace the map's origin: real-space position in Å of the first voxel "
                        "(write --origin=-10,0,5 when the first number is negative)")


def read_map_from_args(path: str, args, mmap: bool = False):
    """Read a map applying ``--voxel-size`` and ``--origin`` (see :func:`add_grid_options`)."""
    import numpy as np

    from deepqs.io import read_map

    m = read_map(path, voxel_size=args.voxel_size, mmap=mmap)
    if args.origin is not None:
        m.origin = np.asarray(args.origin, dtype=np.float64)
    return m


def emit_json(dest, obj) -> None:
    """``--json [FILE]`` output: nothing for None, stdout for "-", else the file (atomically)."""
    if dest is None:
        return
    if dest == "-":
        import sys
        json.dump(obj, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        write_json(dest, obj)
