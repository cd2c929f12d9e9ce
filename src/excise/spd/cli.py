"""``excise spd`` lives in :mod:`excise.commands.spd`; this name is kept for ``python -m excise.spd.cli``."""

from __future__ import annotations

from excise.commands.spd import app, list_cmd, main, run

__all__ = ["app", "list_cmd", "main", "run"]

if __name__ == "__main__":
    main()
