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
