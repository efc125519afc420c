"""Write predictions to a folder: one PNG per input (and seed), a contact sheet, a manifest.

Sub-folders of the input are mirrored. Existing files are never replaced unless ``overwrite``;
every PNG and the manifest are written atomically, so a killed run leaves no half-written file.
A bad input is recorded by name and reason in the manifest and does not stop the others;
``failures`` lets the CLI exit non-zero.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from a2i.image import image_grid, write_png


class ImageFolderWriter(BasePredictionWriter):
    """Turn the predict contract of :mod:`a2i.methods.base` into files.

    Args:
        output_dir: Destination folder.
        overwrite: Replace existing images (otherwise they are kept and reported as ``exists``).
        grid_size: Inputs shown in the contact sheet (first seed of each).
    """

    def __init__(self, output_dir: str, overwrite: bool = False, grid_size: int = 64) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.overwrite = overwrite
        self.grid_size = grid_size
        self.rows: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self._grid_images: list[torch.Tensor] = []

    def image_path(self, key: str, seed: int, num_seeds: int) -> Path:
        """``output_dir/<key without extension>[_seed<S>].png``."""
        stem = Path(key).with_suffix("")
        name = f"{stem.name}_seed{seed}.png" if num_seeds > 1 else f"{stem.name}.png"
        return self.output_dir / stem.parent / name

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: dict[str, Any],
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Write this batch's images and record one manifest row per (input, seed)."""
        seeds = prediction["seeds"]
        for row, key in enumerate(prediction["key"]):
            error = prediction["error"][row]
            for index, seed in enumerate(seeds):
                path = self.image_path(key, seed, len(seeds))
                record = {
                    "input": key,
                    "output": str(path),
                    "seed": seed,
                    "status": "ok",
                    "error": "",
                }
                if error:
                    record.update(output="", status="failed", error=error)
                    self.failures.append(record)
                elif path.exists() and not self.overwrite:
                    record.update(
                        status="exists", error="kept existing file (use --overwrite true)"
                    )
                else:
                    image = prediction["images"][row, index]
                    write_png(path, image, overwrite=self.overwrite)
                    if index == 0 and len(self._grid_images) < self.grid_size:
                        self._grid_images.append(image.detach().cpu())
                self.rows.append(record)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write the manifest (JSONL) and the contact sheet."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        suffix = f".rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        manifest = self._fresh_name(f"manifest{suffix}", ".jsonl")
        tmp = manifest.with_name(f".{manifest.name}.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in self.rows))
        os.replace(tmp, manifest)
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
