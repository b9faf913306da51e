"""The ``fashion-search`` command. Each subcommand group lives in its own module here and is
registered below; commands parse and wire, the core does the work."""

from __future__ import annotations

import sys
from typing import Any

import typer
import typer.main

from fashion_search.cli._help import polish
from fashion_search.errors import DiskFull, FashionSearchError
from fashion_search.settings import ENV_PREFIX
from fashion_search.stores.disk import disk_full_message, is_disk_full

app = typer.Typer(
    name="fashion-search",
    help="Fashion image search: embed, index and search product photos by text or image.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


_registered = False


def _register_all() -> None:
    """Every module in this package that defines ``register(app)`` adds its commands (once)."""
    import importlib
    import pkgutil

    global _registered
    if _registered:
        return
    _registered = True

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


def build() -> Any:
    """The whole command tree (every module's commands), with polished help pages."""
    _register_all()
    command = typer.main.get_command(app)
    polish(command)
    return command


def main(argv: list[str] | None = None) -> None:
    """Entry point: a readable message and a meaningful exit status, never a traceback, for
    usage errors (2), the errors we model and AWS's (2), a full disk and other file-system errors
    (1) and Ctrl-C (130). Commands exit 1 themselves when items failed or are left to retry."""
    command = build()
    try:
        # standalone_mode=False: our handlers below see the errors; typer returns the code of a
        # ``raise typer.Exit(n)`` instead of exiting, so it is passed on here.
        code = command.main(args=argv, prog_name="fashion-search", standalone_mode=False)
    except FashionSearchError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(1 if isinstance(exc, DiskFull) else 2)  # the machine, not the call, is at fault
    except typer.TyperException as exc:
        # Usage errors (unknown command, missing argument, bad value) and file errors of typer's
        # own click: usage + "Try ... --help" + the error, exit 2 for usage errors.
        _show(exc)
        sys.exit(exc.exit_code)
    except typer.Abort:  # a prompt answered by end-of-input or Ctrl-C
        typer.echo("aborted", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except OSError as exc:  # the machine, not the code: a full disk, a folder we may not write
        if is_disk_full(exc):
            typer.echo(f"error: {disk_full_message(exc.filename, exc)}", err=True)
        else:
            where = f": {exc.filename}" if exc.filename else ""
            typer.echo(f"error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
    except Exception as exc:
        if not _from_aws_sdk(exc):
            raise
        # No region, no credentials, access denied, a stack that does not exist: AWS's own words
        # say what to fix; a traceback through botocore does not.
        hint = (
            f" (pass --region, or set {ENV_PREFIX}AWS__REGION or AWS_DEFAULT_REGION)"
            if type(exc).__name__ == "NoRegionError"
            else ""
        )
        typer.echo(f"error: AWS: {exc}{hint}", err=True)
        sys.exit(2)
    if isinstance(code, int) and code != 0:
        sys.exit(code)


def _from_aws_sdk(exc: Exception) -> bool:
    """botocore's errors (``BotoCoreError``, ``ClientError``), without importing boto for
    commands that never touch AWS (it is an optional extra)."""
    if type(exc).__module__.split(".")[0] in ("botocore", "boto3"):
        return True
    # botocore also raises plain ValueErrors (an empty region makes an "Invalid endpoint").
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and "/botocore/" in tb.tb_frame.f_code.co_filename.replace("\\", "/")


def _show(exc: typer.TyperException) -> None:
    show = getattr(exc, "show", None)  # typer's click exceptions print usage and hint themselves
    if callable(show):
        show()
    else:
        typer.echo(f"Error: {exc.format_message()}", err=True)
