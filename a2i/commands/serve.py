"""``a2i serve``: a local web demo (gradio) of trained runs and exported models.

With no ``--run``, it offers the runs of the newest ``make demo`` first (before any, the tiny GAN
whose weights ship with a2i), then every run and export found under ``--models_dir``. Models load
on first use; the first one is loaded and warmed up before the page opens, so the first upload is
as fast as the next ones.

Uploads, recordings and drawings are kept in a temporary folder of the server's own, deleted when
it stops (Ctrl+C or SIGTERM); uploads above ``--max_file_size`` are refused. Listening beyond this
machine (``--host 0.0.0.0``) without ``--auth``/``--auth_file`` is allowed, with a warning.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from a2i.errors import A2IError, ConfigError

if TYPE_CHECKING:
    import gradio as gr

    from a2i.serve.models import ModelEntry

HELP = "serve a local web demo: upload or record a sound, see the images the models draw"
SHIPPED_CONFIG = "tiny/sound2vision_gan_shipped"
"""The model served when there is no ``make demo`` run: every weight ships in ``a2i/assets``."""
SHIPPED_LABEL = "tiny GAN (shipped weights)"
SHIPPED_ORIGIN = "shipped weights"
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
MAX_FILE_SIZE = "200MB"
"""Default upload limit: a 10-minute 48 kHz stereo wav (115 MB) or a few minutes of video fit."""
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


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def address(host: str, port: int) -> str:
    """The URL the server listens on, saying so where that is every interface."""
    name = host.strip("[]")
    shown = f"[{name}]" if ":" in name else name
    url = f"http://{shown}:{port}/"
    if name in ("0.0.0.0", "::"):
        url += " (every network interface of this machine)"
    return url


def shipped_entry() -> ModelEntry:
    """The tiny GAN whose weights ship with a2i: something to draw with before any training."""
    from a2i.commands.config_paths import resolve_config
    from a2i.serve.models import ModelEntry, model_name

    config = Path(resolve_config(SHIPPED_CONFIG))
    return ModelEntry(SHIPPED_LABEL, config, "config", name=model_name(config, SHIPPED_ORIGIN))


def offered_models(runs: list[str], models_dir: str) -> tuple[list[ModelEntry], list[str]]:
    """``(entries, selected labels)``: the ``--run`` models (or the demo's) then the folder's.

    Without ``--run`` or a ``make demo`` run, the shipped tiny GAN is offered, so the page works
    right after installing.
    """
    from a2i.serve.models import entry_for, find_models, newest_demo_runs

    root = Path(models_dir)
    chosen = []
    for run in runs:
        entry = entry_for(Path(run), root)
        if entry is None:
            raise ConfigError(
                f"--run '{run}' is neither a training run (config.yaml + checkpoints/*.ckpt) nor "
                "an exported model (config.yaml + model.safetensors)"
            )
        chosen.append(entry)
    if not runs:
        demo = (entry_for(run, root) for run in newest_demo_runs())
        chosen = [entry for entry in demo if entry is not None] or [shipped_entry()]
    known = {entry.path.resolve() for entry in chosen}
    found = [e for e in find_models(root) if e.path.resolve() not in known]
    return chosen + found, [e.label for e in chosen]


def start(argv: list[str]) -> gr.Blocks:
    """Parse ``argv``, load and warm up the models shown first, and serve (without blocking).

    Files the page stores go to gradio's temporary folder (``GRADIO_TEMP_DIR``): :func:`serving`
    gives it one of its own and deletes it.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.share and any(os.environ.get(v, "") not in ("", "0") for v in OFFLINE_VARIABLES):
        parser.error(
            "--share opens a public tunnel through gradio.live, which needs the network, but "
            "this environment is offline (HF_HUB_OFFLINE is set); use --host 0.0.0.0 with --auth "
            "to reach the demo from your local network instead"
        )
    try:
        auth = logins(args.auth, args.auth_file)
    except ConfigError as error:
        parser.error(str(error))
    import torch

    from a2i.serve.app import PAGE_CSS, build_app
    from a2i.serve.models import ModelShelf, warm_up

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            parser.error(f"--device {device}: no CUDA device is available here")
    except RuntimeError as error:  # torch's message lists the device types it knows
        parser.error(f"--device {device}: {error}")
    try:
        entries, selected = offered_models(args.run, args.models_dir)
        shelf = ModelShelf(entries, device)
        for label in selected:
            warm_up(shelf.pipeline(label))
    except A2IError as error:
        parser.error(str(error))
    app = build_app(shelf, selected)
    try:
        app.launch(
            server_name=args.host,
            server_port=args.port,
            share=args.share,
            auth=auth or None,
            max_file_size=args.max_file_size,
            prevent_thread_lock=True,
            ssr_mode=False,
            quiet=True,
            css=PAGE_CSS,
        )
    except OSError as error:  # the port is taken, or the address is not this machine's
        parser.error(f"cannot serve on {args.host}:{args.port}: {error}")
    url = address(args.host, app.server_port)
    models = f"{len(entries)} model{'s' * (len(entries) != 1)}"
    print(f"a2i serve: {models} on {url} (Ctrl+C stops)", flush=True)
    if not auth and not is_loopback(args.host):
        print(
            f"a2i serve: warning: listening beyond this machine without a login: anyone who "
            f"reaches port {app.server_port} can use the demo (give --auth_file or --auth)",
            file=sys.stderr,
            flush=True,
        )
    return app


@contextmanager
def serving(argv: list[str]) -> Iterator[gr.Blocks]:
    """:func:`start` with a temporary folder of its own: closed and deleted when the block ends.

    Uploads, recordings and drawings live in that folder only while the server runs.
    """
    folder = tempfile.mkdtemp(prefix="a2i-serve-")
    previous = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = folder  # read by gradio while it serves, not only at start
    app = None
    try:
        app = start(argv)
        yield app
    finally:
        if app is not None:
            app.close(verbose=False)
        if previous is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = previous
        shutil.rmtree(folder, ignore_errors=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> None:
    """Entry point of ``a2i serve``: serve until interrupted (Ctrl+C or SIGTERM)."""
    signal.signal(signal.SIGTERM, _interrupt)  # as Ctrl+C: the uploads are deleted
    with suppress(KeyboardInterrupt), serving(argv) as app:  # even while starting
        app.block_thread()  # returns on Ctrl+C, after closing the server


if __name__ == "__main__":
    main(sys.argv[1:])
