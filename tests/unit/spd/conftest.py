"""Fixtures for the SPD unit tests: one CPU thread (the cache folder is the root conftest's)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _spd_env():
    """Make timings independent of other jobs: one CPU thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
