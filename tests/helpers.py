"""Assertions shared by the engine tests."""

import os


def assert_input_error(excinfo, path, *words):
    """The InputError names the file and contains every word of ``words`` (case-insensitive)."""
    msg = str(excinfo.value)
    assert os.path.basename(str(path)) in msg
    for w in words:
        assert w.lower() in msg.lower(), msg
