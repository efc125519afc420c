"""Write generated images to a folder: one PNG per input (and seed), a contact sheet, a manifest.

What a user of ``a2i predict`` can rely on:

- **One output per input.** ``sub/bell.wav`` → ``sub/bell.wav.png`` (``.seedN.png`` with several
  seeds): the input's extension stays in the name, so ``bell.wav`` and ``bell.flac`` never share
  an image. Sub-folders are mirrored.
- **The manifest says how every image was made.** ``manifest.jsonl`` starts with the request
  (checkpoint, model config, controls); then one line per (input, seed) is appended as soon as the
  image is on disk (each line one ``write``, flushed and fsynced), so a killed run loses at most
  the batch in flight.
- **Reruns resume, never pass old images off as new.** With the same request, inputs already done
  are skipped before anything is computed (failed ones are tried again, and recorded again only
  if they fail differently); with another request the folder is refused (unless ``overwrite``),
  naming what differs. An image file the manifest does not list is never replaced.

The same rules serve every per-input output: :class:`FolderWriter` keeps the manifest and the
resume logic, a subclass names and saves the files (:class:`ImageFolderWriter` here, the ``.npy``
embeddings of ``a2i embed`` in :mod:`a2i.pipelines.embedding`).
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from a2i.errors import ConfigError
from a2i.image import image_grid, read_image, write_png
from a2i.io_utils import atomic_write

MANIFEST = "manifest.jsonl"
GRID = "grid.png"


def image_name(key: str, seed: int, num_seeds: int) -> str:
    """Relative output path of input ``key`` (its relative path) for ``seed``."""
    return f"{key}.seed{seed}.png" if num_seeds > 1 else f"{key}.png"


def read_manifest(output_dir: str | Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The request and the image rows of a prediction folder's manifest (empty if none).

    A last line cut short by a kill is ignored.
    """
    path = Path(output_dir) / MANIFEST
    if not path.exists():
        return None, []
    request, rows = None, []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("type") == "request":
            request = record["settings"]
        else:
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


class FolderWriter(ABC):
    """Turn one request's outputs into files, one per input and seed (see module docstring).

    Subclasses name and save the files (:meth:`output_name`, :meth:`save_output`) and say what
    the folder holds (:attr:`noun`, in messages).

    Args:
        output_dir: Destination folder.
        settings: The request: what made the outputs (recorded, and compared on reruns). Its
            ``seeds`` list gives one output per seed; without it, one output per input.
        overwrite: Replace a folder made with other settings, and existing output files.

    Raises:
        ConfigError: ``output_dir`` is a file, or holds outputs made with other settings.
    """

    noun = "outputs"

    def __init__(
        self, output_dir: str | Path, settings: dict[str, Any], overwrite: bool = False
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
        self.recorded_failures: set[tuple[str, int | None, str]] = set()
        self.skipped = 0
        self.written = 0
        self.manifest_path = self.output_dir / MANIFEST
        self._start()

    @abstractmethod
    def output_name(self, key: str, seed: int | None) -> str:
        """Relative path of the output of input ``key`` for ``seed`` (None: no seeds)."""

    @abstractmethod
    def save_output(self, path: Path, output: Tensor) -> None:
        """Write one output to ``path`` (atomically)."""

    def _start(self) -> None:
        """Resume a manifest of the same request, or start one (refusing another request's)."""
        previous, rows = read_manifest(self.output_dir)
        if previous is not None and previous != self.settings and not self.overwrite:
            raise ConfigError(
                f"--output_dir '{self.output_dir}' holds {self.noun} made with other settings "
                f"({describe_changes(previous, self.settings)}); choose another --output_dir, "
                "or pass --overwrite true to replace them"
            )
        if previous == self.settings:
            per_input: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                per_input.setdefault(row["input"], []).append(row)
            self.done = {
                key
                for key, found in per_input.items()
                if len({r.get("seed") for r in found if r["status"] == "ok"}) == self.num_seeds
                and all((self.output_dir / r["output"]).exists() for r in found)
            }
            self.rows = [r for r in rows if r["input"] in self.done]
            self.recorded_failures = {
                (r["input"], r.get("seed"), r["error"]) for r in rows if r["status"] == "failed"
            }
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        record = json.dumps({"type": "request", "settings": self.settings}) + "\n"
        with atomic_write(self.manifest_path) as tmp:
            tmp.write_text(record)

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
        (e.g. the input's duration) is recorded on each of its rows.
        """
        details = details or [{} for _ in keys]
        lines = []
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
                elif path.exists() and not self.overwrite:
                    row.update(
                        output="",
                        status="failed",
                        error=f"{path} exists and this run did not write it; move it or "
                        "pass --overwrite true",
                    )
                else:
                    self.save_output(path, drawn[index])
                    self.written += 1
                if row["status"] == "failed":
                    self.failures.append(row)
                    if (key, seed, row["error"]) in self.recorded_failures:
                        continue  # failed the same way in an earlier run: already recorded
                self.rows.append(row)
                lines.append(json.dumps(row) + "\n")
        self._append("".join(lines))

    def _append(self, text: str) -> None:
        """Append whole lines in one write, then fsync (a kill leaves at most a partial last line)."""
        if not text:
            return
        with open(self.manifest_path, "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:  # noqa: B027 (an optional hook: ImageFolderWriter draws its grid)
        """Finish the folder once every batch is written (nothing left to do by default)."""


class ImageFolderWriter(FolderWriter):
    """Generated images as PNGs, plus a contact sheet of the request (see module docstring).

    Args:
        output_dir: Destination folder.
        settings: The request: what made the images (recorded, and compared on reruns).
        overwrite: Replace a folder made with other settings, and existing image files.
        grid_size: Inputs shown in the contact sheet (first seed of each).

    Raises:
        ConfigError: ``output_dir`` is a file, or holds images made with other settings.
    """

    noun = "images"

    def __init__(
        self,
        output_dir: str | Path,
        settings: dict[str, Any],
        overwrite: bool = False,
        grid_size: int = 64,
    ) -> None:
        self.grid_size = grid_size
        self.grid_path: Path | None = None
        super().__init__(output_dir, settings, overwrite)

    def output_name(self, key: str, seed: int | None) -> str:
        """``<key>.png``, or ``<key>.seed<N>.png`` with several seeds."""
        return image_name(key, seed, self.num_seeds)

    def save_output(self, path: Path, output: Tensor) -> None:
        """One ``(3, H, W)`` image in ``[0, 1]`` as a PNG."""
        write_png(path, output, overwrite=True)

    def close(self) -> None:
        """Write the contact sheet of the request's images (first seed of the first inputs).

        A run that wrote nothing leaves an existing sheet as it is.
        """
        if self.written == 0 and (self.output_dir / GRID).exists():
            self.grid_path = self.output_dir / GRID
            return
        first = [
            r for r in self.rows if r["status"] == "ok" and r["seed"] == self.settings["seeds"][0]
        ]
        images = [read_image(self.output_dir / r["output"]) for r in first[: self.grid_size]]
        if images:
            self.grid_path = self.output_dir / GRID
            write_png(self.grid_path, image_grid(torch.stack(images)), overwrite=True)
