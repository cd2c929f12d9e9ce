"""The ``excise`` command: thin typer wrappers around the Python API.

:func:`run_app` is the one translator from what a command raised to an exit code; every command
group (also ``excise spd`` and ``python -m excise.commands.experiments`` run on their own) uses it:

====  ==========================================================================================
0     success
1     a run or a sweep failed, or the disk refused a write (full, read-only): one line says where
2     bad input: an ExciseError (one line) or a usage error (click's short usage block)
130   interrupted (Ctrl-C, SIGTERM of a sweep): one line says so
====  ==========================================================================================
"""

from __future__ import annotations

import contextlib
import errno
import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any

import typer

from excise.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ExciseError, Interrupted

app = typer.Typer(
    name="excise",
    help="Find which parts of a neural network carry a behaviour, and cut, freeze or decompose them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# Command modules, each with ``register(app)``; add one line per command group.
_COMMAND_MODULES: list[str] = [
    "excise.commands.weights",
    "excise.commands.experiments",
    "excise.commands.safety",
    "excise.commands.spd",
    "excise.commands.heads",
    "excise.commands.finetune",
    "excise.commands.purity",
]
_MOUNTED = False


def _mount_subapps() -> None:
    global _MOUNTED
    if _MOUNTED:
        return
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)
    _MOUNTED = True


def _classes(*names: str) -> tuple[type[BaseException], ...]:
    """Exception classes by dotted name, skipping those this typer/click version does not have.

    Typer 0.29 bundles its own copy of click (``typer._click``) and raises those classes; older typer
    versions raise click's own. Both are recognised, so the translator works with either.
    """
    import importlib

    out: list[type[BaseException]] = []
    for name in names:
        mod, _, attr = name.rpartition(".")
        try:
            cls = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError):
            continue
        if isinstance(cls, type) and issubclass(cls, BaseException) and cls not in out:
            out.append(cls)
    return tuple(out)


_USAGE = ("typer._click.exceptions.ClickException", "click.exceptions.ClickException")
_EXIT = ("typer.exceptions.Exit", "click.exceptions.Exit")
_ABORT = ("typer.exceptions.Abort", "click.exceptions.Abort")


def _say(line: str) -> None:
    with contextlib.suppress(OSError):  # stderr is gone (closed pipe): nothing left to tell
        typer.echo(line, err=True)


def translate_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a command so that its ExciseError becomes the same one line and exit code even when the
    command group is invoked directly (``CliRunner``, a group run on its own) rather than via
    :func:`run_app`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ExciseError as err:
            _say(f"error: {err}")
            raise typer.Exit(int(getattr(err, "exit_code", EXIT_USAGE))) from None

    return wrapper


def run_app(app: Any, argv: Sequence[str] | None = None, prog_name: str | None = None) -> int:
    """Run a typer app and return its exit code (see the module docstring); never lets a
    user-facing error out as a traceback. Genuine bugs still raise."""
    usage, exits, aborts = _classes(*_USAGE), _classes(*_EXIT), _classes(*_ABORT)
    try:
        rv = app(args=list(argv) if argv is not None else None, standalone_mode=False, prog_name=prog_name)
    except ExciseError as err:
        _say(f"error: {err}")
        return int(getattr(err, "exit_code", EXIT_USAGE))
    except Interrupted as err:
        _say(str(err) or "interrupted")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except BaseException as err:
        if exits and isinstance(err, exits):
            return int(getattr(err, "exit_code", EXIT_OK))
        if aborts and isinstance(err, aborts):
            _say("aborted")
            return EXIT_FAILED
        if usage and isinstance(err, usage):
            err.show()  # type: ignore[attr-defined]
            return int(getattr(err, "exit_code", EXIT_USAGE))
        if isinstance(err, OSError):
            if err.errno == errno.EPIPE:  # the reader of our output went away (e.g. ``| head``)
                return EXIT_FAILED
            where = f" ({err.filename})" if err.filename else ""
            _say(f"error: {err.strerror or err}{where}")
            return EXIT_FAILED
        raise
    if isinstance(rv, bool) or not isinstance(rv, int):
        return EXIT_OK
    if rv == EXIT_INTERRUPTED:  # typer turns a KeyboardInterrupt inside a command into Exit(130)
        _say("interrupted")
    return rv


def exit_with(
    app: Any,
    argv: Sequence[str] | None = None,
    prepare: Callable[[], None] | None = None,
    prog_name: str | None = None,
) -> None:
    """``sys.exit(run_app(...))``, with an interrupt during ``prepare`` (imports) also giving 130."""
    try:
        if prepare is not None:
            prepare()
    except KeyboardInterrupt:
        _say("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(run_app(app, argv, prog_name))


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``excise``: exit code 0, 1 (failed), 2 (bad input) or 130 (interrupted)."""
    exit_with(app, argv, _mount_subapps, prog_name="excise")


if __name__ == "__main__":
    main()
