"""Running the real ``a2i`` CLI in the test process, as a user's shell would see its status."""

import os
import subprocess
import sys
from pathlib import Path

from a2i.cli import main

ROOT = Path(__file__).resolve().parents[1]


def a2i_status(args: list[str]) -> int:
    """Run ``a2i ARGS`` here and return its exit status (0 when it returns without exiting)."""
    try:
        main(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def run_on_folder(
    command: str, run: Path, inputs: Path, out: Path, *extra: str, config: Path | None = None
) -> int:
    """``a2i COMMAND`` over the audio folder ``inputs`` with a trained run's last checkpoint."""
    return a2i_status(
        [
            command,
            "--config",
            str(config or run / "config.yaml"),
            "--ckpt_path",
            str(run / "checkpoints" / "last.ckpt"),
            "--audio_dir",
            str(inputs),
            "--output_dir",
            str(out),
            *extra,
        ]
    )


def a2i_process(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m a2i ARGS`` as a child process (ranks relaunch it), offline, this tree's a2i."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "a2i", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
