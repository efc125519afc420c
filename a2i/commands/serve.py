"""``a2i serve``: a local web demo (gradio) of trained runs and exported models.

With no ``--run``, it offers the runs of the newest ``make demo`` first (before any, the tiny GAN
whose weights ship with a2i), then every run and export found under ``--models_dir``. Models load
on first use; the first one is loaded and warmed up before the page opens, so the first upload is
as fast as the next ones.
"""

from __future__ import annotations

import argparse
import os
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
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``a2i serve``."""
    parser = argparse.ArgumentParser(prog="a2i serve", description=HELP)
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
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument(
        "--device", default="auto", help="where the models run: auto (cuda if any), cpu, cuda:0…"
    )
    parser.add_argument(
        "--share",
        action="store_true",
        help="a public gradio.live link (needs the network: refused when HF_HUB_OFFLINE is set)",
    )
    return parser


def shipped_entry() -> ModelEntry:
    """The tiny GAN whose weights ship with a2i: something to draw with before any training."""
    from a2i.commands.config_paths import resolve_config
    from a2i.serve.models import ModelEntry

    return ModelEntry(SHIPPED_LABEL, Path(resolve_config(SHIPPED_CONFIG)), kind="config")


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
    """Parse ``argv``, load and warm up the models shown first, and serve (without blocking)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.share and any(os.environ.get(v, "") not in ("", "0") for v in OFFLINE_VARIABLES):
        parser.error(
            "--share opens a public tunnel through gradio.live, which needs the network, but "
            "this environment is offline (HF_HUB_OFFLINE is set); use --host 0.0.0.0 to reach the "
            "demo from your local network instead"
        )
    import torch

    from a2i.serve.app import build_app
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
            prevent_thread_lock=True,
            ssr_mode=False,
            quiet=True,
        )
    except OSError as error:  # the port is taken, or the address is not this machine's
        parser.error(f"cannot serve on {args.host}:{args.port}: {error}")
    print(f"a2i serve: {len(entries)} models on {app.local_url} (Ctrl+C stops)", flush=True)
    return app


def main(argv: list[str]) -> None:
    """Entry point of ``a2i serve``: serve until interrupted."""
    start(argv).block_thread()  # returns on Ctrl+C, after closing the server


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
