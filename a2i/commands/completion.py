"""Tab completion of ``a2i`` in bash and zsh: ``eval "$(register-python-argcomplete a2i)"``.

The shell runs ``a2i`` with the line being edited in ``COMP_LINE`` and ``_ARGCOMPLETE`` set
(argcomplete's protocol); the candidates go to file descriptor 8 and the process exits. Command
names and the tools' options are completed without importing Lightning; a Lightning command's
options need its parser, built by :class:`a2i.cli.A2ICLI` (seconds: the Lightning import).

Each parser is completed on its own, as if it were the program: jsonargparse 4.53 cannot complete
through its subcommands (its argcomplete hook hands the subcommand action an ``argparse``
namespace, the action fails, and argcomplete then crashes on the half-patched subparser).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from a2i.commands import LIGHTNING_COMMANDS, TOOLS, command_parser


def requested() -> bool:
    """Whether this process was started by the shell to complete a command line."""
    return "_ARGCOMPLETE" in os.environ


def line_words() -> list[str]:
    """The finished words of the line being completed, from ``a2i`` on (``python -m a2i`` too)."""
    from argcomplete.lexers import split_line

    words = split_line(os.environ["COMP_LINE"], int(os.environ["COMP_POINT"]))[3]
    return words[int(os.environ["_ARGCOMPLETE"]) - 1 :]


def complete(parser: argparse.ArgumentParser, first_word: int) -> NoReturn:
    """Write the candidates of ``parser`` (whose program is the line's word ``first_word``), exit.

    A jsonargparse parser completes in ``parse_args`` (with its types' completers and
    ``--config`` files); a plain ``argparse`` one through :func:`argcomplete.autocomplete`.
    """
    import argcomplete

    start = int(os.environ["_ARGCOMPLETE"]) + first_word
    os.environ["_ARGCOMPLETE"] = str(start)
    jsonargparse = sys.modules.get("jsonargparse")
    if jsonargparse is not None and isinstance(parser, jsonargparse.ArgumentParser):
        parser.parse_args([])
    else:
        argcomplete.autocomplete(parser)
    sys.exit(1)  # (argcomplete exits after writing; reaching here means it could not)


def complete_without_lightning() -> str:
    """Complete the line if that needs no Lightning; otherwise return its Lightning command."""
    words = line_words()
    command = words[1] if len(words) > 1 else ""
    if command in TOOLS:
        complete(importlib.import_module(f"a2i.commands.{command}").build_parser(), 1)
    if command not in LIGHTNING_COMMANDS:
        complete(command_parser(), 0)
    return command


def complete_lightning_command(subcommand_parsers: dict[str, argparse.ArgumentParser]) -> NoReturn:
    """Complete the options of the line's Lightning command (``a2i fit --trainer.max_<TAB>``).

    ``--model`` and ``--data`` offer a2i's methods and datamodules, ``--config`` the shipped
    configs' names besides files. jsonargparse's completers answer None for the types they do
    not know (argcomplete needs a list): those answer no candidate instead.
    """
    from a2i.commands.catalog import DATAMODULE_BASE, METHOD_BASE, known_subclasses
    from a2i.config_files import shipped_configs

    parser = subcommand_parsers[line_words()[1]]
    offered = {
        "--model": lambda: known_subclasses(METHOD_BASE),
        "--data": lambda: known_subclasses(DATAMODULE_BASE),
        "--config": shipped_configs,
    }
    for action in parser._actions:
        own = getattr(action, "completer", None)
        more = next((offered[flag] for flag in action.option_strings if flag in offered), None)
        if more is not None or own is not None:
            action.completer = functools.partial(_candidates, own, more)
    complete(parser, 1)


def _candidates(
    own: Callable[..., list[str] | None] | None,
    more: Callable[[], list[str]] | None,
    **kwargs: Any,
) -> list[str]:
    return [*((own and own(**kwargs)) or []), *(more() if more else [])]
