"""Scoring encoders: a CLIP model (image + text) and an image classifier with its class names.

Each loads the published model the papers used (a missing checkpoint is a clear error, never a
random model) or builds a ``tiny`` preset (a2i trains it on the synthetic world with
:mod:`a2i.synth.eval_backbones` and ships it in ``a2i/assets/tiny/eval/``), so every metric runs
offline on a CPU. This module knows no dataset: a tiny classifier's class names come from the
caller or from the ``class_names`` metadata of its a2i ``.safetensors`` file.

- :class:`CLIPScorer`: Sound2Vision §4.1 ranks class names with CLIP for R@k (CLIP R-precision);
  AudioToken §2.2 uses CLIP for IIS and for AIC's name-matching fallback. Default: OpenAI's
  ViT-B/32, the usual R-precision backbone.
- :class:`ImageClassifier`: AudioToken §2.2's AIC compares an image classifier's prediction with the
  audio label; in the world the same tiny classifier also serves as FID/KID/IS feature network.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Literal

import open_clip
import timm
import timm.data
import torch
from torch import Tensor
from torchvision.transforms import v2

from a2i.encoders.image.clip import open_clip_input, open_clip_model
from a2i.encoders.image.timm_encoder import load_timm_model
from a2i.errors import ConfigError
from a2i.interfaces import FreezableMixin
from a2i.pretrained import resolve_weights

TINY_CLIP = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 3, "width": 96, "patch_size": 4, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
"""A 3-layer ViT on 32 px (8×8 patches of 4 px) and a 2-layer, 32-wide text tower over CLIP's full
BPE vocabulary (so open_clip's own tokenizer works), both into a 64-d space."""

TINY_CLASSIFIER = "test_resnet"
"""timm's smallest ResNet (~0.37 M parameters), one output per class name, on 32 px images."""

CLASS_NAMES_METADATA = "class_names"
"""Key of the JSON list of class names in an a2i classifier file's safetensors metadata."""


class CLIPScorer(FreezableMixin):
    """CLIP image and text towers in one space, frozen, for scoring.

    Args:
        model_name: open_clip architecture (``ViT-B-32``).
        pretrained: open_clip pretrained tag of ``model_name`` (``openai``) or a local open_clip
            checkpoint: the published weights. An a2i ``.safetensors`` file of this module is
            loaded into ``preset`` instead.
        preset: ``paper`` = ``model_name`` with random weights; ``tiny`` = :data:`TINY_CLIP`.
    """

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        pretrained: str | None = None,
        preset: Literal["tiny", "paper"] = "paper",
    ) -> None:
        super().__init__()
        weights = resolve_weights(pretrained, f"{type(self).__name__}.pretrained")
        context_length = None
        a2i_file = weights is not None and weights.holds_only("model.")
        if (weights is not None and not a2i_file) or preset == "paper":
            published = None if a2i_file else weights
            self.model = open_clip_model(type(self).__name__, model_name, published)
        else:
            self.model = open_clip.CLIP(**TINY_CLIP)
            context_length = TINY_CLIP["text_cfg"]["context_length"]
        self.tokenizer = (
            open_clip.get_tokenizer(model_name)
            if context_length is None
            else open_clip.tokenizer.SimpleTokenizer(context_length=context_length)
        )
        self.image_size, self.preprocess = open_clip_input(self.model.visual)
        self.embed_dim = int(self.model.visual.output_dim)
        if a2i_file:
            self.load_state_dict(weights.state_dict())
        self.freeze()

    @torch.no_grad()
    def embed_images(self, images: Tensor) -> Tensor:
        """Unit-norm ``(B, D)`` embeddings of images ``(B, 3, H, W)`` in ``[0, 1]``, any size."""
        return self.model.encode_image(self.preprocess(images.float()), normalize=True)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> Tensor:
        """Unit-norm ``(N, D)`` embeddings of texts, on this module's device."""
        device = self.model.logit_scale.device
        return self.model.encode_text(self.tokenizer(list(texts)).to(device), normalize=True)

    def forward(self, images: Tensor) -> Tensor:
        """Same as :meth:`embed_images`."""
        return self.embed_images(images)


class ImageClassifier(FreezableMixin):
    """A timm image classifier with its class names, frozen, for AIC and as FID feature network.

    Args:
        model_name: timm architecture (the published one when ``pretrained`` is a tag).
        pretrained: timm pretrained tag of ``model_name`` (``augreg2_in21k_ft_in1k``) or a local
            weights file: the published classifier. An a2i ``.safetensors`` file of this module
            is loaded into ``preset`` instead.
        preset: ``paper`` = ``model_name`` with random weights (1000 ImageNet classes); ``tiny``
            = :data:`TINY_CLASSIFIER` with one output per class name on 32 px.
        class_names: Name of each output class. Default: the ``class_names`` metadata of an a2i
            ``.safetensors`` file, else ImageNet-1k's (timm's bundled list) for 1000 outputs.
            The tiny preset needs one of the two (its head has one output per name).
    """

    def __init__(
        self,
        model_name: str = "vit_base_patch16_224",
        pretrained: str | None = None,
        preset: Literal["tiny", "paper"] = "paper",
        class_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        weights = resolve_weights(pretrained, f"{type(self).__name__}.pretrained")
        a2i_file = weights is not None and weights.holds_only("model.")
        tiny = preset == "tiny" and (weights is None or a2i_file)
        if class_names is None and a2i_file:
            metadata = weights.metadata()
            if CLASS_NAMES_METADATA in metadata:
                class_names = json.loads(metadata[CLASS_NAMES_METADATA])
        if tiny:
            if not class_names:
                raise ConfigError(
                    f"{type(self).__name__}.class_names: the tiny preset needs the class names "
                    "(or an a2i .safetensors file that records them)"
                )
            self.model = timm.create_model(TINY_CLASSIFIER, num_classes=len(class_names))
        elif weights is not None and not a2i_file:
            self.model = load_timm_model(model_name, weights, num_classes=None)
        else:
            self.model = timm.create_model(model_name, pretrained=False)
        self.num_classes = int(self.model.num_classes)
        self.num_features = int(self.model.num_features)
        if class_names is None:
            if self.num_classes != 1000:
                raise ConfigError(
                    f"{type(self).__name__}.class_names: give the names of the model's "
                    f"{self.num_classes} classes"
                )
            class_names = [d.split(",")[0] for d in timm.data.ImageNetInfo().label_descriptions()]
        if len(class_names) != self.num_classes:
            raise ConfigError(
                f"{type(self).__name__}.class_names has {len(class_names)} names for a model "
                f"with {self.num_classes} classes"
            )
        self.class_names = list(class_names)
        config = timm.data.resolve_model_data_config(self.model)
        self.image_size = 32 if tiny else int(config["input_size"][-1])
        self.preprocess = v2.Compose(
            [
                v2.Resize(self.image_size, antialias=True),
                v2.CenterCrop(self.image_size),
                v2.Normalize(config["mean"], config["std"]),
            ]
        )
        if a2i_file:
            self.load_state_dict(weights.state_dict())
        self.freeze()

    def file_metadata(self) -> dict[str, str]:
        """Safetensors metadata that lets a file of this module rebuild its class names."""
        return {CLASS_NAMES_METADATA: json.dumps(self.class_names)}

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """Pooled pre-logit features ``(B, num_features)`` of images in ``[0, 1]``."""
        hidden = self.model.forward_features(self.preprocess(images.float()))
        return self.model.forward_head(hidden, pre_logits=True)

    @torch.no_grad()
    def logits(self, images: Tensor) -> Tensor:
        """Class logits ``(B, num_classes)`` of images in ``[0, 1]``."""
        return self.model(self.preprocess(images.float()))

    def forward(self, images: Tensor) -> Tensor:
        """Same as :meth:`logits`."""
        return self.logits(images)
