"""The one device resolver."""

from __future__ import annotations

import pytest
import torch

from excise.devices import check_device, resolve_device
from excise.errors import ExciseError


def test_cpu_and_auto() -> None:
    assert check_device("cpu") == "cpu" and check_device("auto") == "auto"
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("bad", ["tpu", "cuda:x", "", "gpu0"])
def test_unknown_devices_name_the_choices(bad: str) -> None:
    with pytest.raises(ExciseError, match="cpu, cuda, cuda:N or auto"):
        check_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_says_to_use_the_cpu() -> None:
    with pytest.raises(ExciseError, match="no CUDA GPU is visible; use device cpu"):
        resolve_device("cuda:0")
