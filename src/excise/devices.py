"""The one device resolver: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``, checked before any work."""

from __future__ import annotations

import torch

from excise.errors import ExciseError

DEVICES_HELP = "use cpu, cuda, cuda:N or auto"


def check_device(device: str) -> str:
    """The device string unchanged when valid (``auto`` kept); an ExciseError otherwise.

    CUDA asked for on a machine without one is an error naming the fix.
    """
    if not isinstance(device, str) or not device:
        raise ExciseError(f"device must be a string; {DEVICES_HELP}")
    if device == "auto" or device == "cpu":
        return device
    if device == "cuda" or device.startswith("cuda:"):
        if device.startswith("cuda:") and not device[5:].isdigit():
            raise ExciseError(f"unknown device '{device}'; {DEVICES_HELP}")
        if not torch.cuda.is_available():
            raise ExciseError(f"device '{device}' was asked for but no CUDA GPU is visible; use device cpu")
        if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
            raise ExciseError(
                f"device '{device}' does not exist: {torch.cuda.device_count()} CUDA device(s) are visible"
            )
        return device
    raise ExciseError(f"unknown device '{device}'; {DEVICES_HELP}")


def resolve_device(device: str) -> torch.device:
    """A concrete torch device: ``auto`` is CUDA where one is visible, else the CPU."""
    device = check_device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
