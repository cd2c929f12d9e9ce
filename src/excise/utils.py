"""Small shared helpers: atomic writes, hashing, progress bars, cache directory."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from excise.errors import ExciseError

T = TypeVar("T")


def current_umask() -> int:
    """The process umask, read without changing it (``/proc``), else by the set-and-restore dance."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def honour_umask(path: str | Path, directory: bool = False) -> None:
    """Give a file (0666) or folder (0777) made by mkstemp/mkdtemp (0600/0700) the umask's permissions."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO})


def is_storage_error(err: BaseException) -> bool:
    """Whether an exception means the disk refused a write (full, read-only, quota, I/O error)."""
    return isinstance(err, OSError) and err.errno in STORAGE_ERRNOS


def storage_error(err: OSError, folder: str | Path, what: str = "") -> ExciseError:
    """A one-line StorageError naming the folder and the cause (``No space left on device``, ...)."""
    from excise.errors import StorageError

    cause = err.strerror or type(err).__name__
    return StorageError(
        f"cannot write in {folder}: {cause}{f' ({what})' if what else ''}; "
        "free space (or make it writable) and run the same command again"
    )


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def check_plain_name(name: object, what: str = "name") -> str:
    """A name used inside a path must be plain: letters, digits, '-', '_' and '.', not leading '.'."""
    if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name) or len(name) > 200:
        raise ExciseError(
            f"{what} {name!r} cannot be used in a folder name; use letters, digits, '-', '_' and '.' "
            "(not first), e.g. my-study_v2"
        )
    return name


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    The file gets the permissions the umask allows (as ``open`` would give), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_writable_location(path: str | Path, what: str = "--out") -> Path:
    """Fail now, before any work, if ``path`` cannot be created: under a file, read-only, no access.

    Looks at the nearest folder that exists above ``path`` and creates (and removes) a probe file there,
    so that nothing is left behind either way.
    """
    p = Path(path)
    probe_dir = p.parent
    for anc in [p, *p.parents]:
        if anc.exists() or anc.is_symlink():
            if anc != p and not anc.is_dir():
                raise ExciseError(f"{what} {p} is inside {anc}, which is a file, not a folder")
            probe_dir = anc if anc != p or p.is_dir() else p.parent
            break
    probe_dir = probe_dir if str(probe_dir) else Path(".")
    try:
        fd, probe = tempfile.mkstemp(dir=probe_dir, prefix=".excise-probe-")
    except OSError as err:
        raise ExciseError(
            f"cannot write {what} {p}: {probe_dir} is not writable ({err.strerror}); choose another path"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return p


def check_output_dir(path: str | Path, markers: tuple[str, ...], kind: str, what: str = "--out") -> Path:
    """An output folder must be new, empty, or an earlier output of the same kind (one of ``markers``
    inside); a file, or a folder of other files, is refused before any work starts."""
    p = Path(path)
    check_writable_location(p, what)
    if p.exists() and not p.is_dir():
        raise ExciseError(f"{what} {p} is a file; pass a folder path (new, empty, or an earlier {kind})")
    if p.is_dir() and any(p.iterdir()) and not any((p / m).exists() for m in markers):
        raise ExciseError(
            f"{what} {p} is a folder of other files, not a {kind}; choose a new or empty folder "
            "(nothing was written)"
        )
    return p


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


def lazy_exports(
    package: str, exports: dict[str, str], aliases: dict[str, str] | None = None
) -> tuple[Any, Any]:
    """``(__getattr__, __dir__)`` for a package whose public names load on first use (PEP 562).

    ``exports`` maps a public name to the module that defines it (absolute, or relative to
    ``package`` when it starts with '.'); ``aliases`` renames (public name -> name in that module).
    Importing a light submodule then never pays for the heavy ones (torch, transformers).
    """
    import importlib

    names = aliases or {}

    def __getattr__(name: str) -> Any:
        mod = exports.get(name)
        if mod is None:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        value = getattr(importlib.import_module(mod, package), names.get(name, name))
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__
