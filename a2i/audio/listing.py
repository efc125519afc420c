"""Find the audio files of a folder in an order that is the same on every machine."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from a2i.audio.formats import AUDIO_EXTENSIONS
from a2i.errors import DatasetNotFoundError

_AUDIO_SUFFIXES = frozenset(AUDIO_EXTENSIONS)


@dataclass(frozen=True)
class FolderListing:
    """The files under a folder, as relative POSIX paths, sorted.

    Attributes:
        audio: Files with a suffix FFmpeg or libsndfile reads (:data:`AUDIO_EXTENSIONS`): the
            inputs. Broken links and other non-regular files among them are kept, so reading
            them names the problem instead of skipping them unseen.
        not_audio: The other files: skipped, and named as skipped.
    """

    audio: list[str]
    not_audio: list[str]


def scan_audio_folder(audio_dir: str | Path) -> FolderListing:
    """The audio files under ``audio_dir`` (recursive), and the files skipped as not audio.

    Sorting the relative paths, not the OS listing order, makes keys and output order the same
    on every machine and filesystem.

    Raises:
        DatasetNotFoundError: The folder is missing, is a file, or holds no audio file.
    """
    root = Path(audio_dir)
    if not root.is_dir():
        problem = "is a file, not a folder" if root.exists() else "folder does not exist"
        raise DatasetNotFoundError(root, f"{problem}; pass a folder of audio files")
    audio, not_audio = [], []
    for path in root.rglob("*"):
        if path.is_dir():
            continue
        found = audio if path.suffix.lower() in _AUDIO_SUFFIXES else not_audio
        found.append(path.relative_to(root).as_posix())
    if not audio:
        raise DatasetNotFoundError(
            root,
            "no audio files in it (looked recursively for every suffix FFmpeg or libsndfile "
            f"reads; {describe_suffixes(not_audio) or 'it holds no file'})",
        )
    return FolderListing(sorted(audio), sorted(not_audio))


def list_audio_files(audio_dir: str | Path) -> list[str]:
    """:attr:`FolderListing.audio` of ``audio_dir`` (see :func:`scan_audio_folder`)."""
    return scan_audio_folder(audio_dir).audio


def describe_suffixes(names: list[str], adjective: str = "other") -> str:
    """``12 other files: .txt 10, .jpg 2`` (most common suffix first); empty for no names."""
    if not names:
        return ""
    counts = Counter(Path(name).suffix.lower() or "no suffix" for name in names)
    shown = ", ".join(f"{suffix} {count}" for suffix, count in counts.most_common())
    return f"{len(names)} {adjective} file{'s' if len(names) > 1 else ''}: {shown}"
