"""Vision-language towers: an :class:`~a2i.interfaces.ImageEncoder` whose space a text tower shares.

WavBriVL freezes the image tower of a vision-language model and trains an audio tower into its
space (§2); because that space is also the text tower's, the audio embedding can be compared with
class prompts (zero-shot classification, Table 2's ZS row) and with images (retrieval, generation
by score, §5). The paper uses BriVL (:class:`~a2i.encoders.image.brivl.BriVLImageEncoder`, image
side only); :class:`OpenCLIPVisionLanguage` offers any open_clip CLIP, OpenAI's ViT-B/32 by
default, whose English text tower suits English class names.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from a2i.encoders.image.scorers import CLIPScorer
from a2i.interfaces import ImageEncoder


class VisionLanguageEncoder(ImageEncoder):
    """Unit-norm image embeddings, and text embeddings in the same space when a text tower exists.

    :meth:`forward` keeps gradients with respect to the image (score guidance, §5, steers a
    generator by them); the weights themselves are frozen by the methods that use the tower.

    Attributes:
        has_text_tower: Whether :meth:`embed_texts` works.
    """

    normalized = True
    has_text_tower: bool = True

    @abstractmethod
    def embed_texts(self, texts: Sequence[str]) -> Tensor:
        """Unit-norm ``(N, D)`` embeddings of texts, on this module's device."""


class OpenCLIPVisionLanguage(VisionLanguageEncoder):
    """An open_clip CLIP's image and text towers (WavBriVL §3.1 compares BriVL with CLIP).

    Args:
        model_name: open_clip architecture (``ViT-B-32``).
        pretrained: open_clip pretrained tag of ``model_name`` (``openai``) or a local open_clip
            checkpoint: the published weights, a clear error when they are not on this machine.
            An a2i ``.safetensors`` file of a :class:`~a2i.encoders.image.scorers.CLIPScorer`
            (``model.*`` keys, e.g. ``tiny/eval/clip.safetensors``, the synthetic world's CLIP)
            is loaded into ``preset`` instead.
        preset: ``paper`` = ``model_name`` with random weights; ``tiny`` = the world CLIP's
            shapes (:data:`~a2i.encoders.image.scorers.TINY_CLIP`, 64-d, 32 px).
    """

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        pretrained: str | None = None,
        preset: Literal["tiny", "paper"] = "paper",
    ) -> None:
        super().__init__()
        self.clip = CLIPScorer(model_name=model_name, pretrained=pretrained, preset=preset)
        self.image_size = self.clip.image_size
        self.embed_dim = self.clip.embed_dim
        self.freeze()

    def forward(self, image: Tensor) -> Tensor:
        """Unit-norm ``(B, D)`` embeddings of images in ``[0, 1]`` (differentiable in the image)."""
        return self.clip.model.encode_image(self.clip.preprocess(image.float()), normalize=True)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> Tensor:
        """Unit-norm ``(N, D)`` embeddings of texts through CLIP's text tower."""
        return self.clip.embed_texts(texts)
