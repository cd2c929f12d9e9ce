"""Fixtures for the SPD unit tests: a private toy-model cache and one CPU thread."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _spd_env(tmp_path_factory: pytest.TempPathFactory):
    """Keep trained toy models out of the user's cache and make timings independent of other jobs."""
    old = os.environ.get("EXCISE_CACHE_DIR")
    os.environ["EXCISE_CACHE_DIR"] = str(tmp_path_factory.mktemp("excise-cache"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    if old is None:
        os.environ.pop("EXCISE_CACHE_DIR", None)
    else:
        os.environ["EXCISE_CACHE_DIR"] = old
