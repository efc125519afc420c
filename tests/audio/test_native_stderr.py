"""libmpg123's notes about a damaged MP3 never reach the console; other lines still do."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from a2i.audio.io import read_audio
from a2i.audio.native_stderr import libsndfile_quiet
from a2i.errors import AudioDecodeError


def test_mpg123_notes_are_dropped_and_other_lines_kept(tmp_path: Path, capfd) -> None:
    path = tmp_path / "random.mp3"
    path.write_bytes(np.random.default_rng(0).bytes(4096))  # mpg123 tries to resync, and says so
    with pytest.raises(AudioDecodeError, match="not an audio file"):
        read_audio(path, 16000)
    with libsndfile_quiet():
        os.write(2, b"Note: Illegal Audio-MPEG-Header 0x00000000 at offset 4092.\n")
        os.write(2, b"another thread's line\n")
    assert capfd.readouterr().err == "another thread's line\n"
