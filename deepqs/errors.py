"""The one error type the engine raises for bad input."""

from __future__ import annotations

import os
from typing import Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


class InputError(Exception):
    """Bad input: a file or a value the engine cannot use.

    The message always names the file (when there is one) and the reason, in one line,
    so that the command line can print it as it is and exit with status 2.

    >>> str(InputError("map.mrc", "contains NaN voxels"))
    'map.mrc: contains NaN voxels'
    """

    def __init__(self, path: Optional[PathLike], reason: str):
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(reason if self.path is None else f"{self.path}: {reason}")


def check_input_file(path: PathLike, what: str = "file", allow_empty: bool = True) -> str:
    """Return ``path`` as a string after the checks every reader makes first.

    Raises InputError when the path does not exist, is a folder, or (``allow_empty=False``)
    is an empty file; ``what`` names the expected kind ("map file", "model file"...).
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise InputError(p, "file not found")
    if os.path.isdir(p):
        raise InputError(p, f"is a folder, not a {what}")
    if not allow_empty and os.path.getsize(p) == 0:
        raise InputError(p, f"empty file (0 bytes), not a {what}")
    return p
