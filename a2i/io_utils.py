"""Files a2i writes and files users give it; one writer per folder.

Every file a2i writes (images, audio, weights, manifests, reports, shards) goes through
:func:`atomic_write`: a killed run leaves either the old file or the new one, never half.
Temporary files are hidden and end in ``.tmp`` (``.<name>.<random>.tmp`` next to the target), so
a resumed run can find and delete what a killed one left behind (:func:`temp_target`).
:class:`FolderLock` keeps a second run out of a folder a first one is writing. Names of files a2i
did not make are shown through :func:`printable`.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import socket
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from a2i.errors import FolderInUseError, OutputExistsError

TEMP_GLOB = ".*.tmp"
"""Matches the temporary files :func:`atomic_write` creates (and a killed run may leave)."""
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{8}\.tmp")


def temp_target(path: Path) -> str | None:
    """The name of the file a temporary file of :func:`atomic_write` was to become, else None."""
    match = _TEMP_NAME.fullmatch(path.name)
    return match["target"] if match else None


def remove_file(path: Path) -> None:
    """Delete ``path`` if it is there.

    A path that is not there is no error, also on a read-only disk (where ``unlink`` of a
    missing file fails with EROFS, which would hide the error that stopped the writer).
    """
    if os.path.lexists(path):
        path.unlink()


@contextmanager
def atomic_write(
    path: str | Path,
    *,
    overwrite: bool = True,
    remedy: str = "pass overwrite=True to replace it",
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends, move it onto ``path``.

    The caller writes (and closes) the temporary file; it is then fsynced, given the mode the
    user's umask gives new files, and renamed over ``path`` with :func:`os.replace`, so readers
    see the old file or the whole new one. If the block raises, the temporary file is deleted and
    ``path`` is left untouched. The parent folder is created.

    The mode is set because some writers make their file private: ``safetensors`` writes through
    a temporary file of its own, created ``0600``, so an export would be unreadable by the group
    and others that the user's umask lets read every other file.

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
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        remove_file(tmp)


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``/proc``).

    Elsewhere it is set and restored at once: ``os.umask`` has no read-only form.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


Entry = TypeVar("Entry")


def keep_if_usable(
    entry: Entry, key: str, path: str, usable: list[Entry], unusable: list[tuple[str, str, str]]
) -> None:
    """Append ``entry`` to ``usable``, or ``(key, path, problem)`` to ``unusable``.

    A scan lists every entry of a dataset's index; one whose file is missing, empty or
    unreadable (:func:`file_problem`) is named with its reason instead of stopping the scan.
    """
    problem = file_problem(Path(path))
    if problem is None:
        usable.append(entry)
    else:
        unusable.append((key, path, problem))


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


class FolderLock:
    """An exclusive lock on a folder, held while one run writes into it.

    The lock is ``flock`` on ``<folder>/.a2i.lock``: the operating system drops it when the
    holder exits, however it ends, so a killed run never blocks the next one. The file holds the
    holder's process id, host and start time, so a refused run can say who is writing; that
    note is why this is not ``filelock`` (it truncates the lock file on every attempt). The
    holder deletes the file when it is done; an acquirer that locked a file deleted meanwhile
    locks the new one.

    Raises:
        FolderInUseError: On :meth:`acquire`, when another process holds the lock.
    """

    NAME = ".a2i.lock"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / self.NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock (without waiting), then write the holder's note."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 1024).decode(errors="replace").strip()
                os.close(fd)
                raise FolderInUseError(self.folder, holder) from None
            if self._still_named(fd):
                break
            os.close(fd)  # the holder deleted this file as it finished: lock the new one
        self._fd = fd
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        note = f"pid {os.getpid()} on {socket.gethostname()}, since {started}\n"
        os.ftruncate(fd, 0)
        os.write(fd, note.encode())

    def _still_named(self, fd: int) -> bool:
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            return False
        opened = os.fstat(fd)
        return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)

    def release(self) -> None:
        """Delete the lock file and let go (deleted first, so no one locks a stale file)."""
        if self._fd is None:
            return
        try:
            remove_file(self.path)
        finally:
            os.close(self._fd)
            self._fd = None
