"""Atomic outputs: renamed into place on success, nothing left on failure, normal permissions."""

import os
import stat

import pytest

from deepqs.io.atomic import atomic_output


def test_success_renames_with_umask_permissions(tmp_path):
    target = tmp_path / "out.txt"
    old = os.umask(0o022)
    try:
        with atomic_output(target) as tmp:
            assert tmp != str(target) and tmp.endswith(".txt")
            with open(tmp, "w") as fh:
                fh.write("ok")
    finally:
        os.umask(old)
    assert target.read_text() == "ok"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["out.txt"]


def test_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
