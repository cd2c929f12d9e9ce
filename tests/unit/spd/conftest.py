"""The SPD unit tests run at one CPU thread: the root conftest's ``one_thread`` fixture, for every test here."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _spd_one_thread(one_thread: None) -> None:
    """Every SPD unit test uses the root ``one_thread`` fixture (``$EXCISE_THREADS`` overrides it)."""
