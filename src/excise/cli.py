"""The ``excise`` command: thin typer wrappers around the Python API."""

from __future__ import annotations

import sys

import typer

from excise.errors import ExciseError

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
]
_MOUNTED = False


def _mount_subapps() -> None:
    global _MOUNTED
    if _MOUNTED:
        return
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)
    from excise.spd.cli import app as spd_app

    app.add_typer(spd_app, name="spd", help="Stochastic parameter decomposition (SPD).")
    _MOUNTED = True


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app, printing an ExciseError on one line with exit code 2."""
    _mount_subapps()
    try:
        app(args=argv, standalone_mode=False)
    except ExciseError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except Exception as err:  # click usage errors
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
