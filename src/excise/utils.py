"""Small shared helpers: atomic writes, hashing, progress bars, cache directory."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from excise.errors import ExciseError

T = TypeVar("T")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(Path(path), text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(Path(path), json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hash of a JSON-serialisable object, independent of dict order."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def cache_dir() -> Path:
    """The user cache folder of excise (``$EXCISE_CACHE_DIR`` or ``~/.cache/excise``)."""
    env = os.environ.get("EXCISE_CACHE_DIR")
    if env:
        base = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "excise"
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExciseError(
            f"cannot create the cache directory {base} ({err.strerror}); "
            "set EXCISE_CACHE_DIR to a writable folder"
        ) from None
    if not os.access(base, os.W_OK):
        raise ExciseError(
            f"the cache directory {base} is not writable; set EXCISE_CACHE_DIR to a writable folder"
        )
    return base


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, **kw: Any) -> Iterator[T]:
    """A tqdm bar that stays silent when stderr is not a terminal."""
    from tqdm.auto import tqdm

    disable = kw.pop("disable", None)
    if disable is None:
        disable = not sys.stderr.isatty() or os.environ.get("EXCISE_NO_PROGRESS") == "1"
    yield from tqdm(iterable, desc=desc, total=total, disable=disable, leave=False, **kw)
