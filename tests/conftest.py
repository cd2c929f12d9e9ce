"""Shared test set-up: offline hubs, a private cache folder, no progress bars, GPU marker."""

from __future__ import annotations

import os

# An accidental hub call must fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("EXCISE_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One cache folder for the whole session (trained organisms and toys are reused across tests).

    Set in the environment before any fixture of wider scope runs, so nothing reaches the user's cache.
    """
    env = os.environ.get("EXCISE_TEST_CACHE_DIR")
    if env:
        os.makedirs(env, exist_ok=True)
        path = env
    else:
        path = str(tmp_path_factory.mktemp("excise-cache"))
    os.environ["EXCISE_CACHE_DIR"] = path
    return path


@pytest.fixture(scope="session", autouse=True)
def _torch_threads() -> None:
    """The session runs at excise's one thread policy (``excise.threads``; ``EXCISE_THREADS`` overrides it),
    the cores shared among pytest-xdist's workers when ``make test`` runs several."""
    import torch

    from excise.threads import auto_threads

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    n = auto_threads(workers=workers)
    if workers > 1:  # every worker, and every command a test starts, stays on its share of the cores
        os.environ.setdefault("EXCISE_THREADS", str(n))
    torch.set_num_threads(n)


@pytest.fixture
def one_thread():  # type: ignore[no-untyped-def]
    """One torch thread for the test (``$EXCISE_THREADS`` overrides it), restored afterwards.

    Tiny models gain nothing from threads, and on a busy machine extra threads spin-wait and crawl.
    Use it in a file with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    from excise.threads import env_threads, use_threads

    with use_threads(env_threads() or 1):
        yield


@pytest.fixture(autouse=True)
def _cache_dir(session_cache_dir: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test writes its cache into the session's private folder, never the user's."""
    monkeypatch.setenv("EXCISE_CACHE_DIR", session_cache_dir)
    return session_cache_dir


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` run only where CUDA is available."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # noqa: BLE001
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def organism(session_cache_dir: str):  # type: ignore[no-untyped-def]
    """The default organism ``(model, tokenizer)``, trained once per session into the session cache."""
    old = os.environ.get("EXCISE_CACHE_DIR")
    os.environ["EXCISE_CACHE_DIR"] = session_cache_dir
    try:
        from excise.zoo.organism import load_organism

        return load_organism()
    finally:
        if old is None:
            os.environ.pop("EXCISE_CACHE_DIR", None)
        else:
            os.environ["EXCISE_CACHE_DIR"] = old
