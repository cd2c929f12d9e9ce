"""Context managers that capture or modify module inputs and outputs; handles always removed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch
from torch import nn


@contextmanager
def hooks(
    modules: dict[str, nn.Module],
    forward: Callable[[str, nn.Module, tuple[Any, ...], Any], Any] | None = None,
    forward_pre: Callable[[str, nn.Module, tuple[Any, ...]], Any] | None = None,
    backward: Callable[[str, nn.Module, tuple[Any, ...], tuple[Any, ...]], Any] | None = None,
) -> Iterator[None]:
    """Register forward / forward-pre / full-backward hooks on named modules for the block."""
    handles: list[torch.utils.hooks.RemovableHandle] = []
    try:
        for name, mod in modules.items():
            if forward is not None:
                handles.append(mod.register_forward_hook(partial(forward, name)))
            if forward_pre is not None:
                handles.append(mod.register_forward_pre_hook(partial(forward_pre, name)))
            if backward is not None:
                handles.append(mod.register_full_backward_hook(partial(backward, name)))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def capture_inputs(modules: dict[str, nn.Module]) -> Iterator[dict[str, torch.Tensor]]:
    """Record the latest first positional input of each module (detached)."""
    store: dict[str, torch.Tensor] = {}

    def pre(name: str, _m: nn.Module, inputs: tuple[Any, ...]) -> None:
        store[name] = inputs[0].detach()

    with hooks(modules, forward_pre=pre):
        yield store


@contextmanager
def modify_inputs(
    modules: dict[str, nn.Module], fn: Callable[[str, torch.Tensor], torch.Tensor]
) -> Iterator[None]:
    """Replace the first positional input x of each module by ``fn(name, x)``."""

    def pre(name: str, _m: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
        return (fn(name, inputs[0]), *inputs[1:])

    with hooks(modules, forward_pre=pre):
        yield
