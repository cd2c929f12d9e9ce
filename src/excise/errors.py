"""The one exception type users see."""

from __future__ import annotations


class ExciseError(Exception):
    """A user-facing error: the message says what was wrong and how to fix it.

    The CLI prints it on one line without a traceback and exits with code 2.
    """
