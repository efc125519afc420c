"""Published-weight loaders: one clear error when a checkpoint is missing, exact loads otherwise."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import timm
import torch
from torch import nn

from a2i.encoders.audio.ast import ASTAudioEncoder
from a2i.encoders.audio.resnet_spectrogram import SpectrogramResNet
from a2i.encoders.image.clip import HFCLIPImageEncoder, OpenCLIPImageEncoder
from a2i.encoders.image.resnet import ResNetImageEncoder, build_resnet_trunk
from a2i.encoders.image.timm_encoder import TimmImageEncoder
from a2i.encoders.image.tiny import TinyImageEncoder
from a2i.errors import CheckpointNotFoundError, ConfigError
from a2i.pretrained import save_module

MISSING = [
    pytest.param(
        lambda tmp: ASTAudioEncoder(pretrained="MIT/ast-finetuned-audioset-10-10-0.4593"),
        [
            "MIT/ast-finetuned-audioset-10-10-0.4593",
            "ASTAudioEncoder.pretrained",
            "hf download MIT/ast",
        ],
        id="transformers-ast",
    ),
    pytest.param(
        lambda tmp: HFCLIPImageEncoder(pretrained="lambdalabs/sd-image-variations-diffusers"),
        ["lambdalabs/sd-image-variations-diffusers/image_encoder", "HFCLIPImageEncoder.pretrained"],
        id="transformers-clip",
    ),
    pytest.param(
        lambda tmp: OpenCLIPImageEncoder(model_name="ViT-L-14", pretrained="openai"),
        ["ViT-L-14/openai", "OpenCLIPImageEncoder.pretrained", "open_clip"],
        id="open_clip",
    ),
    pytest.param(
        lambda tmp: TimmImageEncoder(model_name="test_resnet", pretrained="r160_in1k"),
        ["test_resnet.r160_in1k", "TimmImageEncoder.pretrained", "timm"],
        id="timm-tag",
    ),
    pytest.param(
        lambda tmp: TimmImageEncoder(model_name="test_resnet", pretrained=f"{tmp}/weights.pth"),
        ["weights.pth", "TimmImageEncoder.pretrained"],
        id="timm-file",
    ),
    pytest.param(
        lambda tmp: ResNetImageEncoder(pretrained=f"{tmp}/swav_800ep_pretrain.pth.tar"),
        [
            "swav_800ep_pretrain.pth.tar",
            "ResNetImageEncoder.pretrained",
            "wget https://dl.fbaipublicfiles",
        ],
        id="swav-file",
    ),
    pytest.param(
        lambda tmp: ResNetImageEncoder(pretrained="IMAGENET1K_V2"),
        ["IMAGENET1K_V2", "ResNetImageEncoder.pretrained", "resnet50-11ad3fa6.pth"],
        id="torchvision",
    ),
    pytest.param(
        lambda tmp: TinyImageEncoder(pretrained=f"{tmp}/stage1.safetensors"),
        ["stage1.safetensors", "TinyImageEncoder.pretrained"],
        id="a2i-image",
    ),
    pytest.param(
        lambda tmp: SpectrogramResNet(preset="tiny", pretrained=f"{tmp}/stage2.safetensors"),
        ["stage2.safetensors", "SpectrogramResNet.pretrained"],
        id="a2i-audio",
    ),
]


@pytest.mark.parametrize(("build", "expected"), MISSING)
def test_missing_checkpoint_raises_one_clear_error(
    build: Callable, expected: list[str], tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty torchvision cache
    monkeypatch.setenv("A2I_CACHE", str(tmp_path / "a2i"))
    with pytest.raises(CheckpointNotFoundError) as caught:
        build(tmp_path)
    for text in expected:
        assert text in str(caught.value)


def random_swav_checkpoint(seed: int) -> tuple[nn.Module, dict]:
    """A ResNet-50 with random weights and the same weights in SwAV's checkpoint layout."""
    torch.manual_seed(seed)
    source = build_resnet_trunk("paper").eval()
    for module in source.modules():  # non-trivial running statistics, so they are checked too
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    state = {f"module.{k}": v.clone() for k, v in source.state_dict().items()}
    state["module.projection_head.0.weight"] = torch.randn(16, 2048)
    state["module.projection_head.0.bias"] = torch.randn(16)
    state["module.prototypes.weight"] = torch.randn(30, 16)
    return source, {"state_dict": state}


def test_swav_checkpoint_loads_the_backbone(tmp_path) -> None:
    source, checkpoint = random_swav_checkpoint(seed=0)
    path = tmp_path / "swav.pth.tar"
    torch.save(checkpoint, path)
    encoder = ResNetImageEncoder(preset="tiny", pretrained=str(path), freeze=True)
    assert encoder.embed_dim == 2048 and encoder.image_size == 224  # published weights fix it
    image = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = source(encoder.preprocess(image))
        torch.testing.assert_close(encoder(image), expected)


def test_swav_checkpoint_missing_backbone_keys_are_named(tmp_path) -> None:
    _, checkpoint = random_swav_checkpoint(seed=0)
    del checkpoint["state_dict"]["module.layer3.1.conv2.weight"]
    path = tmp_path / "broken.pth"
    torch.save(checkpoint["state_dict"], path)  # the published file is a bare state dict
    with pytest.raises(ConfigError, match=r"layer3\.1\.conv2\.weight") as caught:
        ResNetImageEncoder(pretrained=str(path))
    assert "ResNetImageEncoder.pretrained" in str(caught.value)


TINY_MODULES = [
    pytest.param(
        lambda: SpectrogramResNet(preset="tiny", embed_dim=64, clip_seconds=4.0),
        "audio",
        id="spec-resnet",
    ),
    pytest.param(lambda: ASTAudioEncoder(preset="tiny"), "audio", id="ast"),
    pytest.param(lambda: TinyImageEncoder(), "image", id="tiny-cnn"),
    pytest.param(lambda: ResNetImageEncoder(preset="tiny"), "image", id="resnet"),
    pytest.param(lambda: OpenCLIPImageEncoder(preset="tiny"), "image", id="open_clip"),
    pytest.param(lambda: HFCLIPImageEncoder(preset="tiny"), "image", id="hf_clip"),
    pytest.param(lambda: TimmImageEncoder(model_name="test_resnet"), "image", id="timm"),
]


def encode(
    encoder: nn.Module, kind: str, waveforms: torch.Tensor, images: torch.Tensor
) -> torch.Tensor:
    with torch.no_grad():
        if kind == "image":
            return encoder(images)
        return encoder(waveforms).pooled


@pytest.mark.parametrize(("build", "kind"), TINY_MODULES)
def test_freeze_stops_gradients_and_keeps_eval(build: Callable, kind: str) -> None:
    encoder = build()
    encoder.freeze()
    encoder.train()
    assert encoder.frozen
    assert not any(p.requires_grad for p in encoder.parameters())
    assert not any(m.training for m in encoder.modules())


def test_freeze_argument() -> None:
    encoder = TinyImageEncoder(freeze=True).train()
    assert encoder.frozen and not encoder.training
    assert not any(p.requires_grad for p in encoder.parameters())


@pytest.mark.parametrize(("build", "kind"), TINY_MODULES[:-1])
def test_a2i_safetensors_round_trip(
    build: Callable, kind: str, tmp_path, waveforms: torch.Tensor, images: torch.Tensor
) -> None:
    torch.manual_seed(0)
    source = build().eval()
    path = tmp_path / "weights.safetensors"
    save_module(source, path)
    torch.manual_seed(1)  # a different random init, overwritten by the file
    loaded = type(source)(**_constructor_args(source), pretrained=str(path)).eval()
    torch.testing.assert_close(
        encode(loaded, kind, waveforms, images), encode(source, kind, waveforms, images)
    )


def _constructor_args(encoder: nn.Module) -> dict:
    if isinstance(encoder, SpectrogramResNet):
        return {"preset": "tiny", "embed_dim": 64, "clip_seconds": 4.0}
    if isinstance(encoder, TinyImageEncoder):
        return {}
    return {"preset": "tiny"}


def test_timm_local_weights_file(tmp_path, images: torch.Tensor) -> None:
    torch.manual_seed(0)
    source = TimmImageEncoder(model_name="test_resnet").eval()
    path = tmp_path / "test_resnet.pth"
    # A full timm checkpoint, classifier included: timm drops it for num_classes=0.
    torch.save(timm.create_model("test_resnet").state_dict() | source.model.state_dict(), path)
    torch.manual_seed(1)
    loaded = TimmImageEncoder(model_name="test_resnet", pretrained=str(path)).eval()
    torch.testing.assert_close(loaded(images), source(images))


def test_hf_clip_local_directory(tmp_path, images: torch.Tensor) -> None:
    torch.manual_seed(0)
    source = HFCLIPImageEncoder(preset="tiny").eval()
    source.model.save_pretrained(tmp_path / "sd-image-variations" / "image_encoder")
    loaded = HFCLIPImageEncoder(pretrained=str(tmp_path / "sd-image-variations")).eval()
    assert loaded.embed_dim == 64 and loaded.image_size == 32
    torch.testing.assert_close(loaded(images), source(images))


def test_sd_image_variations_preprocesses_as_its_model_card(tmp_path) -> None:
    """lambdalabs' card: Resize((224, 224), bicubic, antialias=False), no crop; others: CLIP's."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from torchvision.transforms.v2 import functional as TF

    torch.manual_seed(0)
    source = HFCLIPImageEncoder(preset="tiny").eval()
    folder = tmp_path / "sd-image-variations-diffusers"
    source.model.save_pretrained(folder / "image_encoder")
    loaded = HFCLIPImageEncoder(pretrained=str(folder)).eval()
    assert (source.resize, loaded.resize) == ("crop", "squash")
    wide = torch.rand(2, 3, 48, 96)
    squashed = TF.resize(wide, [32, 32], TF.InterpolationMode.BICUBIC, antialias=False)
    expected = TF.normalize(squashed, list(OPENAI_DATASET_MEAN), list(OPENAI_DATASET_STD))
    torch.testing.assert_close(loaded.preprocess(wide), expected)
    assert not torch.allclose(source.preprocess(wide), expected, atol=1e-2)
    explicit = HFCLIPImageEncoder(pretrained=str(folder), resize="crop").eval()
    torch.testing.assert_close(explicit(wide), source(wide))
