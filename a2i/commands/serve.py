"""``a2i serve``: a local web demo (gradio) of trained runs and exported models.

With no ``--run``, it offers the runs of the newest ``make demo`` first (before any, the tiny GAN
whose weights ship with a2i), then every run and export found under ``--models_dir``
(:func:`~a2i.serve.models.offered_models`); :mod:`a2i.serve.server` serves them. Uploads above
``--max_file_size`` are refused; listening beyond this machine (``--host 0.0.0.0``) without
``--auth``/``--auth_file`` is allowed, with a warning.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from a2i.errors import A2IError, ConfigError

if TYPE_CHECKING:
    import gradio as gr

HELP = "serve a local web demo: upload or record a sound, see the images the models draw"
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
MAX_FILE_SIZE = "200MB"
"""Default upload limit (:data:`a2i.serve.server.MAX_FILE_SIZE`)."""
FILE_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|mb|gb)?\s*$", re.IGNORECASE)
UNITS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``a2i serve``."""
    parser = argparse.ArgumentParser(prog="a2i serve", description=HELP, allow_abbrev=False)
    parser.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="DIR",
        help="a training run folder (config.yaml + checkpoints/), a .ckpt in one, or an exported "
        "folder (save_pretrained); repeat for several. Default: the newest `make demo` runs, or "
        "before any, the tiny GAN whose weights ship with a2i",
    )
    parser.add_argument(
        "--models_dir",
        default="runs",
        metavar="DIR",
        help="also offer every run and export found under this folder (default: runs)",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: this machine only; 0.0.0.0: every network it is "
        "on, which warns unless --auth or --auth_file is given)",
    )
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument(
        "--auth",
        action="append",
        default=[],
        metavar="USER:PASSWORD",
        help="ask for this login before the page opens; repeat for several users (others on "
        "this machine can read a command line: prefer --auth_file)",
    )
    parser.add_argument(
        "--auth_file",
        type=Path,
        metavar="FILE",
        help="ask for one of the logins in FILE, one USER:PASSWORD per line (blank lines and "
        "lines starting with # are skipped)",
    )
    parser.add_argument(
        "--max_file_size",
        type=file_size,
        default=MAX_FILE_SIZE,
        metavar="SIZE",
        help=f"refuse larger uploads, e.g. 50MB, 1GB (default: {MAX_FILE_SIZE})",
    )
    parser.add_argument(
        "--device", default="auto", help="where the models run: auto (cuda if any), cpu, cuda:0…"
    )
    parser.add_argument(
        "--share",
        action="store_true",
        help="a public gradio.live link (needs the network: refused when HF_HUB_OFFLINE is set)",
    )
    return parser


def file_size(text: str) -> int:
    """Bytes in ``text``: a number with an optional unit b, kb, mb or gb (powers of 1024)."""
    size = FILE_SIZE.match(text)
    if size is None or int(size[1]) == 0:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a size: a positive number with an optional unit b, kb, mb or gb "
            "(e.g. 200MB)"
        )
    return int(size[1]) * UNITS[(size[2] or "b").lower()]


def logins(pairs: list[str], auth_file: Path | None) -> list[tuple[str, str]]:
    """``(user, password)`` of each ``--auth`` and each line of ``--auth_file``.

    Raises:
        ConfigError: A login without ``:``, an empty user or password, or an unreadable file
            (the line is named by its number: it holds a password).
    """
    named = [(f"--auth #{number}", pair) for number, pair in enumerate(pairs, 1)]
    if auth_file is not None:
        try:
            lines = auth_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"--auth_file {auth_file}: cannot read it ({error})") from None
        named += [
            (f"{auth_file}:{number}", line.strip())
            for number, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
        if not named:
            raise ConfigError(f"--auth_file {auth_file}: no USER:PASSWORD line in it")
    found = []
    for where, pair in named:
        user, colon, password = pair.partition(":")
        if not (colon and user and password):
            raise ConfigError(f"{where}: expected USER:PASSWORD with neither empty")
        found.append((user, password))
    return found


def parse(argv: list[str]) -> tuple[argparse.ArgumentParser, dict[str, Any]]:
    """The parser and :func:`a2i.serve.server.launch`'s arguments ``argv`` asks for.

    A mistake ends the command with the parser's one-line error (exit status 2).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.share and any(os.environ.get(v, "") not in ("", "0") for v in OFFLINE_VARIABLES):
        parser.error(
            "--share opens a public tunnel through gradio.live, which needs the network, but "
            "this environment is offline (HF_HUB_OFFLINE is set); use --host 0.0.0.0 with --auth "
            "to reach the demo from your local network instead"
        )
    from a2i.serve.models import offered_models
    from a2i.serve.server import resolve_device

    try:
        auth = logins(args.auth, args.auth_file)
        device = resolve_device(args.device)
        entries, selected = offered_models(args.run, args.models_dir)
    except ConfigError as error:
        parser.error(str(error))
    return parser, dict(
        entries=entries,
        selected=selected,
        device=device,
        auth=auth,
        host=args.host,
        port=args.port,
        share=args.share,
        max_file_size=args.max_file_size,
    )


@contextmanager
def serving(argv: list[str]) -> Iterator[gr.Blocks]:
    """Parse ``argv``, load and warm up the models shown first, and serve until the block ends.

    :func:`a2i.serve.server.serving`: uploads live in a temporary folder of the server's own.
    """
    parser, options = parse(argv)  # (first: ``--help`` imports no torch)
    from a2i.serve.server import serving as serve

    with ExitStack() as stack:
        try:
            app = stack.enter_context(serve(**options))
        except A2IError as error:
            parser.error(str(error))
        yield app


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> None:
    """Entry point of ``a2i serve``: serve until interrupted (Ctrl+C or SIGTERM)."""
    signal.signal(signal.SIGTERM, _interrupt)  # as Ctrl+C: the uploads are deleted
    with suppress(KeyboardInterrupt), serving(argv) as app:  # even while starting
        app.block_thread()  # returns on Ctrl+C, after closing the server


if __name__ == "__main__":
    main(sys.argv[1:])
