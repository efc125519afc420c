"""The ``a2i`` command's light half: help, ``--version`` and the commands outside Lightning.

``a2i --help`` and ``a2i --version`` import neither torch nor Lightning (whose import brings
torchmetrics, torchvision and transformers: seconds); each of the :data:`TOOLS` is a module
``a2i.commands.<name>`` (``HELP: str``, ``main(argv)``) imported only when it runs. The Lightning
commands (:data:`LIGHTNING_COMMANDS`) are :func:`a2i.cli.main`'s.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version

from a2i.commands.config_paths import resolve_config_arguments
from a2i.commands.console import quiet_expected_messages
from a2i.errors import A2IError, RankStopped
from a2i.io_utils import printable

LIGHTNING_COMMANDS = {
    "fit": "train a method (a config names the method, its parts and the data)",
    "validate": "score a method on the validation split",
    "test": "score a method on the test split (add --config eval/world for the full report)",
    "predict": "turn a folder of sounds into images (+ grid and manifest), with the controls",
    "embed": "write the audio tower's embedding of every sound in a folder (one .npy each)",
}
"""LightningCLI subcommands (:class:`a2i.cli.A2ICLI`) and their one-line help."""

TOOLS = {
    "world": "materialise the embedded synthetic audio-visual world to disk",
    "prepare": "decode a video dataset into training shards",
    "sonify": "sonify an image collection into audio-visual training shards (Seeing Sound)",
    "serve": "serve a local web demo: upload or record a sound, see the images the models draw",
}
"""Commands outside Lightning: name → the ``HELP`` of ``a2i.commands.<name>`` (checked by a test,
written here so that ``a2i --help`` imports none of them)."""

HELP_FLAGS = ("-h", "--help")


def package_version() -> str:
    """The installed a2i's version (from its metadata, as pip reports it)."""
    try:
        return version("a2i")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from a2i import __version__

        return __version__


def command_parser() -> argparse.ArgumentParser:
    """The top level of ``a2i``: its options and the commands, for ``--help`` and tab completion.

    The commands are routed by :func:`run_without_lightning` and :func:`a2i.cli.main`; this
    parser only describes them.
    """
    parser = argparse.ArgumentParser(
        prog="a2i",
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=14, width=100),
        description="Audio-to-image generation: Sound2Vision, AudioToken, WavBriVL and Seeing "
        "Sound on one set of interfaces.",
        epilog="`a2i COMMAND --help` gives a command's options; `a2i fit --help` also lists the "
        "methods, datamodules and configs shipped with a2i. --config takes a file or a shipped "
        "config's name: `a2i fit --config tiny/sound2vision_gan` (also a2i://configs/tiny/...).",
    )
    parser.add_argument("--version", action="store_true", help="show a2i's version and exit")
    commands = parser.add_subparsers(
        title="commands (training and inference with Lightning, then data and tools)",
        metavar="COMMAND",
    )
    for name, help_line in {**LIGHTNING_COMMANDS, **TOOLS}.items():
        commands.add_parser(name, help=help_line)
    return parser


def print_error(error: A2IError) -> None:
    """One line on stderr, as every a2i command reports a mistake the user can fix."""
    print(f"a2i: error: {printable(error)}", file=sys.stderr)


def exit_naming_failures(command: str, named: list[tuple[str, str]], summary: str) -> None:
    """Name failed inputs on stderr (``named``: ``(kind, "name: reason")``), ``summary``, exit 1.

    A tool calls it last, once every other input is done; of a kind that a log holds in full it
    names the first ten.
    """
    for kind, text in named:
        print(f"  {kind}: {printable(text)}", file=sys.stderr)
    print(f"a2i {command}: {summary}", file=sys.stderr)
    sys.exit(1)


def a2i_cause(error: BaseException) -> A2IError | None:
    """The a2i error behind ``error`` (jsonargparse wraps errors raised while instantiating)."""
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 16:
        if isinstance(current, A2IError):
            return current
        current, seen = current.__cause__ or current.__context__, seen + 1
    return None


@contextmanager
def exit_on_a2i_errors() -> Iterator[None]:
    """End with one line and exit status 2 on an a2i error (0 on a stopped rank); re-raise others.

    Both ways in (a tool, a Lightning command) share it, so every command fails the same way.
    """
    try:
        yield
    except (A2IError, ValueError) as error:
        cause = a2i_cause(error)
        if cause is None:
            raise
        if isinstance(cause, RankStopped):
            sys.exit(0)  # rank 0 reports (RankStopped says why this status)
        print_error(cause)
        sys.exit(2)


def run_without_lightning(argv: list[str]) -> bool:
    """Run ``a2i ARGV`` if it needs no Lightning (help, version, a tool); False otherwise.

    Help and version exit as argparse's do (status 0; 2 for help after no command at all). A
    tool's a2i errors (a wrong path, a bad config) end it with one line and exit status 2.
    """
    if not argv or argv[0] in HELP_FLAGS:
        command_parser().print_help()
        sys.exit(0 if argv else 2)
    if argv[0] == "--version":
        print(f"a2i {package_version()}")
        sys.exit(0)
    if argv[0] not in TOOLS:
        return False
    quiet_expected_messages(argv[0])
    with exit_on_a2i_errors():
        command = importlib.import_module(f"a2i.commands.{argv[0]}")
        command.main(resolve_config_arguments(argv[1:]))
    return True
