"""What to type next: the commands that use a finished run, spelled so they run as printed.

``make install`` puts ``a2i`` in ``.venv/bin``, which is on ``PATH`` only once the environment
is activated; a printed ``a2i test …`` would then answer "command not found".
:func:`executable` spells a console script the way this machine runs it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path


def shown_path(path: str | Path) -> str:
    """``path`` relative to the working folder when inside it (shorter to read and type)."""
    absolute = Path(path).absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def executable(name: str, module: str) -> str:
    """How to run the console script ``name`` of this Python's environment.

    ``name`` when the one on ``PATH`` is this environment's; else its path (``.venv/bin/a2i``);
    else ``python -m module`` with this interpreter (a source tree that was never installed).
    """
    beside = Path(sys.executable).parent / name
    found = shutil.which(name)
    if beside.is_file():
        if found is not None and os.path.samefile(found, beside):
            return name
        return shlex.quote(shown_path(beside))
    python = shutil.which("python")
    same = python is not None and Path(python).absolute() == Path(sys.executable).absolute()
    interpreter = "python" if same else shlex.quote(shown_path(sys.executable))
    return f"{interpreter} -m {module}"


def command(*words: str | Path) -> str:
    """One ``a2i`` command line, quoted for a POSIX shell."""
    return " ".join(
        [
            executable("a2i", "a2i"),
            *(shlex.quote(shown_path(w) if isinstance(w, Path) else w) for w in words),
        ]
    )


WORLD_EVALUATION = "eval/world"
"""The shipped config that adds the full evaluation report to ``a2i test`` on a world run."""


def test_command(config: Path, checkpoint: Path, evaluation: str | None = None) -> str:
    """``a2i test`` of a run's checkpoint, with the ``evaluation`` config's report if given."""
    report = () if evaluation is None else ("--config", evaluation)
    return command("test", "--config", config, *report, "--ckpt_path", checkpoint)


def run_commands(
    run_dir: Path,
    checkpoint: Path,
    sounds: str | Path = "SOUNDS_DIR",
    evaluation: str | None = None,
) -> list[str]:
    """Test (with the ``evaluation`` config), predict with and serve a trained run; its curves."""
    config = run_dir / "config.yaml"
    audio_dir = sounds if isinstance(sounds, Path) else str(sounds)
    return [
        test_command(config, checkpoint, evaluation),
        command(
            "predict",
            "--config",
            config,
            "--ckpt_path",
            checkpoint,
            "--audio_dir",
            audio_dir,
            "--output_dir",
            run_dir / "predictions",
        ),
        command("serve", "--run", run_dir),
        f"{executable('tensorboard', 'tensorboard.main')} --logdir {shlex.quote(shown_path(run_dir))}",
    ]
