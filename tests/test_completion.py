"""Tab completion as the shell asks for it (argcomplete's protocol): the candidates of a line.

``eval "$(register-python-argcomplete a2i)"`` makes bash run ``a2i`` with the line in
``COMP_LINE``; the candidates come back in a file (``_ARGCOMPLETE_STDOUT_FILENAME``), separated
by vertical tabs, and nothing may reach the terminal.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from a2i.commands import LIGHTNING_COMMANDS, TOOLS


def complete(line: str, tmp_path: Path) -> tuple[list[str], set[str]]:
    """The candidates for the end of ``line`` and the modules the completion imported."""
    out = tmp_path / "candidates"
    env = {
        **os.environ,
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "COMP_TYPE": "9",  # a first Tab
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_SHELL": "bash",
        "_ARGCOMPLETE_SUPPRESS_SPACE": "1",  # (bash adds the space after a unique match)
        "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "a2i"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stderr.splitlines()
    noise = [text for text in lines if not text.startswith("import time:")]
    assert done.returncode == 0 and not done.stdout and not noise, done.stdout + done.stderr
    imported = {text.rpartition("|")[2].strip() for text in lines}
    return out.read_text().split("\v"), imported


def test_command_names_and_tool_options_without_lightning(tmp_path):
    candidates, imported = complete("a2i ", tmp_path)
    assert [*LIGHTNING_COMMANDS, *TOOLS] == [c for c in candidates if not c.startswith("-")]
    assert complete("a2i wor", tmp_path)[0] == ["world"]
    assert complete("a2i world --ov", tmp_path)[0] == ["--overwrite"]
    assert not imported & {"torch", "lightning"}


@pytest.mark.slow
def test_lightning_command_options_and_shipped_configs(tmp_path):
    assert complete("a2i fit --trainer.max_st", tmp_path)[0] == ["--trainer.max_steps"]
    candidates = complete("a2i predict --config tiny/sound2vision_gan_sh", tmp_path)[0]
    assert candidates == ["tiny/sound2vision_gan_shipped"]
