"""CLIP image towers: open_clip's (ViT-L/14 et al.) and transformers' with projection.

Sound2Vision §6.1 swaps its ResNet-50 image encoder for a ViT and the GAN for a latent diffusion
model; the published image-conditioned LDM (``lambdalabs/sd-image-variations-diffusers``) is
conditioned on the projected embedding of transformers' ``CLIPVisionModelWithProjection``
(ViT-L/14, 768-d), so an audio encoder aligned to that embedding can drive it directly.
"""

from __future__ import annotations

from typing import Literal

import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch import Tensor, nn
from torchvision.transforms import v2
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from a2i.encoders.published import load_a2i_file, published_or_preset
from a2i.errors import ConfigError
from a2i.interfaces import ImageEncoder
from a2i.pretrained import Weights, resolve_weights

OPENCLIP_TINY = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}
"""A 2-layer, 64-wide ViT on 32 px (4×4 patches of 8 px); the text tower is built and discarded."""

HF_CLIP_VISION_PRESETS = {
    "paper": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "image_size": 224,
        "patch_size": 14,
        "projection_dim": 768,
        "hidden_act": "quick_gelu",
    },
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 32,
        "patch_size": 8,
        "projection_dim": 64,
        "hidden_act": "quick_gelu",
    },
}
"""``paper`` is the ViT-L/14 vision tower of OpenAI CLIP (the sd-image-variations image encoder)."""


Resize = Literal["crop", "squash"]
"""How an image reaches the CLIP tower's square input: ``crop`` = CLIP's own (antialiased bicubic
resize of the short side, centre crop); ``squash`` = bicubic resize of the whole image to the
square without antialiasing and without a crop."""

CHECKPOINT_RESIZE: dict[str, Resize] = {"sd-image-variations-diffusers": "squash"}
"""Checkpoints trained with another preprocessing than CLIP's, by hub repository name.

The model card of ``lambdalabs/sd-image-variations-diffusers`` (its section "The importance of
resizing correctly") prescribes ``Resize((224, 224), BICUBIC, antialias=False)`` and no crop: the
image encoder's input was resized that way during training, and matching it "makes a big
difference"."""


def checkpoint_resize(pretrained: str | None) -> Resize:
    """The preprocessing ``pretrained`` was trained with (``crop`` unless listed)."""
    name = (pretrained or "").rstrip("/").split("/")[-1]
    return CHECKPOINT_RESIZE.get(name, "crop")


def clip_preprocess(
    image_size: int, mean: tuple[float, ...], std: tuple[float, ...], resize: Resize = "crop"
) -> v2.Compose:
    """CLIP's preprocessing on tensors (``resize``: see :data:`Resize`), then normalisation."""
    if resize == "squash":
        size = (image_size, image_size)
        steps = [v2.Resize(size, interpolation=v2.InterpolationMode.BICUBIC, antialias=False)]
    else:
        steps = [
            v2.Resize(image_size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
            v2.CenterCrop(image_size),
        ]
    return v2.Compose([*steps, v2.Normalize(mean, std)])


def open_clip_input(visual: nn.Module) -> tuple[int, v2.Compose]:
    """An open_clip image tower's square input size and the preprocessing its weights expect."""
    size = visual.image_size
    image_size = int(size[0] if isinstance(size, tuple | list) else size)
    config = getattr(visual, "preprocess_cfg", {})
    mean = tuple(config.get("mean", OPENAI_DATASET_MEAN))
    return image_size, clip_preprocess(
        image_size, mean, tuple(config.get("std", OPENAI_DATASET_STD))
    )


def open_clip_model(owner: str, model_name: str, weights: Weights | None) -> nn.Module:
    """An open_clip CLIP of ``model_name``: published ``weights`` (a tag or a local file), or random.

    A missing checkpoint raises :class:`~a2i.errors.CheckpointNotFoundError` with the command
    that downloads it; ``weights=None`` builds the architecture with random weights on the
    caller's default device (meta for parameter counts).
    """
    if model_name not in open_clip.list_models():
        raise ConfigError(
            f"{owner}.model_name: '{model_name}' is not an open_clip architecture "
            "(see open_clip.list_models())"
        )
    if weights is None:
        return open_clip.create_model(
            model_name, pretrained=None, device=torch.get_default_device()
        )
    tag = open_clip.get_pretrained_cfg(model_name, weights.spec)
    return weights.load(
        lambda where: open_clip.create_model(
            model_name,
            pretrained=where,
            # OpenAI's weights were trained with QuickGELU; the plain config uses GELU.
            force_quick_gelu=bool(tag.get("quick_gelu", False)),
        ),
        library="open_clip",
        name=f"{model_name}/{weights.spec}",
        download=(
            "python -c \"import open_clip; open_clip.create_model('"
            f"{model_name}', pretrained='{weights.spec}')\""
        ),
    )


class OpenCLIPImageEncoder(ImageEncoder):
    """open_clip image tower → unit-norm image embedding (768-d for ViT-L-14).

    Args:
        model_name: open_clip architecture for ``paper`` and ``pretrained`` (``ViT-L-14``).
        pretrained: open_clip pretrained tag of ``model_name`` (``openai``, ``laion2b_s32b_b82k``)
            or a local open_clip checkpoint file: loads the published weights (a tag brings its
            own activation; for a local copy of OpenAI's weights use ``ViT-L-14-quickgelu``,
            since they were trained with QuickGELU). An a2i
            ``.safetensors`` file of this module (``visual.*`` keys only, as written by
            :func:`a2i.pretrained.save_module`) is loaded into ``preset`` instead.
        preset: ``paper`` builds ``model_name`` with random weights; ``tiny`` a 2-layer ViT on
            32 px with 64-d output. Ignored when ``pretrained`` names published weights.
        freeze: Freeze the encoder (no gradients, eval mode kept).
    """

    def __init__(
        self,
        model_name: str = "ViT-L-14",
        pretrained: str | None = None,
        preset: Literal["tiny", "paper"] = "paper",
        freeze: bool = False,
    ) -> None:
        super().__init__()
        weights = resolve_weights(pretrained, f"{type(self).__name__}.pretrained")
        # open_clip checkpoints hold both towers; an a2i file of this module only ``visual.*``
        a2i_weights = weights is not None and weights.holds_only("visual.")
        if (weights is not None and not a2i_weights) or preset == "paper":
            published = None if a2i_weights else weights
            model = open_clip_model(type(self).__name__, model_name, published)
        else:
            model = open_clip.CLIP(**OPENCLIP_TINY)
        self.visual: nn.Module = model.visual
        self.image_size, self.preprocess = open_clip_input(self.visual)
        self.embed_dim = int(self.visual.output_dim)
        self.normalized = True
        if a2i_weights:
            self.load_state_dict(weights.state_dict())
        if freeze:
            self.freeze()

    def forward(self, image: Tensor) -> Tensor:
        """Unit-norm embeddings ``(B, embed_dim)`` of images in ``[0, 1]``."""
        return F.normalize(self.visual(self.preprocess(image)), dim=-1)


class HFCLIPImageEncoder(ImageEncoder):
    """transformers ``CLIPVisionModelWithProjection`` → ``image_embeds``.

    The embedding is left unnormalised by default because that is what the image-variation LDM
    was trained on (its pipeline feeds ``image_embeds`` as is).

    Args:
        pretrained: Hub id or local directory (``lambdalabs/sd-image-variations-diffusers`` with
            ``subfolder="image_encoder"``, or ``openai/clip-vit-large-patch14``). An a2i
            ``.safetensors`` file is read as this module's state dict for ``preset`` instead.
        subfolder: Subfolder of ``pretrained`` holding the vision model ("" for none).
        preset: ``paper`` = ViT-L/14 vision config with 768-d projection; ``tiny`` = 2 layers,
            64 wide, 32 px, 64-d projection. Ignored when ``pretrained`` names published weights.
        normalize: Return unit-norm embeddings (for cosine losses) instead of the raw projection.
        resize: ``crop`` or ``squash`` (:data:`Resize`); None = what ``pretrained`` was trained
            with: ``squash`` for ``lambdalabs/sd-image-variations-diffusers`` (its model card),
            ``crop`` otherwise. Set it for a local copy of that checkpoint under another name.
        freeze: Freeze the encoder (no gradients, eval mode kept).
    """

    def __init__(
        self,
        pretrained: str | None = None,
        subfolder: str = "image_encoder",
        preset: Literal["tiny", "paper"] = "paper",
        normalize: bool = False,
        resize: Resize | None = None,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        weights = resolve_weights(pretrained, f"{type(self).__name__}.pretrained")
        self.model = published_or_preset(
            weights,
            lambda where: CLIPVisionModelWithProjection.from_pretrained(where, subfolder=subfolder),
            lambda: CLIPVisionModelWithProjection(
                CLIPVisionConfig(**HF_CLIP_VISION_PRESETS[preset])
            ),
            subfolder,
        )
        config = self.model.config
        self.image_size = int(config.image_size)
        self.embed_dim = int(config.projection_dim)
        self.normalized = normalize
        self.resize = resize or checkpoint_resize(pretrained)
        self.preprocess = clip_preprocess(
            self.image_size, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD, self.resize
        )
        load_a2i_file(self, weights, freeze)

    def forward(self, image: Tensor) -> Tensor:
        """``image_embeds`` ``(B, embed_dim)`` of images in ``[0, 1]``."""
        embeds = self.model(pixel_values=self.preprocess(image)).image_embeds
        return F.normalize(embeds, dim=-1) if self.normalized else embeds
