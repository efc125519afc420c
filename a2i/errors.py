"""Exceptions raised for user-facing problems (bad files, missing checkpoints, missing data).

Every error names the offending file or config field and says how to fix it, so that a user
reading one line of a traceback knows what to do.
"""

from __future__ import annotations

from pathlib import Path


class A2IError(Exception):
    """Base class of every error a2i raises for user input."""


class AudioDecodeError(A2IError, ValueError):
    """An audio file could not be read: it is empty, truncated, not audio, or holds NaN/inf."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read audio file '{self.path}': {reason}")


class ImageDecodeError(A2IError, ValueError):
    """An image file could not be read."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image file '{self.path}': {reason}")


class CheckpointNotFoundError(A2IError, FileNotFoundError):
    """A published checkpoint was asked for but is not available offline.

    a2i never falls back to random weights silently: a missing checkpoint stops the run with
    the checkpoint's name, the config field that asked for it, and how to provide it.
    """

    def __init__(
        self,
        checkpoint: str,
        field: str,
        *,
        library: str,
        download: str | None = None,
        cause: str | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.field = field
        how = download or f"download '{checkpoint}' on a connected machine"
        message = (
            f"checkpoint '{checkpoint}' (asked for by config field '{field}', loaded through "
            f"{library}) is not available offline. To provide it: {how}; then either point "
            f"'{field}' at the local directory or file, or copy it into the cache directory "
            "($HF_HOME / $TORCH_HOME / $A2I_CACHE, see docs/checkpoints.md). "
            f"To train without it, choose an architecture preset such as 'tiny' instead."
        )
        if cause:
            message += f" (underlying error: {cause})"
        super().__init__(message)


class DatasetNotFoundError(A2IError, FileNotFoundError):
    """A dataset root or manifest is missing."""

    def __init__(self, root: str | Path, remedy: str) -> None:
        self.root = str(root)
        super().__init__(f"dataset not found at '{self.root}': {remedy}")


class ManifestError(A2IError, ValueError):
    """A manifest, split, clip-list or classes file is malformed, or lists unusable files."""


class OutputExistsError(A2IError, FileExistsError):
    """An output file exists and replacing it was not asked for (a2i never overwrites silently)."""

    def __init__(self, paths: str | Path | list[str | Path], remedy: str) -> None:
        self.paths = [str(p) for p in paths] if isinstance(paths, list) else [str(paths)]
        shown = f"'{self.paths[0]}' exists" if len(self.paths) == 1 else f"{self.paths} exist"
        super().__init__(f"{shown}; {remedy}")


class ConfigError(A2IError, ValueError):
    """A combination of config values cannot work (the message names the fields)."""


class WeightsFileError(A2IError, ValueError):
    """A weights or checkpoint file exists but is not one a2i reads: tensors only, never code."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = str(path)
        super().__init__(message)


class FolderInUseError(A2IError):
    """Another run is writing into the folder (two runs would duplicate and clobber outputs)."""

    def __init__(self, folder: str | Path, holder: str) -> None:
        self.folder = str(folder)
        self.holder = holder
        who = f"({holder})" if holder else "(it has not written its process id yet)"
        super().__init__(
            f"'{self.folder}' is in use by another a2i run {who}; wait for it to finish, or "
            "write somewhere else"
        )


class OutputWriteError(A2IError, OSError):
    """The file system refused an output: disk full, read-only, permission denied.

    One line naming the file and the system's reason; the writer has removed what it had
    written of the batch in flight, so the folder holds only finished work.
    """

    def __init__(self, path: str | Path, error: OSError, after: str = "") -> None:
        self.path = str(path)
        reason = error.strerror or str(error)
        super().__init__(f"cannot write '{self.path}': {reason}{after}")


class RankFailedError(A2IError):
    """Another process of a distributed job stopped on an error; rank 0 reports it for the job."""

    def __init__(self, rank: int, reason: str) -> None:
        self.rank = rank
        self.reason = reason
        super().__init__(f"rank {rank}: {reason}")


class RankStopped(A2IError):
    """This rank stops because another one failed; rank 0 says why, so this one says nothing.

    Commands end such a rank with exit status 0: Lightning's local launcher kills the whole job
    (rank 0 included, before it reports) when a rank it started exits with another status, and
    rank 0's status is the job's.
    """

    def __init__(self) -> None:
        super().__init__("stopped: another rank of this job failed (rank 0 reports why)")
