"""Find the audio files of a folder in an order that is the same on every machine."""

from __future__ import annotations

from pathlib import Path

from a2i.audio.io import AUDIO_EXTENSIONS
from a2i.errors import DatasetNotFoundError


def list_audio_files(audio_dir: str | Path) -> list[str]:
    """Relative POSIX paths of the audio files under ``audio_dir`` (recursive), sorted.

    Sorting the relative paths, not the OS listing order, makes keys and output order the same
    on every machine and filesystem.

    Raises:
        DatasetNotFoundError: The folder is missing, is a file, or holds no audio file.
    """
    root = Path(audio_dir)
    if not root.is_dir():
        problem = "is a file, not a folder" if root.exists() else "folder does not exist"
        raise DatasetNotFoundError(root, f"{problem}; pass a folder of audio files")
    files = sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file()
    )
    if not files:
        raise DatasetNotFoundError(
            root, f"no audio files in it (looked recursively for {', '.join(AUDIO_EXTENSIONS)})"
        )
    return files
