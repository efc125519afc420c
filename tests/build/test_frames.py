"""Frame selection on world clips where the right frame is known: the object shows only at 6 s."""

import math
import pickle

import pytest
import torch
from video_fixtures import ClipSpec, scene_clip

from a2i.build.frames import AVCorrelationFrame, CLIPBestFrame, MidFrame, centred_windows
from a2i.encoders.audio.beats import BEATsAudioEncoder
from a2i.encoders.audio.resnet_spectrogram import SpectrogramResNet
from a2i.encoders.image.scorers import CLIPScorer, ImageClassifier
from a2i.errors import ConfigError
from a2i.synth.eval_backbones import AUDIO_TOWER
from a2i.synth.world import SceneSpec, SyntheticWorld

OBJECT_SECOND = 6
STAR, BAR = 2, 5
RATE = 16000


def world_clip(world_class: int, sound_class: int):
    """10 frames at 1 fps of one scene; background only except at 6 s; 10 s of a class's sound."""
    world = SyntheticWorld(image_size=64, clip_seconds=10.0, seed=3)
    spec = SceneSpec(sources=(world_class,), gains_db=(6.0,), reverb=False, seed=11)
    visible = (OBJECT_SECOND, OBJECT_SECOND + 1)
    frames, _, times = scene_clip(world, spec, ClipSpec(world_class, fps=1.0, visible=visible))
    sound = world.render_audio(SceneSpec((sound_class,), (6.0,), reverb=False, seed=11))
    uint8 = frames.mul(255).round().byte().permute(0, 2, 3, 1).contiguous()
    return uint8, torch.tensor(times, dtype=torch.float64), sound, world.classes[world_class]


@pytest.fixture(scope="module")
def clip():
    return world_clip(STAR, STAR)


@pytest.fixture(scope="module")
def scorer():
    return CLIPScorer(preset="tiny", pretrained="tiny/eval/clip.safetensors")


@pytest.fixture(scope="module")
def classifier():
    return ImageClassifier(preset="tiny", pretrained="tiny/eval/classifier.safetensors")


@pytest.fixture(scope="module")
def tower():
    return SpectrogramResNet(
        **AUDIO_TOWER, pretrained="tiny/eval/audio_tower.safetensors", freeze=True
    )


def test_mid_frame_takes_the_middle(clip):
    frames, times, audio, caption = clip
    choice = MidFrame().select(frames, times, audio, RATE, STAR, caption)
    assert choice.index == 5 and math.isnan(choice.score) and choice.keep
    assert MidFrame().select(frames, times, audio[:0], RATE, STAR, caption).index == 4


def test_windows_stay_inside_the_clip():
    audio = torch.arange(10.0)
    windows = centred_windows(audio, torch.tensor([0.0, 5.0, 9.0]), 1, 4.0)
    assert windows.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert centred_windows(audio[:2], torch.tensor([0.0]), 1, 4.0).tolist() == [[0, 0, 0, 1]]


def test_clip_best_frame_finds_the_object(clip, scorer):
    frames, times, audio, caption = clip
    selector = CLIPBestFrame(scorer)
    choice = pickle.loads(pickle.dumps(selector)).select(frames, times, audio, RATE, 2, caption)
    assert choice.index == OBJECT_SECOND and choice.keep and choice.score > 0.5


def test_disagreement_filter_keeps_agreeing_clips_and_drops_others(clip, scorer, classifier, tower):
    selector = CLIPBestFrame(scorer, classifier=classifier, audio_classifier=tower)
    selector.setup("cpu")
    frames, times, audio, caption = clip
    agreed = selector.select(frames, times, audio, RATE, STAR, caption)
    assert agreed.index == OBJECT_SECOND and agreed.keep
    frames, times, barking, caption = world_clip(STAR, BAR)
    vetoed = selector.select(frames, times, barking, RATE, STAR, caption)
    assert vetoed.index == OBJECT_SECOND and not vetoed.keep
    assert "sees 'a yellow star'" in vetoed.reason and "hears 'a black bar'" in vetoed.reason


def test_incompatible_classifiers_are_config_errors(scorer, classifier, tower):
    audioset = BEATsAudioEncoder(preset="tiny", clip_seconds=1.0, freeze=True)
    with pytest.raises(ConfigError, match=r"527 classes .* predicts 10"):
        CLIPBestFrame(scorer, classifier=classifier, audio_classifier=audioset).setup()
    narrow = SpectrogramResNet(preset="tiny", embed_dim=32, clip_seconds=1.0)
    with pytest.raises(ConfigError, match="32-d"):
        CLIPBestFrame(scorer, classifier=classifier, audio_classifier=narrow).setup()
    with pytest.raises(ConfigError, match="give both or neither"):
        CLIPBestFrame(scorer, classifier=classifier)
    with pytest.raises(ConfigError, match="caption"):
        CLIPBestFrame(scorer, prompt="a photo")


def test_audio_visual_correlation_finds_the_object(clip, scorer, tower):
    frames, times, audio, _ = clip
    selector = AVCorrelationFrame(tower, scorer, window_seconds=4.0)
    selector.setup("cpu")
    assert selector.windows(audio, times, RATE).shape == (10, 4 * RATE)
    choice = selector.select(frames, times, audio, RATE, -1, "")
    assert choice.index == OBJECT_SECOND and choice.keep
    with pytest.raises(ConfigError, match="8000 Hz"):
        selector.select(frames, times, audio[::2], 8000, -1, "")
    with pytest.raises(ConfigError, match="32-d"):
        AVCorrelationFrame(SpectrogramResNet(preset="tiny", embed_dim=32), scorer).setup()
