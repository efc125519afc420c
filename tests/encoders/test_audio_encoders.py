from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import signal

from a2i.audio.features import SPECTROGRAM_PRESETS, LogSpectrogram
from a2i.cli import main
from a2i.encoders.audio.ast import ASTAudioEncoder
from a2i.encoders.audio.resnet_spectrogram import SpectrogramResNet
from a2i.errors import ConfigError
from a2i.interfaces import FixedWindowAudioEncoder

ROOT = Path(__file__).resolve().parents[2]


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv(k: int, c_in: int, c_out: int, bias: bool = False) -> int:
    return k * k * c_in * c_out + (c_out if bias else 0)


def linear(d_in: int, d_out: int) -> int:
    return d_in * d_out + d_out


def resnet_basic_count(layers, channels, in_chans=1, stem=64) -> int:
    """Parameters of a timm ResNet of BasicBlocks (convs without bias, BatchNorm = 2 per channel).

    timm's plain stem is a 7×7 conv to 64 channels whatever the preset's channels; a block
    gets a 1×1 projection shortcut whenever its width or stride changes (every stage but a
    first one that keeps 64 channels).
    """
    total, width = conv(7, in_chans, stem) + 2 * stem, stem
    for stage, (blocks, out) in enumerate(zip(layers, channels, strict=True)):
        for block in range(blocks):
            total += conv(3, width, out) + conv(3, out, out) + 4 * out
            if block == 0 and (stage > 0 or width != out):
                total += conv(1, width, out) + 2 * out
            width = out
    return total


def ast_count(hidden, layers, intermediate, patches, patch=16) -> int:
    """Parameters of transformers' ASTModel: patch embedding, 2 class tokens, positions, blocks."""
    embeddings = conv(patch, 1, hidden, bias=True) + 2 * hidden + (patches + 2) * hidden
    block = 4 * linear(hidden, hidden) + linear(hidden, intermediate) + linear(intermediate, hidden)
    return embeddings + layers * (block + 2 * 2 * hidden) + 2 * hidden  # + layer norms


def test_spectrogram_resnet_tiny_outputs(waveforms: torch.Tensor) -> None:
    torch.manual_seed(0)
    encoder = SpectrogramResNet(preset="tiny", embed_dim=64, clip_seconds=4.0)
    out = encoder(waveforms)
    assert out.tokens is None
    assert out.pooled.shape == (2, 64) and out.pooled.dtype == torch.float32
    assert torch.isfinite(out.pooled).all()
    assert (encoder.embed_dim, encoder.sample_rate, encoder.clip_seconds) == (64, 16000, 4.0)
    assert encoder.output == "pooled"
    trunk = resnet_basic_count(layers=(1, 1, 1, 1), channels=(16, 32, 64, 128))
    assert count(encoder.trunk) == trunk
    assert count(encoder) == trunk + linear(128, 64)


def test_spectrogram_resnet_paper_shapes_on_meta() -> None:
    with torch.device("meta"):
        encoder = SpectrogramResNet(preset="paper")
        pooled = encoder(torch.empty(1, 160_000)).pooled
    # Sound2Vision §4.1: 10 s at 16 kHz → 1004×257 log-spectrogram; ResNet-18 + Linear 512→2048.
    assert encoder.front_end.output_shape(160_000) == (1, 1004, 257)
    assert count(encoder.trunk) == 11_170_240  # ResNet-18 on one input channel, no classifier
    assert count(encoder.trunk) == resnet_basic_count((2, 2, 2, 2), (64, 128, 256, 512))
    assert count(encoder) == 11_170_240 + linear(512, 2048)
    assert pooled.shape == (1, 2048)


def test_spectrogram_resnet_rejects_clips_shorter_than_a_frame() -> None:
    with pytest.raises(ConfigError, match="clip_seconds"):
        SpectrogramResNet(preset="tiny", clip_seconds=0.01)


def test_ast_tiny_outputs(waveforms: torch.Tensor) -> None:
    torch.manual_seed(0)
    encoder = ASTAudioEncoder(preset="tiny")
    out = encoder(waveforms)
    assert encoder.output == "both" and encoder.clip_seconds == pytest.approx(4.0)
    assert out.pooled.shape == (2, encoder.embed_dim) == (2, 64)
    # 64 mel bins × 400 frames in non-overlapping 16×16 patches: 4 × 25 patches + 2 class tokens.
    assert out.tokens.shape == (2, 102, encoder.token_dim) == (2, 102, 64)
    assert out.tokens.dtype == torch.float32
    # tiny preset: 4 layers of 64 (MLP 256) over 4 × 25 patches
    assert count(encoder) == ast_count(hidden=64, layers=4, intermediate=256, patches=100)


def test_ast_hidden_layers_are_concatenated(waveforms: torch.Tensor) -> None:
    torch.manual_seed(0)
    encoder = ASTAudioEncoder(preset="tiny", hidden_layers=(2, 4)).eval()
    out = encoder(waveforms)
    assert out.tokens.shape == (2, 102, 128) and encoder.token_dim == 128
    hidden = encoder.model(
        input_values=encoder.front_end(waveforms), output_hidden_states=True
    ).hidden_states
    torch.testing.assert_close(out.tokens[..., :64], hidden[2])
    torch.testing.assert_close(out.tokens[..., 64:], hidden[4])


@pytest.mark.parametrize("layers", [(0,), (5,), ()])
def test_ast_rejects_layers_out_of_range(layers: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match="hidden_layers"):
        ASTAudioEncoder(preset="tiny", hidden_layers=layers)


def test_ast_paper_shapes_on_meta() -> None:
    with torch.device("meta"):
        encoder = ASTAudioEncoder(preset="paper", hidden_layers=(4, 8, 12))
        tokens = encoder.model(input_values=torch.empty(1, 1024, 128)).last_hidden_state
    assert count(encoder) == 86_187_264
    assert count(encoder) == ast_count(hidden=768, layers=12, intermediate=3072, patches=1212)
    assert tokens.shape == (1, 1214, 768)
    assert (encoder.embed_dim, encoder.token_dim) == (768, 3 * 768)
    assert encoder.clip_seconds == pytest.approx(10.24)
    assert (encoder.front_end.target_length, encoder.front_end.num_mel_bins) == (1024, 128)


@pytest.mark.parametrize(
    ("seconds", "heard_time_patches"), [(1.0, 7), (2.0, 13), (4.0, 25), (5.0, 25)]
)
def test_ast_reports_its_token_grid_and_the_tokens_that_hear_a_short_clip(
    seconds: float, heard_time_patches: int
) -> None:
    encoder = ASTAudioEncoder(preset="tiny")
    assert isinstance(encoder, FixedWindowAudioEncoder)
    assert encoder.token_count == 102 and encoder.patch_grid == (4, 25)
    heard = encoder.heard_tokens(round(seconds * 16000))
    assert heard.shape == (102,) and heard.dtype == torch.bool and bool(heard[:2].all())
    # frequency-major patches: each of the 4 frequency rows hears the same leading time patches
    expected = torch.arange(25) < heard_time_patches
    assert torch.equal(heard[2:].view(4, 25), expected.expand(4, -1))
    with torch.device("meta"):
        paper = ASTAudioEncoder(preset="paper")
    assert paper.token_count == 1214 and int(paper.heard_tokens(5 * 16000).sum()) == 602


def test_ast_loads_a_local_transformers_directory(tmp_path, waveforms: torch.Tensor) -> None:
    torch.manual_seed(0)
    source = ASTAudioEncoder(preset="tiny").eval()
    source.model.save_pretrained(tmp_path / "ast")
    loaded = ASTAudioEncoder(preset="paper", pretrained=str(tmp_path / "ast")).eval()
    # The checkpoint's config wins over the preset, front end included.
    assert loaded.front_end.target_length == 400 and loaded.embed_dim == 64
    torch.testing.assert_close(loaded(waveforms).tokens, source(waveforms).tokens)


def sound2scene_official_spectrogram(clip: np.ndarray) -> np.ndarray:
    """The released Sound2Scene input, from its description: 10 s tiled, scipy PSD, per-clip z."""
    tiled = np.clip(np.tile(clip, 10)[:160000], -1.0, 1.0)
    _, _, power = signal.spectrogram(tiled, 16000, nperseg=512, noverlap=353)
    log = np.log(power + 1e-7)
    return (log - log.mean()) / (log.std() + 1e-9)


def test_sound2scene_front_end_matches_the_released_preprocessing() -> None:
    clip = 0.3 * np.random.default_rng(0).standard_normal(37000)  # 2.3 s: tiled to 10 s
    padded = torch.zeros(1, 160000)
    padded[0, : len(clip)] = torch.from_numpy(clip)  # a2i zero-pads short inputs
    front_end = LogSpectrogram(**SPECTROGRAM_PRESETS["sound2scene"])
    image = front_end(padded)
    assert image.shape == (1, 1, 257, 1004) == (1, *front_end.output_shape(160000))
    expected = torch.from_numpy(sound2scene_official_spectrogram(clip)).float()
    torch.testing.assert_close(image[0, 0], expected, atol=1e-4, rtol=0)


def test_per_clip_standardisation_keeps_loudness_through_the_log_floor() -> None:
    """A gain shifts every log bin alike, which per-clip standardisation removes, except that
    the 1e-7 floor is fixed: bins near it do not move, so the image still changes."""
    quiet = 0.01 * torch.randn(1, 160000, generator=torch.Generator().manual_seed(0))
    with_floor = LogSpectrogram(**SPECTROGRAM_PRESETS["sound2scene"])
    assert (with_floor(10 * quiet) - with_floor(quiet)).abs().mean() > 0.1
    without_floor = LogSpectrogram(**SPECTROGRAM_PRESETS["sound2scene"], eps=1e-30)
    assert (without_floor(10 * quiet) - without_floor(quiet)).abs().mean() < 1e-4


def sound2scene_layout() -> dict[str, tuple[int, ...]]:
    """Names and shapes of ``sound2scene.pth``: ``AVENet.audnet``, a torchvision-style ResNet-18
    on one channel with BatchNorm after every conv and ``fc`` 512 → 2048 (Sound2Scene
    ``models/resnet.py``, ``model.py``)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv_bn(conv: str, bn: str, c_out: int, c_in: int, k: int) -> None:
        shapes[f"audnet.{conv}.weight"] = (c_out, c_in, k, k)
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"audnet.{bn}.{name}"] = (c_out,)
        shapes[f"audnet.{bn}.num_batches_tracked"] = ()

    conv_bn("conv1", "bn1", 64, 1, 7)
    width = 64
    for stage, planes in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            prefix = f"layer{stage}.{block}"
            conv_bn(f"{prefix}.conv1", f"{prefix}.bn1", planes, width if block == 0 else planes, 3)
            conv_bn(f"{prefix}.conv2", f"{prefix}.bn2", planes, planes, 3)
            if block == 0 and width != planes:
                conv_bn(f"{prefix}.downsample.0", f"{prefix}.downsample.1", planes, width, 1)
        width = planes
    shapes["audnet.fc.weight"] = (2048, 512)
    shapes["audnet.fc.bias"] = (2048,)
    return shapes


def released_checkpoint(tmp_path, drop: str | None = None, extra: str | None = None):
    generator = torch.Generator().manual_seed(0)
    state = {
        key: torch.randint(0, 100, shape, generator=generator)
        if key.endswith("num_batches_tracked")
        else torch.rand(shape, generator=generator) + 0.5
        for key, shape in sound2scene_layout().items()
        if key != drop
    }
    if extra is not None:
        state[extra] = torch.zeros(3)
    path = tmp_path / "sound2scene.pth"
    torch.save(state, path)
    return path, state


def test_released_sound2scene_encoder_loads_every_tensor(tmp_path) -> None:
    path, state = released_checkpoint(tmp_path)
    encoder = SpectrogramResNet(pretrained=str(path)).eval()
    assert encoder.front_end_name == "sound2scene"
    own = encoder.state_dict()
    for key, value in state.items():
        name = key.removeprefix("audnet.")
        name = "project." + name[3:] if name.startswith("fc.") else "trunk." + name
        assert torch.equal(own[name], value), key
    assert len(state) == sum(1 for key in own if key.startswith(("trunk.", "project.")))
    with torch.no_grad():
        pooled = encoder(0.1 * torch.randn(1, 160000)).pooled
    assert pooled.shape == (1, 2048) and (pooled >= 0).all()  # the released ReLU output


@pytest.mark.parametrize(
    ("drop", "extra", "named"),
    [
        ("audnet.layer4.1.bn2.running_var", None, "trunk.layer4.1.bn2.running_var"),
        (None, "audnet.layer5.0.conv1.weight", "audnet.layer5.0.conv1.weight"),
    ],
)
def test_released_sound2scene_checkpoint_with_a_wrong_key_names_it(
    tmp_path, drop, extra, named
) -> None:
    path, _ = released_checkpoint(tmp_path, drop=drop, extra=extra)
    with pytest.raises(ConfigError, match=re.escape(named)):
        SpectrogramResNet(pretrained=str(path))


def test_released_sound2scene_checkpoint_in_the_tiny_preset_names_the_shape(tmp_path) -> None:
    path, _ = released_checkpoint(tmp_path)
    with pytest.raises(ConfigError, match=r"audnet\.layer1\.0\.conv1\.weight.*preset='paper'"):
        SpectrogramResNet(preset="tiny", pretrained=str(path))


def test_paper_config_with_the_released_encoder_parses_and_names_the_missing_file(
    tmp_path, monkeypatch, capsys
) -> None:
    """The README's `a2i predict ... audio_encoder.init_args.pretrained sound2scene.pth`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("A2I_CACHE", str(tmp_path / "cache"))
    override = ["--model.init_args.audio_encoder.init_args.pretrained", "sound2scene.pth"]
    config = ["--config", str(ROOT / "configs" / "sound2vision_gan.yaml"), *override]
    with pytest.raises(SystemExit) as info:
        main(["predict", *config, "--print_config"])
    assert info.value.code == 0
    assert "pretrained: sound2scene.pth" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["fit", *config])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "'sound2scene.pth'" in err and "SpectrogramResNet.pretrained" in err
    assert "postech-ami/Sound2Scene" in err
