"""Two gloo DDP processes train tiny WavBriVL for two steps; each writes the MoCo queues it holds.

Run by ``test_wavbrivl.py`` in a subprocess: ``strategy="ddp"`` relaunches this script once per
rank, so it must be a script, not a pytest function. Usage: ``python ddp_wavbrivl.py OUT_DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from a2i.encoders.audio.wavlm_tower import WavLMTower
from a2i.encoders.image.vision_language import OpenCLIPVisionLanguage
from a2i.methods.wavbrivl import WavBriVL

BATCH, STEPS, SAMPLES = 2, 2, 4000


class Pairs(Dataset):
    """Sixteen different audio–image pairs, the same on every rank (the sampler splits them)."""

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(index)
        return {
            "audio": 0.1 * torch.randn(SAMPLES, generator=generator),
            "image": torch.rand(3, 32, 32, generator=generator),
        }


class SaveQueues(L.Callback):
    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_end(self, trainer: L.Trainer, pl_module: WavBriVL) -> None:
        state = {key: value.cpu() for key, value in pl_module.moco.state_dict().items()}
        # what the image queue should hold: the frozen tower's embeddings of every pair
        images = torch.stack([Pairs()[index]["image"] for index in range(len(Pairs()))])
        state["image_features"] = pl_module.image_features(images.to(pl_module.device)).cpu()
        torch.save(state, self.out / f"rank{trainer.global_rank}.pt")


def main() -> None:
    out = Path(sys.argv[1])
    torch.manual_seed(0)  # the same initial model and queues on both ranks
    model = WavBriVL(
        WavLMTower(
            preset="tiny",
            wavlm_layers=1,
            freeze_wavlm=False,
            embed_dim=64,
            clip_seconds=SAMPLES / 16000,
            num_layers=1,
            feedforward_dim=32,
        ),
        OpenCLIPVisionLanguage(preset="tiny"),
        queue_size=64,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_steps=STEPS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[SaveQueues(out)],
    )
    trainer.fit(model, DataLoader(Pairs(), batch_size=BATCH))


if __name__ == "__main__":
    main()
