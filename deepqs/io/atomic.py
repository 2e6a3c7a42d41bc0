"""Atomic file output: write to a temporary name beside the target, then rename.

A crash or a bad input never leaves a half-written output file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Iterator

from deepqs.errors import PathLike


@contextlib.contextmanager
def atomic_output(path: PathLike, suffix: str | None = None) -> Iterator[str]:
    """Yield a temporary path in the target's folder; rename it to ``path`` on success.

    ``suffix`` defaults to the target's own extension, so libraries that choose a format
    from the file name (gemmi, matplotlib) still see the right one.  On an exception the
    temporary file is removed and the target is left untouched.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".part" + suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the output the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
