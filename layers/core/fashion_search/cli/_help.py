"""Help pages that read like a well-made CLI, for every command, also ones added later.

typer (0.26+, its own vendored click) writes a required argument as ``{styles_csv}`` in the usage
line and gives every on/off flag a ``<bool>`` value column. ``polish`` walks the built command tree
once before parsing: arguments show as ``STYLES_CSV`` (``[NAME]`` when optional) and flags show no
value. It relies on typer's ``TyperArgument``/``TyperOption`` (hence the typer pin in
pyproject.toml); tests/unit/test_cli_usage.py reads every help page to catch a typer change.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption


class _Argument(TyperArgument):
    """An argument whose usage piece is its metavar, bracketed only when optional."""

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        name = self.metavar or self.name.upper()
        if self.nargs != 1:
            name += "..."
        return [name if self.required else f"[{name}]"]


# typer's value labels, as the words click-style help uses ("<int range>" -> "INTEGER").
_WORDS = {"int": "INTEGER", "float": "FLOAT", "str": "TEXT", "text": "TEXT", "path": "PATH",
          "file": "FILE", "directory": "DIRECTORY"}  # fmt: skip


def _metavar(label: str) -> str | None:
    """``INTEGER`` for ``<int>`` / ``<int range>``; choices and unknown labels stay typer's."""
    bare = label.strip("<>").removesuffix(" range")
    return _WORDS.get(bare)


def polish(command: Any) -> None:
    """Adjust the help display of ``command`` and every subcommand below it, in place."""
    # --help is made on first use and cached; make it now so that it is adjusted too.
    ctx = typer.Context(command)
    help_option = command.get_help_option(ctx)
    for param in [*command.params, help_option]:
        if isinstance(param, TyperArgument):
            if param.metavar is None:
                param.metavar = param.name.upper()
            param.__class__ = _Argument
        elif isinstance(param, TyperOption) and param.metavar is None:
            if param.is_flag:
                param.metavar = ""  # an on/off switch takes no value: no "<bool>" column
            else:
                param.metavar = _metavar(param.display_type(ctx))
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            polish(sub)
