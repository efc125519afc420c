from __future__ import annotations

import pytest
import torch

from a2i.encoders.image.clip import HFCLIPImageEncoder, OpenCLIPImageEncoder
from a2i.encoders.image.resnet import ResNetImageEncoder, build_resnet_trunk
from a2i.encoders.image.timm_encoder import TimmImageEncoder
from a2i.encoders.image.tiny import TinyImageEncoder
from a2i.errors import ConfigError
from a2i.interfaces import ImageEncoder


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


TINY_ENCODERS = [
    pytest.param(TinyImageEncoder, {}, (64, 32, True, 303_136), id="tiny-cnn"),
    pytest.param(ResNetImageEncoder, {"preset": "tiny"}, (128, 64, False, 324_576), id="resnet"),
    pytest.param(OpenCLIPImageEncoder, {"preset": "tiny"}, (64, 32, True, 117_760), id="open_clip"),
    pytest.param(HFCLIPImageEncoder, {"preset": "tiny"}, (64, 32, False, 117_760), id="hf_clip"),
    pytest.param(
        TimmImageEncoder, {"model_name": "test_resnet"}, (96, 160, False, 372_688), id="timm"
    ),
]


@pytest.mark.parametrize(("cls", "kwargs", "expected"), TINY_ENCODERS)
def test_tiny_outputs(
    cls: type[ImageEncoder], kwargs: dict, expected: tuple, images: torch.Tensor
) -> None:
    torch.manual_seed(0)
    encoder = cls(**kwargs)
    embed_dim, _, normalized, params = expected
    out = encoder(images)
    assert out.shape == (2, embed_dim) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert (encoder.embed_dim, encoder.image_size, encoder.normalized) == expected[:3]
    if normalized:
        torch.testing.assert_close(out.norm(dim=-1), torch.ones(2))
    assert count(encoder) == params


def test_encoders_accept_other_resolutions(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    encoder = TinyImageEncoder(image_size=64, channels=(16, 32, 64, 64))
    big = torch.nn.functional.interpolate(images, size=96)
    assert encoder(big).shape == encoder(images).shape == (2, 64)


def test_tiny_encoder_keeps_object_position() -> None:
    """An object moved across the frame must move the embedding (global pooling would not)."""
    torch.manual_seed(0)
    encoder = TinyImageEncoder().eval()
    left = torch.zeros(1, 3, 32, 32)
    left[:, 0, 4:12, 4:12] = 1.0
    right = left.roll(shifts=(16, 16), dims=(2, 3))
    with torch.no_grad():
        similarity = (encoder(left) * encoder(right)).sum()
        same = (encoder(left) * encoder(left.clone())).sum()
    assert same == pytest.approx(1.0)
    assert similarity < 0.9


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"channels": ()}, "channels"),
        ({"channels": (12, 24)}, "channels"),
        ({"image_size": 8}, "image_size"),
    ],
)
def test_tiny_encoder_rejects_bad_shapes(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        TinyImageEncoder(**kwargs)


PAPER_ENCODERS = [
    # Sound2Vision §3.2: ResNet-50 trunk without fc, 2048-d.
    pytest.param(ResNetImageEncoder, {"preset": "paper"}, (2048, 224, 23_508_032), id="resnet50"),
    # ViT-L/14 image tower with its 768-d projection, in both libraries.
    pytest.param(
        OpenCLIPImageEncoder, {"preset": "paper"}, (768, 224, 303_966_208), id="open_clip"
    ),
    pytest.param(HFCLIPImageEncoder, {"preset": "paper"}, (768, 224, 303_966_208), id="hf_clip"),
    pytest.param(TimmImageEncoder, {"model_name": "resnet50"}, (2048, 224, 23_508_032), id="timm"),
]


@pytest.mark.parametrize(("cls", "kwargs", "expected"), PAPER_ENCODERS)
def test_paper_shapes_on_meta(cls: type[ImageEncoder], kwargs: dict, expected: tuple) -> None:
    with torch.device("meta"):
        encoder = cls(**kwargs)
        out = encoder.forward(torch.empty(1, 3, expected[1], expected[1]))
    assert (encoder.embed_dim, encoder.image_size, count(encoder)) == expected
    assert out.shape == (1, expected[0])


def test_resnet_trunk_takes_torchvision_state_dicts() -> None:
    """torchvision's parameter names are what SwAV and IMAGENET1K weights use."""
    import torchvision

    with torch.device("meta"):
        source = torchvision.models.resnet50().state_dict()
        trunk = build_resnet_trunk("paper")
    del source["fc.weight"], source["fc.bias"]
    assert set(trunk.state_dict()) == set(source)
    assert all(trunk.state_dict()[k].shape == v.shape for k, v in source.items())


def test_timm_rejects_unknown_architecture() -> None:
    with pytest.raises(ConfigError, match="model_name"):
        TimmImageEncoder(model_name="no_such_net")


def test_open_clip_rejects_unknown_architecture() -> None:
    with pytest.raises(ConfigError, match="model_name"):
        OpenCLIPImageEncoder(model_name="ViT-Nope")


def test_hf_clip_normalize_option(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    encoder = HFCLIPImageEncoder(preset="tiny", normalize=True)
    assert encoder.normalized
    torch.testing.assert_close(encoder(images).norm(dim=-1), torch.ones(2))
