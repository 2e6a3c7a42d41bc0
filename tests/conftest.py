"""Shared pytest fixtures."""

from pathlib import Path

import pytest

#: ``../shared/data`` relative to the repository root (real test data, never copied into the repo).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``../shared/data``; skips the test when that folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data not present ({SHARED_DATA}); real-data checks skipped")
    return SHARED_DATA


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch thread (deterministic speed on shared CI machines); restores the count."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
