"""Log each method's ``log_images`` grids to TensorBoard during validation (CompVis ldm's ImageLogger)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from a2i.image import image_grid


class ImageLogger(L.Callback):
    """Every validation epoch, log the grids of the first validation batch.

    Args:
        max_images: Images per grid row kind.
    """

    def __init__(self, max_images: int = 8) -> None:
        super().__init__()
        self.max_images = max_images

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Log the first batch's grids on rank 0 (skipped during the sanity check)."""
        if batch_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers or not hasattr(pl_module, "log_images"):
            return
        with torch.no_grad():
            images = pl_module.log_images(batch)
        for name, stack in images.items():
            grid = image_grid(stack[: self.max_images], nrow=self.max_images)
            for logger in loggers:
                logger.experiment.add_image(f"val_images/{name}", grid, trainer.global_step)
