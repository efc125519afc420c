"""Serve the demo page: load and warm up the first models, listen, and clean up after.

``a2i serve`` parses its options into :func:`serving`'s arguments; from Python::

    entries, selected = offered_models([], "runs")
    with serving(entries, selected, port=7860) as app:
        app.block_thread()

The first model is loaded and warmed up before the page opens, so the first upload is as fast
as the next ones. Uploads, recordings and drawings are kept in a temporary folder of the
server's own, deleted when it stops. Listening beyond this machine without a login is allowed,
with a warning.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from a2i.errors import ConfigError
from a2i.serve.models import ModelEntry, ModelShelf, warm_up

if TYPE_CHECKING:
    import gradio as gr

MAX_FILE_SIZE = 200 << 20
"""Default upload limit: a 10-minute 48 kHz stereo wav (115 MB) or a few minutes of video fit."""


def resolve_device(device: str) -> str:
    """``device`` checked, with ``auto`` as cuda when there is one, else cpu.

    Raises:
        ConfigError: torch does not know the device, or it is CUDA and there is none here.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError as error:  # torch's message lists the device types it knows
        raise ConfigError(f"--device {device}: {error}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device is available here")
    return device


def launch(
    entries: list[ModelEntry],
    selected: list[str],
    *,
    device: str = "auto",
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: list[tuple[str, str]] | None = None,
    max_file_size: int = MAX_FILE_SIZE,
    share: bool = False,
) -> gr.Blocks:
    """Load and warm up the ``selected`` models, and serve the page (without blocking).

    Files the page stores go to gradio's temporary folder (``GRADIO_TEMP_DIR``): :func:`serving`
    gives it one of its own and deletes it.

    Raises:
        ConfigError: A model cannot be loaded, or the address cannot be served.
    """
    from a2i.serve.app import PAGE_CSS, build_app

    shelf = ModelShelf(entries, resolve_device(device))
    for label in selected:
        warm_up(shelf.pipeline(label))
    app = build_app(shelf, selected)
    try:
        app.launch(
            server_name=host,
            server_port=port,
            share=share,
            auth=auth or None,
            max_file_size=max_file_size,
            prevent_thread_lock=True,
            ssr_mode=False,
            quiet=True,
            css=PAGE_CSS,
        )
    except OSError as error:  # the port is taken, or the address is not this machine's
        raise ConfigError(f"cannot serve on {host}:{port}: {error}") from None
    models = f"{len(entries)} model{'s' * (len(entries) != 1)}"
    print(f"a2i serve: {models} on {address(host, app.server_port)} (Ctrl+C stops)", flush=True)
    if not auth and not is_loopback(host):
        print(
            f"a2i serve: warning: listening beyond this machine without a login: anyone who "
            f"reaches port {app.server_port} can use the demo (give --auth_file or --auth)",
            file=sys.stderr,
            flush=True,
        )
    return app


@contextmanager
def serving(entries: list[ModelEntry], selected: list[str], **options: Any) -> Iterator[gr.Blocks]:
    """:func:`launch` with a temporary folder of its own: closed and deleted when the block ends.

    Uploads, recordings and drawings live in that folder only while the server runs.
    """
    with temporary_uploads():
        app = launch(entries, selected, **options)
        try:
            yield app
        finally:
            app.close(verbose=False)


@contextmanager
def temporary_uploads() -> Iterator[str]:
    """A folder of its own for gradio's files (``GRADIO_TEMP_DIR``), deleted when the block ends."""
    folder = tempfile.mkdtemp(prefix="a2i-serve-")
    previous = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = folder  # read by gradio while it serves, not only at start
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = previous
        shutil.rmtree(folder, ignore_errors=True)


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
