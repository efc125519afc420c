"""BriVL's image tower (Fei et al. 2022), the frozen image side of WavBriVL (§2, §2.3).

An EfficientNet (timm) yields a feature map; BriVL pools it over a set of boxes — in its released
inference code a 6×6 grid of cells plus the whole image, 37 "patches" — by bilinear sampling of a
4×4 grid per box, a 1×1 convolution and a 4×4 average (``roi_grid_pool``); the box features go
through the self-attention block, are averaged (§2.3 eqs. 2–3) and projected by a two-layer ReLU
MLP (:class:`~a2i.modules.attention_head.SelfAttentionHead`). No library ships the tower, so the
pooling is written here from the released code (BAAI-WuDao/BriVL ``BriVL-code-inference/models/
vl_model.py``, ``ImgLearnableEncoder``; the same in neilfei/brivl-nmi) — batched over images' boxes
the way the released loop does it per image.

Released weights. BriVL-1.0 (``BriVL-1.0-5500w.pth``, model.baai.ac.cn, registration) and the
Nature Communications release (``brivl-with-roberta-base.pth``, Google Drive link in
github.com/neilfei/brivl-nmi) are ``torch.save({"learnable": state_dict, ...})`` of the whole
model; :func:`load_released_image_tower` takes the ``imgencoder.*`` tensors and renames them
(:data:`RELEASED_KEYS`). Their configs (``cfg/test_xyb.yml``, ``cfg/eval.yml``) use
``tf_efficientnet_b5_ns`` at 456 px with 2048-d features — the ``released`` preset — not the
EfficientNet-B7 the papers name (the ``paper`` preset, random weights only). The text tower
(Chinese RoBERTa-base + SA block + MLP) is not ported: BriVL's text side reads Chinese (WavBriVL,
Limitations), so zero-shot class prompts use an English CLIP text tower
(:class:`~a2i.encoders.image.vision_language.OpenCLIPVisionLanguage`).
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Literal

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms import v2

from a2i.encoders.image.vision_language import VisionLanguageEncoder
from a2i.errors import ConfigError
from a2i.modules.attention_head import SelfAttentionHead
from a2i.pretrained import resolve_weights, state_dict_problems

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BRIVL_PRESETS: dict[str, dict] = {
    # BriVL-1.0 / brivl-nmi inference configs: CNN tf_efficientnet_b5_ns, IMG_SIZE 456,
    # IMG_FEATURE_DIM 2048, IMG_TRANSFORMER_HEAD 4, IMG_TRANSFORMER_LAYER 4, BOX_GRID 6,
    # GRID_SIZE 4 (MAX_IMG_LEN 37 = 6×6 cells + the whole image).
    "released": {
        "backbone": "tf_efficientnet_b5",
        "image_size": 456,
        "box_grid": 6,
        "grid_size": 4,
        "num_layers": 4,
        "num_heads": 4,
        "feedforward_dim": 2048,
    },
    # WavBriVL §2.3: EfficientNet-B7 as the CNN, images cropped to 360×360.
    "paper": {
        "backbone": "tf_efficientnet_b7",
        "image_size": 360,
        "box_grid": 6,
        "grid_size": 4,
        "num_layers": 4,
        "num_heads": 4,
        "feedforward_dim": 2048,
    },
    "tiny": {
        "backbone": "test_efficientnet",
        "image_size": 64,
        "box_grid": 2,
        "grid_size": 2,
        "num_layers": 1,
        "num_heads": 4,
        "feedforward_dim": 128,
    },
}
"""Architectures; the embedding size is the backbone's feature width (BriVL's IMG_FEATURE_DIM)."""

RELEASED_KEYS = {
    "learnable.max_pool.0.": "box_projection.",
    "learnable.imgAtt.": "head.attention.",
    "learnable.imgFC.fc1.": "head.mlp.0.",
    "learnable.imgFC.fc2.": "head.mlp.2.",
    "backbone.": "backbone.",
}
"""Prefix of a released ``imgencoder.*`` tensor (after ``imgencoder.``) → prefix in this module."""

RELEASED_DOWNLOAD = (
    "download BriVL-1.0-5500w.tar from https://model.baai.ac.cn/model-detail/100018 and extract "
    "BriVL-1.0-5500w.pth, or brivl-with-roberta-base.pth from the Google Drive link in the README "
    "of github.com/neilfei/brivl-nmi"
)


def brivl_boxes(image_size: int, box_grid: int) -> Tensor:
    """``(box_grid² + 1, 4)`` boxes ``(x1, y1, x2, y2)`` in pixels: the grid cells, then the image."""
    step = image_size / box_grid
    cells = [
        (i * step, j * step, (i + 1) * step, (j + 1) * step)
        for i in range(box_grid)
        for j in range(box_grid)
    ]
    return torch.tensor([*cells, (0.0, 0.0, float(image_size), float(image_size))])


class BriVLImageEncoder(VisionLanguageEncoder):
    """EfficientNet → box features → SA block → mean → MLP → unit-norm embedding.

    Args:
        preset: ``released`` (the public BriVL checkpoints' shapes), ``paper`` (EfficientNet-B7 at
            360 px, WavBriVL §2.3) or ``tiny`` (timm's ``test_efficientnet`` at 64 px).
        pretrained: A released BriVL checkpoint (``BriVL-1.0-5500w.pth`` or
            ``brivl-with-roberta-base.pth``, :func:`load_released_image_tower`; use the
            ``released`` preset), or an a2i ``.safetensors`` file of this module.
    """

    has_text_tower = False

    def __init__(
        self,
        preset: Literal["released", "paper", "tiny"] = "released",
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        shape = BRIVL_PRESETS[preset]
        self.preset = preset
        self.backbone = timm.create_model(shape["backbone"], pretrained=False, num_classes=0)
        width = int(self.backbone.num_features)
        self.box_projection = nn.Conv2d(width, width, kernel_size=1)
        self.head = SelfAttentionHead(
            width,
            width,
            num_layers=shape["num_layers"],
            num_heads=shape["num_heads"],
            feedforward_dim=shape["feedforward_dim"],
        )
        self.grid_size = shape["grid_size"]
        self.image_size = shape["image_size"]
        self.embed_dim = width
        self.register_buffer("boxes", brivl_boxes(self.image_size, shape["box_grid"]), False)
        # The released data pipeline: ToTensor, Resize((s, s)) of the tensor (bilinear, no crop),
        # ImageNet normalisation (neilfei/brivl-nmi datasets.py, ImageData).
        self.preprocess = v2.Compose(
            [
                v2.Resize((self.image_size, self.image_size), antialias=False),
                v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )
        if pretrained is not None:
            load_released_image_tower(self, pretrained, f"{type(self).__name__}.pretrained")
        self.freeze()

    def box_features(self, feature_map: Tensor) -> Tensor:
        """``roi_grid_pool``: ``(B, C, h, w)`` feature map → ``(B, boxes, C)`` box features."""
        _, channels, height, width = feature_map.shape
        boxes = self.boxes.to(feature_map) / (self.image_size / height)
        x1, y1, x2, y2 = boxes.unbind(dim=1)
        zero = torch.zeros_like(x1)
        theta = torch.stack(
            [
                torch.stack(
                    [(x2 - x1) / (width - 1), zero, (x1 + x2 - width + 1) / (width - 1)], 1
                ),
                torch.stack(
                    [zero, (y2 - y1) / (height - 1), (y1 + y2 - height + 1) / (height - 1)], 1
                ),
            ],
            dim=1,
        )
        size = (len(boxes), channels, self.grid_size, self.grid_size)
        grid = F.affine_grid(theta, size, align_corners=False)
        pooled = []
        for image_map in feature_map:  # per image, as released: memory of one image's boxes
            sampled = F.grid_sample(
                image_map[None].expand(len(boxes), -1, -1, -1), grid, align_corners=False
            )
            projected = self.box_projection(sampled)
            pooled.append(F.avg_pool2d(projected, self.grid_size, stride=1).flatten(1))
        return torch.stack(pooled)

    def forward(self, image: Tensor) -> Tensor:
        """Unit-norm ``(B, embed_dim)`` embeddings of images in ``[0, 1]``."""
        feature_map = self.backbone.forward_features(self.preprocess(image.float()))
        return F.normalize(self.head(self.box_features(feature_map)), dim=-1)

    def embed_texts(self, texts: Sequence[str]) -> Tensor:
        """BriVL's (Chinese) text tower is not ported to a2i: see the module docstring."""
        raise ConfigError(
            "BriVLImageEncoder has no text tower in a2i (BriVL's is a Chinese RoBERTa, not "
            "ported): class prompts, zero-shot classification and the prompt of generation need "
            "a vision-language encoder with one, e.g. "
            "a2i.encoders.image.vision_language.OpenCLIPVisionLanguage"
        )


def load_released_image_tower(encoder: BriVLImageEncoder, spec: str, field: str) -> None:
    """Load a released BriVL checkpoint's image tower, or an a2i file, into ``encoder``.

    Released files hold ``{"learnable": {"imgencoder.<key>": tensor, ...}, ...}`` (BriVL's
    ``model.learnable.load_state_dict(checkpoint["learnable"])``); they are read tensors-only and
    renamed by :data:`RELEASED_KEYS`; the backbone's ImageNet classifier is dropped (the tower uses
    ``forward_features``). A missing file raises :class:`~a2i.errors.CheckpointNotFoundError`
    with where to get it; a missing, unexpected or misshapen tensor a :class:`ConfigError` naming
    it (a checkpoint of another backbone than the preset's, say).
    """
    weights = resolve_weights(spec, field, download=RELEASED_DOWNLOAD)
    try:
        stored = weights.state_dict(download=RELEASED_DOWNLOAD)
    except pickle.UnpicklingError as error:
        raise ConfigError(
            f"{field} '{spec}' holds more than tensors and plain containers, which a2i does not "
            f"unpickle ({str(error).splitlines()[0]})"
        ) from None
    layout = "a2i"
    if "learnable" in stored:
        layout = "released BriVL"
        stored = {
            _rename(key.removeprefix("imgencoder.")): value
            for key, value in stored["learnable"].items()
            if key.startswith("imgencoder.")
            and not key.startswith("imgencoder.backbone.classifier")
        }
    problems = state_dict_problems(stored, encoder.state_dict(), most=5)
    if problems:
        raise ConfigError(
            f"{field} '{spec}' ({layout} layout) does not fit BriVLImageEncoder's "
            f"'{encoder.preset}' preset: " + "; ".join(problems)
        )
    encoder.load_state_dict(stored)


def _rename(key: str) -> str:
    for released, ours in RELEASED_KEYS.items():
        if key.startswith(released):
            return ours + key.removeprefix(released)
    return key
