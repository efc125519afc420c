"""Tiny text-to-image models: stand-ins for AudioToken's Stable Diffusion, Seeing Sound's PixArt-α."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import Module

from a2i.encoders.text.clip_text import CLIPTextEncoder
from a2i.generators.diffusion import DiffusionGenerator
from a2i.interfaces import IMAGE, check_embedding_match
from a2i.methods.base import A2IMethod, Logged


class TextToImagePretraining(A2IMethod):
    """Train a text-to-image latent diffusion model (text encoder + UNet) on captioned images.

    AudioToken (§2.1) starts from a published text-to-image LDM (Stable Diffusion). In the
    synthetic world a2i trains a tiny one itself on scene descriptions ("a photo of a red circle
    on grass"): the CLIP text encoder and the UNet learn jointly with the ε-prediction loss, the
    VAE stays frozen. Captions are replaced by the empty prompt with probability
    ``caption_dropout``, so that the empty prompt is the unconditional input of classifier-free
    guidance, as in Stable Diffusion (give the generator ``condition_dropout: 0.0``).

    Args:
        text_encoder: The text encoder to train (its placeholder token is left unused).
        generator: The LDM whose UNet trains (cross-attention width = the text width), or a
            PixArt whose transformer trains (caption width = the text width; Seeing Sound).
        caption_key: Batch key holding each image's caption (``description`` in the world).
        caption_dropout: Probability of training on the empty prompt instead (10% in SD).
        lr: Adam learning rate.
        options: :class:`~a2i.methods.base.A2IMethod`'s (``export_dir`` writes ``text_encoder.safetensors`` and the
            generator's trained parts, ``unet.safetensors`` of an LDM or ``transformer.safetensors``
            of PixArt; ``overwrite_export``,
            ``export_dtype``, ``save_frozen``, ``pretrained``).
    """

    optimizer_class = torch.optim.Adam

    def __init__(
        self,
        text_encoder: CLIPTextEncoder,
        generator: DiffusionGenerator,
        caption_key: str = "caption",
        caption_dropout: float = 0.1,
        lr: float = 1e-4,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.save_config(locals())
        check_embedding_match(
            text_encoder.width, generator.condition_dim, "text_encoder", "generator"
        )
        self.text_encoder = text_encoder
        self.generator = generator
        # Which token rows training reached: the export keeps only those (a few dozen of
        # CLIP's 49,408 in the world), so the shipped text encoder stays small.
        table = text_encoder.model.get_input_embeddings()
        self.register_buffer("trained_tokens", torch.zeros(table.num_embeddings, dtype=torch.bool))
        table.register_forward_hook(self._mark_trained_tokens)

    def _mark_trained_tokens(self, module: Module, inputs: tuple[Tensor], output: Tensor):
        """Forward hook on the token table: remember the ids of every training step."""
        if self.training:
            self.trained_tokens[inputs[0].unique()] = True

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """The text encoder and the generator's trained parts (UNet or DiT); the VAE stays."""
        params = list(self.text_encoder.parameters())
        for part in self.generator.trained_parts().values():
            params += list(part.parameters())
        return params

    def _captions(self, batch: dict[str, Any], drop: bool) -> list[str]:
        captions = list(batch[self.hparams.caption_key])
        if drop:
            keep = torch.rand(len(captions)) >= self.hparams.caption_dropout
            captions = [c if k else "" for c, k in zip(captions, keep.tolist(), strict=True)]
        return captions

    def step(self, batch: dict[str, Any], stage: str) -> dict[str, Logged]:
        """ε-prediction loss with the captions' text-encoder states as condition.

        Training drops captions (``caption_dropout``); held-out images keep theirs.
        """
        condition = self.text_encoder(self._captions(batch, drop=stage == "train"))
        return {"loss": self.generator.training_losses(batch[IMAGE], condition)["loss"]}

    def log_images(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Real images and the images drawn from their captions (seed 0)."""
        condition = self.text_encoder(self._captions(batch, drop=False)[:8])
        seed = torch.Generator(device=condition.device).manual_seed(0)
        drawn = self.generator.generate(condition, seed, unconditional=self.text_encoder([""]))
        return {"real": batch[IMAGE][:8], "generated": drawn}

    def trained_parts(self) -> dict[str, Module | dict[str, Tensor]]:
        """The text encoder (trained token rows only) and the UNet or DiT."""
        trained = self.trained_tokens.nonzero().flatten()
        return {
            "text_encoder": self.text_encoder.compact_state_dict(trained),
            **self.generator.trained_parts(),
        }
