"""The ``fashion-search`` command. Each subcommand group lives in its own module here and is
registered below; commands parse and wire, the core does the work."""

from __future__ import annotations

import sys

import typer

from fashion_search.errors import FashionSearchError

app = typer.Typer(
    name="fashion-search",
    help="Fashion image search: embed, index and search product photos by text or image.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    """Every module in this package that defines ``register(app)`` adds its commands."""
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: readable one-line errors instead of tracebacks for the errors we model."""
    _register_all()
    try:
        app(args=argv, standalone_mode=False)
    except FashionSearchError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here with standalone_mode=False
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
