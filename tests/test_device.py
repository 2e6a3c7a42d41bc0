"""Device choice: CPU fallback with a warning, never a crash."""

import pytest
import torch

from deepqs.device import resolve_device
from deepqs.errors import InputError


def test_cpu_and_auto():
    assert resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU fallback")
def test_cuda_without_gpu_falls_back_with_warning(capsys):
    messages = []
    assert resolve_device("cuda:0", warn=messages.append).type == "cpu"
    assert len(messages) == 1 and "running on the CPU" in messages[0]
    assert resolve_device("cpu", gpus=[0]).type == "cpu"
    assert "no CUDA GPU is visible" in capsys.readouterr().err
    with pytest.raises(InputError, match="no CUDA GPU is visible"):
        resolve_device("cuda", strict=True)


def test_unknown_device_is_an_input_error():
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("tpu7")
