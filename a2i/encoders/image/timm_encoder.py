"""Any timm image model as an :class:`~a2i.interfaces.ImageEncoder` (pooled features, no head).

WavBriVL's image side is an EfficientNet-B7 CNN (WavBriVL §2.3); timm carries it
(``tf_efficientnet_b7``) along with most other published image backbones, so one wrapper covers
them: the model's own pretrained config decides resolution, interpolation and normalisation.
"""

from __future__ import annotations

import timm
import timm.data
from torch import Tensor, nn
from torchvision.transforms import v2

from a2i.errors import ConfigError
from a2i.interfaces import ImageEncoder
from a2i.pretrained import Weights, resolve_weights


class TimmImageEncoder(ImageEncoder):
    """Pooled features of a timm model (``num_classes=0``) on images preprocessed its way.

    Args:
        model_name: timm architecture, e.g. ``resnet50``, ``tf_efficientnet_b7``, ``test_vit``.
        pretrained: None for random weights; a timm pretrained tag of ``model_name`` (``a1_in1k``,
            or the full ``resnet50.a1_in1k``); or a local weights file (``.pth``/``.safetensors``)
            loaded by timm into ``model_name``.
        freeze: Freeze the encoder (no gradients, eval mode kept).
    """

    def __init__(
        self, model_name: str = "resnet50", pretrained: str | None = None, freeze: bool = False
    ) -> None:
        super().__init__()
        if not timm.is_model(model_name):
            raise ConfigError(
                f"{type(self).__name__}.model_name: '{model_name}' is not a timm architecture "
                "(see timm.list_models())"
            )
        weights = resolve_weights(pretrained, f"{type(self).__name__}.pretrained")
        if weights is None:
            self.model = timm.create_model(model_name, pretrained=False, num_classes=0)
        else:
            self.model = load_timm_model(model_name, weights)
        config = timm.data.resolve_model_data_config(self.model)
        self.image_size = int(config["input_size"][-1])
        self.embed_dim = int(self.model.num_features)
        self.normalized = False
        self.preprocess = v2.Compose(
            [
                v2.Resize(
                    self.image_size,
                    interpolation=v2.InterpolationMode(config["interpolation"]),
                    antialias=True,
                ),
                v2.CenterCrop(self.image_size),
                v2.Normalize(config["mean"], config["std"]),
            ]
        )
        if freeze:
            self.freeze()

    def forward(self, image: Tensor) -> Tensor:
        """Pooled features ``(B, embed_dim)`` of images in ``[0, 1]`` (not normalised)."""
        return self.model(self.preprocess(image))


def load_timm_model(model_name: str, weights: Weights, num_classes: int | None = 0) -> nn.Module:
    """Create ``model_name`` with published weights (a hub tag or a local file), or fail clearly.

    ``num_classes=0`` drops the classifier head (an encoder); ``None`` keeps the published one.
    """
    head = {} if num_classes is None else {"num_classes": num_classes}
    if weights.path is not None:
        return weights.load(
            lambda where: timm.create_model(
                model_name, pretrained=True, pretrained_cfg_overlay={"file": where}, **head
            ),
            library="timm",
        )
    tag = weights.spec
    name = tag if tag.startswith(f"{model_name}.") else f"{model_name}.{tag}"
    return weights.load(
        lambda _: timm.create_model(name, pretrained=True, **head),
        library="timm",
        name=name,
        download=("python -c \"import timm; timm.create_model('" + name + "', pretrained=True)\""),
    )
