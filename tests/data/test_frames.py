"""Frame selection on clips where the right frame is known: the object is on screen at 6 s only."""

import pytest
import torch

from a2i.data.frames import AVCorrelationFrame, CLIPBestFrame, MidFrame
from a2i.encoders.audio.resnet_spectrogram import SpectrogramResNet
from a2i.errors import ConfigError
from a2i.metrics.backbones import CLIPScorer, ImageClassifier
from a2i.synth.video_datasets import ClipSpec, scene_clip
from a2i.synth.world import SceneSpec, SyntheticWorld

OBJECT_SECOND = 6


@pytest.fixture(scope="module")
def clip():
    """10 frames at 1 fps of a red-triangle-like world scene; the object shows only at 6 s."""
    world = SyntheticWorld(image_size=64, clip_seconds=10.0, seed=3)
    spec = SceneSpec(sources=(2,), gains_db=(6.0,), reverb=False, seed=11)
    frames, audio, times = scene_clip(
        world, spec, ClipSpec(2, fps=1.0, visible=(OBJECT_SECOND, OBJECT_SECOND + 1))
    )
    uint8 = frames.mul(255).round().byte().permute(0, 2, 3, 1).contiguous()
    return uint8, torch.tensor(times, dtype=torch.float64), audio, world.classes[2]


@pytest.fixture(scope="module")
def scorer():
    return CLIPScorer(preset="tiny", pretrained="tiny/eval/clip.safetensors")


def test_mid_frame_takes_the_middle(clip):
    frames, times, audio, caption = clip
    assert MidFrame().select(frames, times, audio, 16000, 2, caption).index == 5


def test_clip_best_frame_finds_the_object(clip, scorer):
    frames, times, audio, caption = clip
    selector = CLIPBestFrame(scorer, prompt="a photo of a {caption} on grass")
    selector.setup("cpu")
    choice = selector.select(frames, times, audio, 16000, 2, caption)
    assert choice.index == OBJECT_SECOND and choice.keep


def test_disagreeing_classifier_drops_the_clip(clip, scorer):
    frames, times, audio, caption = clip
    classifier = ImageClassifier(preset="tiny", pretrained="tiny/eval/classifier.safetensors")
    selector = CLIPBestFrame(scorer, image_classifier=classifier)
    selector.setup("cpu")
    assert selector.select(frames, times, audio, 16000, 2, caption).keep
    other = SyntheticWorld().classes[5]
    vetoed = selector.select(frames, times, audio, 16000, 5, other)
    assert not vetoed.keep and other in vetoed.reason


def test_audio_visual_correlation_finds_the_object(clip, scorer):
    frames, times, audio, caption = clip
    tower = SpectrogramResNet(
        preset="tiny",
        embed_dim=64,
        clip_seconds=4.0,
        n_fft=256,
        hop_length=320,
        pretrained="tiny/eval/audio_tower.safetensors",
    )
    selector = AVCorrelationFrame(tower.freeze(), scorer)
    selector.setup("cpu")
    assert selector.windows(audio, times, 16000).shape == (10, 64000)
    assert selector.select(frames, times, audio, 16000, 2, caption).index == OBJECT_SECOND
    with pytest.raises(ConfigError, match="8000 Hz"):
        selector.select(frames, times, audio[::2], 8000, 2, caption)
