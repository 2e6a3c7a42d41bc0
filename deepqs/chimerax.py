"""ChimeraX command scripts (.cxc) that colour models and maps by the engine's scores.

Colours follow CONVENTIONS.md: higher-is-better scores run red (low) -> white -> blue (high).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from deepqs.errors import PathLike
from deepqs.io.atomic import atomic_output

RED_WHITE_BLUE = "red:white:blue"


def write_defattr(path: PathLike, attribute: str, chains: Sequence[str], resseq: Sequence[int],
                  icodes: Sequence[str], atom_names: Sequence[str], values: np.ndarray) -> int:
    """Write a ChimeraX attribute-assignment file giving each atom ``attribute`` = value.

    Atoms are named ``/CHAIN:RESNUM[ICODE]@ATOM``; NaN values are left out.  Returns the
    number of atoms written.
    """
    values = np.asarray(values, dtype=float)
    keep = np.flatnonzero(np.isfinite(values))
    lines = [f"attribute: {attribute}", "recipient: atoms", "match mode: 1-to-1"]
    lines += [f"\t/{chains[k]}:{resseq[k]}{icodes[k] or ''}@{atom_names[k]}\t{values[k]:.6f}" for k in keep]
    with atomic_output(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write("\n".join(lines) + "\n")
    return int(keep.size)


def write_color_script(path: PathLike, model_path: PathLike, defattr_path: PathLike, attribute: str,
                       low: float = 0.0, high: float = 1.0, map_path: Optional[PathLike] = None,
                       map_level: Optional[float] = None) -> None:
    """Write a ChimeraX .cxc that opens the model (and map) and colours atoms by ``attribute``.

    Paths are written relative to the script's folder when possible, so the folder can move.
    """
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    rel = lambda p: os.path.relpath(os.path.abspath(os.fspath(p)), folder)
    cmds = [f"# Colour by {attribute}: red (low, {low:g}) -> white -> blue (high, {high:g})",
            f"cd {folder}",
            f"open {rel(model_path)}",
            f"open {rel(defattr_path)}",
            "show #1 atoms; style #1 stick",
            f"color byattribute {attribute} #1 palette {RED_WHITE_BLUE} range {low:g},{high:g} novalue gray",
            f"key {RED_WHITE_BLUE} :{low:g} : :{high:g} pos 0.05,0.05 size 0.3,0.03"]
    if map_path is not None:
        cmds.insert(3, f"open {rel(map_path)}")
        cmds.append("transparency #2 70" + (f"; volume #2 level {map_level:g}" if map_level is not None else ""))
    with atomic_output(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write("\n".join(cmds) + "\n")


def write_map_color_script(path: PathLike, map_path: PathLike, score_map_path: PathLike, score: str = "local Q",
                           low: float = 0.0, high: float = 1.0, map_level: Optional[float] = None,
                           palette: str = RED_WHITE_BLUE) -> None:
    """Write a ChimeraX .cxc that shows the map's surface coloured by a score map on the same grid.

    ``color sample`` colours each surface point by the value of ``score_map_path`` there: red
    (``low``) -> white -> blue (``high``) for higher-is-better scores (pass ``palette="blue:white:red"``
    for resolution maps, good = low).  Paths are relative to the script's folder when possible.
    """
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    rel = lambda p: os.path.relpath(os.path.abspath(os.fspath(p)), folder)
    level = f" level {map_level:g}" if map_level is not None else ""
    cmds = [f"# Map surface coloured by {score}: {palette.replace(':', ' -> ')} over {low:g} .. {high:g}",
            f"cd {folder}",
            f"open {rel(map_path)}",
            f"open {rel(score_map_path)}",
            f"volume #1 style surface{level}",
            "volume #2 hide",
            f"color sample #1 map #2 palette {palette} range {low:g},{high:g}",
            f"key {palette} :{low:g} : :{high:g} pos 0.05,0.05 size 0.3,0.03",
            "view"]
    with atomic_output(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write("\n".join(cmds) + "\n")
