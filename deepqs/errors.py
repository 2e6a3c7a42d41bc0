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
