"""Write generated images to a folder: one PNG per input (and seed), a contact sheet, a manifest.

What a user of ``a2i predict`` can rely on:

- **One output per input.** ``sub/bell.wav`` → ``sub/bell.wav.png`` (``.seedN.png`` with several
  seeds): the input's extension stays in the name, so ``bell.wav`` and ``bell.flac`` never share
  an image. Sub-folders are mirrored.
- **The manifest says how every image was made.** ``manifest.jsonl`` starts with the request
  (checkpoint, model config, controls); then one line per (input, seed) is appended as soon as the
  image is on disk (each line one ``write``, flushed and fsynced).
- **A kill at any instant loses at most the batch in flight.** Before a batch's images are
  written, a ``{"type": "writing", "outputs": [...]}`` line names them, so a rerun knows that
  images without their rows are this request's and redoes them; a last line cut short is cut
  off, and temporary files of a killed run are deleted. A row never names an image that is not
  on disk.
- **Reruns resume, never pass old images off as new.** With the same request, inputs already done
  are skipped before anything is computed (failed ones are tried again, and recorded again only
  if they fail differently); with another request the folder is refused (unless ``overwrite``),
  naming what differs. An image file the manifest does not name is never replaced.
- **One run at a time.** The folder is locked (:class:`~a2i.io_utils.FolderLock`) while a
  writer is open: a second run is refused, naming the process that writes.
- **One manifest, however many processes.** In a run of several ranks (:class:`~a2i.runtime.Ranks`)
  rank 0 holds the lock and appends to the manifest; rank ``R`` appends to its own
  ``manifest.rankR.jsonl`` by the same rules, and rank 0 merges those parts into the manifest when
  every rank is done. A killed run's parts are merged by the next run before it reads the
  manifest, so a rerun resumes with any number of ranks.
- **The file system's refusals are one line.** A full disk, a read-only folder or a denied
  permission stops the run with :class:`~a2i.errors.OutputWriteError`, naming the file; the
  batch in flight is removed, finished batches stay, and a rerun resumes.

The same rules serve every per-input output: :class:`FolderWriter` keeps the manifest and the
resume logic, a subclass names and saves the files (:class:`ImageFolderWriter` here, the ``.npy``
embeddings of ``a2i embed`` in :mod:`a2i.pipelines.embedding`).
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from a2i.errors import A2IError, ConfigError, OutputWriteError
from a2i.image import image_grid, read_image, to_uint8, write_png
from a2i.io_utils import FolderLock, atomic_write, remove_file, temp_target
from a2i.runtime import ONE_PROCESS, Ranks

MANIFEST = "manifest.jsonl"
PARTS = "manifest.rank*.jsonl"
"""The manifest parts of ranks other than 0 (merged into the manifest by rank 0)."""
GRID = "grid.png"
WRITING = "writing"
"""Type of the manifest line that names a batch's outputs before they are written."""


def image_name(key: str, seed: int, num_seeds: int) -> str:
    """Relative output path of input ``key`` (its relative path) for ``seed``."""
    return f"{key}.seed{seed}.png" if num_seeds > 1 else f"{key}.png"


def part_name(rank: int) -> str:
    """The manifest part rank ``rank`` (> 0) appends to."""
    return PARTS.replace("*", str(rank))


def read_records(output_dir: str | Path) -> list[dict[str, Any]]:
    """Every whole line of a folder's manifest (a last line cut short by a kill is left out)."""
    return read_lines(Path(output_dir) / MANIFEST)


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Every whole JSON line of ``path`` (none if it does not exist)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def read_manifest(output_dir: str | Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The request and the image rows of a prediction folder's manifest (empty if none)."""
    request, rows = None, []
    for record in read_records(output_dir):
        if record.get("type") == "request":
            request = record["settings"]
        elif "type" not in record:
            rows.append(record)
    return request, rows


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``name old → new`` for every setting that differs."""
    names = sorted(set(old) | set(new))
    return ", ".join(
        f"{name} {old.get(name)!r} → {new.get(name)!r}"
        for name in names
        if old.get(name) != new.get(name)
    )


def row_identity(row: dict[str, Any]) -> str:
    """A row as text, to tell whether the manifest already holds it."""
    return json.dumps(row, sort_keys=True)


class FolderWriter(ABC):
    """Turn one request's outputs into files, one per input and seed (see module docstring).

    A context manager: the folder is locked from construction until :meth:`release` (or the
    end of the ``with`` block). Subclasses name and save the files (:meth:`output_name`,
    :meth:`save_output`, :attr:`suffix`) and say what the folder holds (:attr:`noun`).

    With several ranks every rank constructs one (rank 0 first: it takes the lock and the
    manifest up, then the others read it), writes its share of the inputs and calls
    :meth:`close`.

    Args:
        output_dir: Destination folder.
        settings: The request: what made the outputs (recorded, and compared on reruns). Its
            ``seeds`` list gives one output per seed; without it, one output per input.
        overwrite: Replace a folder made with other settings, and existing output files.
        ranks: The processes that write into the folder together (default: this one).

    Raises:
        ConfigError: ``output_dir`` is a file, or holds outputs made with other settings.
        FolderInUseError: Another run is writing into ``output_dir``.
        OutputWriteError: The file system refuses to create the folder or its manifest.
        RankStopped: (ranks other than 0) rank 0 raised one of the above.
    """

    noun = "outputs"
    suffix = ""
    """How the names of the output files end (their stale temporary files are deleted)."""

    def __init__(
        self,
        output_dir: str | Path,
        settings: dict[str, Any],
        overwrite: bool = False,
        ranks: Ranks = ONE_PROCESS,
    ) -> None:
        self.output_dir = Path(output_dir)
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise ConfigError(f"--output_dir '{self.output_dir}' is a file, not a folder")
        self.settings = json.loads(json.dumps(settings))  # as it will read back from JSON
        self.overwrite = overwrite
        self.seeds: list[int | None] = list(self.settings.get("seeds") or [None])
        self.num_seeds = len(self.seeds)
        self.rows: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.done: set[str] = set()
        self.owned: set[str] = set()
        self.recorded: set[str] = set()
        self.skipped = 0
        self.written = 0
        self.manifest_path = self.output_dir / MANIFEST
        self.ranks = ranks
        self.log_path = self.manifest_path
        """Where this rank appends its lines: the manifest, or (ranks > 0) its part."""
        if not ranks.is_main:
            self.log_path = self.output_dir / part_name(ranks.rank)
        self.lock = FolderLock(self.output_dir)
        error = None
        if ranks.is_main:
            try:
                self._open()
            except A2IError as refused:
                error = refused
        ranks.agree(error)
        if not ranks.is_main:
            try:
                with self._refusals(self.output_dir):
                    self._resume(read_records(self.output_dir))
            except A2IError as refused:
                error = refused
        try:
            ranks.agree(error)
        except BaseException:
            self.release()
            raise

    def _open(self) -> None:
        """Lock the folder and take its manifest up (rank 0)."""
        with self._refusals(self.output_dir):
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self.lock.acquire()
        try:
            with self._refusals(self.output_dir):
                self._start()
        except BaseException:
            self.release()
            raise

    @abstractmethod
    def output_name(self, key: str, seed: int | None) -> str:
        """Relative path of the output of input ``key`` for ``seed`` (None: no seeds)."""

    @abstractmethod
    def save_output(self, path: Path, output: Tensor) -> None:
        """Write one output to ``path`` (a temporary file the writer then moves into place)."""

    def __enter__(self) -> FolderWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def release(self) -> None:
        """Unlock the folder (the writer writes nothing more)."""
        self.lock.release()

    @contextmanager
    def _refusals(self, path: Path) -> Iterator[None]:
        """Turn the file system's refusal of ``path`` into one :class:`OutputWriteError` line."""
        try:
            yield
        except A2IError:
            raise
        except OSError as error:
            after = (
                f" (the run stopped; {self.written} {self.noun} written, finished work is kept: "
                "fix this and rerun the same command to resume)"
                if self.written
                else ""
            )
            raise OutputWriteError(path, error, after) from error

    def _start(self) -> None:
        """Resume a manifest of the same request, or start one (refusing another request's)."""
        self._remove_stale_temps()
        if self.manifest_path.exists():
            self._cut_torn_line()
            self._merge_parts()
        previous = None
        records = read_records(self.output_dir)
        for record in records:
            if record.get("type") == "request":
                previous = record["settings"]
        if previous is not None and previous != self.settings and not self.overwrite:
            raise ConfigError(
                f"--output_dir '{self.output_dir}' holds {self.noun} made with other settings "
                f"({describe_changes(previous, self.settings)}); choose another --output_dir, "
                "or pass --overwrite true to replace them"
            )
        if previous == self.settings:
            self._resume(records)
            return
        record = json.dumps({"type": "request", "settings": self.settings}) + "\n"
        with atomic_write(self.manifest_path) as tmp:
            tmp.write_text(record, encoding="utf-8")

    def _remove_stale_temps(self) -> None:
        """Delete the temporary files a killed writer left (none is in use: the folder is locked)."""
        for path in self.output_dir.rglob(".*.tmp"):
            target = temp_target(path)
            if target is not None and (target == MANIFEST or target.endswith(self.suffix)):
                remove_file(path)

    def _resume(self, records: list[dict[str, Any]]) -> None:
        """Take up this request's manifest: what is done, which files are this request's."""
        per_input: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            if record.get("type") == WRITING:
                self.owned.update(record["outputs"])
            elif "type" not in record:
                per_input.setdefault(record["input"], []).append(record)
                self.recorded.add(row_identity(record))
                if record["status"] == "ok":
                    self.owned.add(record["output"])
        self.done = {
            key
            for key, found in per_input.items()
            if len({r.get("seed") for r in found if r["status"] == "ok"}) == self.num_seeds
            and all((self.output_dir / r["output"]).exists() for r in found)
        }
        self.rows = [row for key, found in per_input.items() if key in self.done for row in found]

    def _merge_parts(self) -> None:
        """Append the other ranks' manifest parts to the manifest, then delete them.

        Lines the manifest holds already are not appended again: a merge cut short between the
        append and the deletion is redone by the next one without duplicating rows.
        """
        parts = sorted(self.output_dir.glob(PARTS))
        if not parts:
            return
        known = {row_identity(record) for record in read_records(self.output_dir)}
        for part in parts:
            records = [r for r in read_lines(part) if row_identity(r) not in known]
            known.update(row_identity(record) for record in records)
            self._append("".join(json.dumps(record) + "\n" for record in records))
            remove_file(part)

    def _cut_torn_line(self) -> None:
        """Cut off a last line a kill left unfinished, so the next row starts on a line of its own."""
        with open(self.manifest_path, "rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)
                os.fsync(handle.fileno())

    def pending(self, keys: Sequence[str]) -> list[str]:
        """The inputs still to compute (those done by an earlier run of this request are counted)."""
        todo = [key for key in keys if key not in self.done]
        self.skipped += len(keys) - len(todo)
        return todo

    def write(
        self,
        keys: Sequence[str],
        outputs: Sequence[Tensor | None],
        errors: Sequence[str],
        details: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """Write one batch: ``outputs[i]`` holds one output per seed for input ``keys[i]``.

        For images that is ``(S, 3, H, W)``; None marks an input that failed. ``details[i]``
        (e.g. the input's duration) is recorded on each of its rows. The order makes a kill at
        any instant safe: a ``writing`` line names the files, the files are written (each
        atomically), then their rows are appended.

        Raises:
            OutputWriteError: The file system refused a file; this batch's files are removed.
        """
        details = details or [{} for _ in keys]
        rows: list[dict[str, Any]] = []
        files: list[tuple[Path, Tensor]] = []
        for key, drawn, error, extra in zip(keys, outputs, errors, details, strict=True):
            for index, seed in enumerate(self.seeds):
                name = self.output_name(key, seed)
                row: dict[str, Any] = {"input": key, "output": name}
                if seed is not None:
                    row["seed"] = seed
                row.update(status="ok", error="", **extra)
                path = self.output_dir / name
                if error or drawn is None:
                    row.update(output="", status="failed", error=error or "no output")
                elif path.exists() and not self.overwrite and name not in self.owned:
                    row.update(
                        output="",
                        status="failed",
                        error=f"{path} exists and this run did not write it; move it or "
                        "pass --overwrite true",
                    )
                else:
                    files.append((path, drawn[index]))
                rows.append(row)
        self._write_files(files, rows)
        for row in rows:
            if row["status"] == "failed":
                self.failures.append(row)
            else:
                self.rows.append(row)
        self.written += len(files)

    def _write_files(self, files: list[tuple[Path, Tensor]], rows: list[dict[str, Any]]) -> None:
        """Name ``files`` in the manifest, write them, then append ``rows`` (see :meth:`write`)."""
        names = [path.relative_to(self.output_dir).as_posix() for path, _ in files]
        new_rows = [row for row in rows if row_identity(row) not in self.recorded]
        finished: list[Path] = []
        try:
            if names:
                with self._refusals(self.log_path):
                    self._append(json.dumps({"type": WRITING, "outputs": names}) + "\n")
                self.owned.update(names)
            for path, output in files:
                with self._refusals(path), atomic_write(path) as tmp:
                    self.save_output(tmp, output)
                finished.append(path)
            with self._refusals(self.log_path):
                self._append("".join(json.dumps(row) + "\n" for row in new_rows))
        except BaseException:
            for path in finished:  # the batch in flight is lost whole, never half-recorded
                remove_file(path)
            raise
        self.recorded.update(row_identity(row) for row in new_rows)

    def _append(self, text: str) -> None:
        """Append whole lines and fsync; on an error, cut the manifest back to where it ended."""
        if not text:
            return
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            end = os.fstat(fd).st_size
            try:
                data = memoryview(text.encode())
                while data:
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, end)
                raise
        finally:
            os.close(fd)

    def close(self) -> None:
        """Once every rank has written its batches: merge the ranks' parts, finish the folder.

        Every rank calls it (it waits for all); rank 0 merges and calls :meth:`finish`.
        """
        written = sum(self.ranks.gather(self.written))
        if not self.ranks.is_main:
            return
        if self.ranks.distributed:
            with self._refusals(self.manifest_path):
                self._merge_parts()
            self._resume(read_records(self.output_dir))  # every rank's rows
        self.finish(written)

    def finish(self, written: int) -> None:  # noqa: B027 (an optional hook: the image grid)
        """Finish the folder (rank 0), after every rank wrote ``written`` outputs in all."""


class ImageFolderWriter(FolderWriter):
    """Generated images as PNGs, plus a contact sheet of the request (see module docstring).

    Args:
        output_dir: Destination folder.
        settings: The request: what made the images (recorded, and compared on reruns).
        overwrite: Replace a folder made with other settings, and existing image files.
        grid_size: Inputs shown in the contact sheet (first seed of each).
        ranks: The processes that write into the folder together (default: this one).

    Raises:
        ConfigError: ``output_dir`` is a file, or holds images made with other settings.
    """

    noun = "images"
    suffix = ".png"

    def __init__(
        self,
        output_dir: str | Path,
        settings: dict[str, Any],
        overwrite: bool = False,
        grid_size: int = 64,
        ranks: Ranks = ONE_PROCESS,
    ) -> None:
        self.grid_size = grid_size
        self.grid_path: Path | None = None
        super().__init__(output_dir, settings, overwrite, ranks)

    def output_name(self, key: str, seed: int | None) -> str:
        """``<key>.png``, or ``<key>.seed<N>.png`` with several seeds."""
        return image_name(key, seed, self.num_seeds)

    def save_output(self, path: Path, output: Tensor) -> None:
        """One ``(3, H, W)`` image in ``[0, 1]`` as a PNG."""
        Image.fromarray(to_uint8(output)).save(path, format="PNG")

    def finish(self, written: int) -> None:
        """Write the contact sheet of the request's images (first seed of the first inputs).

        Inputs in sorted order, whichever rank drew them; a run that wrote nothing leaves an
        existing sheet as it is.
        """
        if written == 0 and (self.output_dir / GRID).exists():
            self.grid_path = self.output_dir / GRID
            return
        first_seed = self.settings["seeds"][0]
        first = sorted(
            (r for r in self.rows if r["status"] == "ok" and r["seed"] == first_seed),
            key=lambda row: row["input"],
        )
        images = [read_image(self.output_dir / r["output"]) for r in first[: self.grid_size]]
        if images:
            self.grid_path = self.output_dir / GRID
            with self._refusals(self.grid_path):
                write_png(self.grid_path, image_grid(torch.stack(images)), overwrite=True)
