"""Files a2i writes and files users give it.

Every file a2i writes (images, audio, weights, manifests, reports, shards) goes through
:func:`atomic_write`: a killed run leaves either the old file or the new one, never half.
Temporary files are hidden and end in ``.tmp`` (``.<name>.<random>.tmp`` next to the target),
so a resumed run can find and delete what a killed one left behind. Names of files a2i did not
make are shown through :func:`printable`.
"""

from __future__ import annotations

import os
import secrets
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from a2i.errors import OutputExistsError

TEMP_GLOB = ".*.tmp"
"""Matches the temporary files :func:`atomic_write` creates (and a killed run may leave)."""


@contextmanager
def atomic_write(
    path: str | Path,
    *,
    overwrite: bool = True,
    remedy: str = "pass overwrite=True to replace it",
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends, move it onto ``path``.

    The caller writes (and closes) the temporary file; it is then fsynced and renamed over
    ``path`` with :func:`os.replace`, so readers see the old file or the whole new one. If the
    block raises, the temporary file is deleted and ``path`` is left untouched. The parent folder
    is created.

    Args:
        path: The file to write.
        overwrite: Replace an existing ``path``; False raises :class:`OutputExistsError`
            before anything is written.
        remedy: How to allow the overwrite, shown in that error.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise OutputExistsError(path, remedy)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:  # the writer closed it; flush its data to disk
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` through :func:`atomic_write`, so readers never see half a file."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used (cheap checks only: decoding happens at load time)."""
    if path.is_symlink() and not path.exists():
        return "broken link"
    if not path.exists():
        return "missing"
    if not path.is_file():
        return "not a regular file"
    if path.stat().st_size == 0:
        return "empty (0 bytes)"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def printable(text: object) -> str:
    r"""``text`` as a console may show it: control and format characters escaped (``\x1b``).

    A file name can hold terminal escape codes (which hide the lines before them or retitle
    the terminal), newlines (a fake line of output) or bidirectional overrides (text shown in
    another order than it is): every line a2i prints about inputs goes through here.
    """
    return "".join(
        char if unicodedata.category(char) not in _HIDDEN_CATEGORIES else _escape(char)
        for char in str(text)
    )


_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
"""Unicode categories a console acts on instead of showing (controls, formats, line breaks), and
the surrogates Python decodes a name's undecodable bytes to (printing them raises)."""


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
