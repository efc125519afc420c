"""Keep a decoder library's own complaints off the console: a2i names the file and the reason.

libsndfile decodes MP3 with a bundled libmpg123, which writes notes about damaged streams ("Note:
Illegal Audio-MPEG-Header …", "Giving up searching valid MPEG header …") straight to file
descriptor 2. Neither libsndfile nor soundfile exposes mpg123's verbosity (its decoder handle is
internal to libsndfile), and PyAV's ``av.logging.set_level`` governs FFmpeg only (whose logging
PyAV leaves off), so the descriptor itself is redirected around libsndfile's calls: what is
written meanwhile goes to a temporary file, and every line that is not mpg123's is written back
to stderr afterwards (another thread's message is delayed, never lost).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

MPG123_LINES = re.compile(rb"(?:Note: |Warning: |\[src/libmpg123/)")
"""How libmpg123's messages start (its ``note``/``warning`` prints and its located errors)."""

_REDIRECTING = threading.Lock()
"""One redirection at a time: descriptor 2 is shared by the whole process."""


@contextmanager
def libsndfile_quiet() -> Iterator[None]:
    """Run the block with libmpg123's lines on descriptor 2 dropped and any other line kept."""
    with _REDIRECTING, tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        try:
            saved: int | None = os.dup(2)
        except OSError:  # no descriptor 2 (a daemon): nothing reaches a console anyway
            saved = None
        if saved is None:
            yield
            return
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = b"".join(line for line in captured if not MPG123_LINES.match(line))
            if kept:
                with open(2, "wb", closefd=False) as stderr:
                    stderr.write(kept)
