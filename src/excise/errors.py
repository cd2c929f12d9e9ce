"""The exception types users see, and the exit code each one means."""

from __future__ import annotations

#: Exit codes of the ``excise`` command (every command group uses the same ones).
EXIT_OK = 0
EXIT_FAILED = 1  # a run or a sweep failed, or the storage under it did
EXIT_USAGE = 2  # bad input: an ExciseError or a command-line usage error
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM


class ExciseError(Exception):
    """A user-facing error: the message says what was wrong and how to fix it.

    The CLI prints it on one line without a traceback and exits with ``exit_code`` (2: bad input).
    """

    exit_code = EXIT_USAGE


class StorageError(ExciseError):
    """The disk under an output folder refused a write (full, read-only, gone): exit code 1.

    Not bad input: the same command succeeds once space is freed, and a sweep resumes where it stopped.
    """

    exit_code = EXIT_FAILED


class Interrupted(Exception):
    """Raised by a command that handled Ctrl-C/SIGTERM itself; the message is printed, exit code 130."""
