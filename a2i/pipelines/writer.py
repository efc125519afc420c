"""Write generated images to a folder: one PNG per input (and seed), a contact sheet, a manifest.

Sub-folders of the input are mirrored. Existing files are never replaced unless ``overwrite``;
every PNG and the manifest are written atomically, so a killed run leaves no half-written file.
A bad input is recorded by name and reason in the manifest and does not stop the others;
``failures`` lets the CLI exit non-zero.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from a2i.image import image_grid, write_png
from a2i.io_utils import atomic_write


class ImageFolderWriter:
    """Turn generated images (``a2i predict``) into files.

    Args:
        output_dir: Destination folder.
        overwrite: Replace existing images (otherwise they are kept and reported as ``exists``).
        grid_size: Inputs shown in the contact sheet (first seed of each).
    """

    def __init__(
        self, output_dir: str | Path, overwrite: bool = False, grid_size: int = 64
    ) -> None:
        self.output_dir = Path(output_dir)
        self.overwrite = overwrite
        self.grid_size = grid_size
        self.rows: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.manifest_path: Path | None = None
        self.grid_path: Path | None = None
        self._grid_images: list[Tensor] = []

    def image_path(self, key: str, seed: int, num_seeds: int) -> Path:
        """``output_dir/<key without extension>[_seed<S>].png``."""
        stem = Path(key).with_suffix("")
        name = f"{stem.name}_seed{seed}.png" if num_seeds > 1 else f"{stem.name}.png"
        return self.output_dir / stem.parent / name

    def write(
        self,
        keys: Sequence[str],
        images: Sequence[Tensor | None],
        seeds: Sequence[int],
        errors: Sequence[str],
    ) -> None:
        """Write one batch: ``images[i]`` is ``(S, 3, H, W)`` for input ``keys[i]`` (None if failed)."""
        for key, drawn, error in zip(keys, images, errors, strict=True):
            for index, seed in enumerate(seeds):
                path = self.image_path(key, seed, len(seeds))
                record = {
                    "input": key,
                    "output": str(path),
                    "seed": seed,
                    "status": "ok",
                    "error": "",
                }
                if error or drawn is None:
                    record.update(output="", status="failed", error=error or "no image")
                    self.failures.append(record)
                elif path.exists() and not self.overwrite:
                    record.update(
                        status="exists", error="kept existing file (use --overwrite true)"
                    )
                else:
                    write_png(path, drawn[index], overwrite=self.overwrite)
                    if index == 0 and len(self._grid_images) < self.grid_size:
                        self._grid_images.append(drawn[index].detach().cpu())
                self.rows.append(record)

    def close(self, suffix: str = "") -> None:
        """Write the manifest (JSONL) and the contact sheet; ``suffix`` names a rank's files."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        manifest = self._fresh_name(f"manifest{suffix}", ".jsonl")
        with atomic_write(manifest) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self.rows))
        self.manifest_path = manifest
        if self._grid_images:
            self.grid_path = self._fresh_name(f"grid{suffix}", ".png")
            write_png(self.grid_path, image_grid(torch.stack(self._grid_images)))

    def _fresh_name(self, stem: str, suffix: str) -> Path:
        """``stem+suffix`` unless it exists (and no overwrite): then a timestamped name."""
        path = self.output_dir / f"{stem}{suffix}"
        if path.exists() and not self.overwrite:
            path = self.output_dir / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}{suffix}"
        return path
