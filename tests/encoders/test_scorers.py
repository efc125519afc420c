"""Scoring encoders: tiny presets, the shipped world weights, published-checkpoint errors."""

import pytest
import torch

from a2i.encoders.audio.resnet_spectrogram import SpectrogramResNet
from a2i.encoders.image.scorers import CLIPScorer, ImageClassifier
from a2i.errors import CheckpointNotFoundError, ConfigError
from a2i.pretrained import save_module
from a2i.synth.eval_backbones import AUDIO_TOWER
from a2i.synth.world import WORLD_CLASSES, SyntheticWorld


@pytest.fixture(scope="module")
def shipped():
    return (
        CLIPScorer(preset="tiny", pretrained="tiny/eval/clip.safetensors"),
        ImageClassifier(preset="tiny", pretrained="tiny/eval/classifier.safetensors"),
    )


def test_tiny_clip_embeds_any_image_size_and_texts_on_the_unit_sphere():
    scorer = CLIPScorer(preset="tiny")
    assert scorer.frozen and scorer.embed_dim == 64 and scorer.image_size == 32
    for size in (32, 64):
        images = scorer.embed_images(torch.rand(2, 3, size, size))
        assert images.shape == (2, 64)
        assert torch.allclose(images.norm(dim=-1), torch.ones(2), atol=1e-5)
    texts = scorer.embed_texts(["a photo of a red circle", "a photo of a blue triangle"])
    assert texts.shape == (2, 64)
    alone = scorer.embed_texts(["a photo of a blue triangle"])
    assert torch.allclose(alone[0], texts[1], atol=1e-6)  # independent of the batch


def test_tiny_classifier_has_one_output_per_given_class_name():
    classifier = ImageClassifier(preset="tiny", class_names=["one", "two", "three"])
    images = torch.rand(3, 3, 48, 48)
    assert classifier.logits(images).shape == (3, 3)
    assert classifier.features(images).shape == (3, classifier.num_features)
    assert classifier.class_names == ["one", "two", "three"]
    with pytest.raises(ConfigError, match="class_names"):
        ImageClassifier(preset="tiny")  # no names, no file that records them


def test_classifier_file_records_its_class_names(shipped, tmp_path):
    _, classifier = shipped
    assert classifier.class_names == [c.caption for c in WORLD_CLASSES]
    tiny = ImageClassifier(preset="tiny", class_names=["one", "two"])
    save_module(tiny, tmp_path / "c.safetensors", metadata=tiny.file_metadata())
    loaded = ImageClassifier(preset="tiny", pretrained=str(tmp_path / "c.safetensors"))
    assert loaded.class_names == ["one", "two"]


def test_paper_classifier_defaults_to_imagenet_names_and_needs_names_otherwise():
    with torch.device("meta"):
        classifier = ImageClassifier("test_resnet")  # 1000 classes: ImageNet names
    assert len(classifier.class_names) == 1000 and classifier.class_names[1] == "goldfish"


def test_shipped_world_backbones_read_held_out_scenes(shipped):
    clip, classifier = shipped
    world = SyntheticWorld(image_size=32, clip_seconds=1.0)
    specs = [world.sample_spec("test", 5000 + i) for i in range(60)]
    images = torch.stack([world.render_image(s) for s in specs])
    labels = torch.tensor([s.sources[0] for s in specs])
    prompts = clip.embed_texts([f"a photo of {c.caption}" for c in WORLD_CLASSES])
    zero_shot = (clip.embed_images(images) @ prompts.T).argmax(1)
    assert (zero_shot == labels).float().mean() >= 0.9
    assert (classifier.logits(images).argmax(1) == labels).float().mean() >= 0.95


def test_shipped_audio_tower_lands_in_the_tiny_clip_image_space(shipped):
    clip, _ = shipped
    tower = SpectrogramResNet(
        **AUDIO_TOWER, pretrained="tiny/eval/audio_tower.safetensors", freeze=True
    )
    world = SyntheticWorld(image_size=32, clip_seconds=4.0)
    specs = [world.sample_spec("test", 5000 + i) for i in range(100)]
    audio = torch.stack([world.render_audio(s) for s in specs])
    labels = torch.tensor([s.sources[0] for s in specs])
    with torch.no_grad():
        audio_z = tower(audio).pooled
    assert audio_z.shape == (100, clip.embed_dim)
    prompts = clip.embed_texts([f"a photo of {c.caption}" for c in WORLD_CLASSES])
    # Zero-shot through CLIP's text tower: the tower was aligned to the image tower only.
    assert ((audio_z @ prompts.T).argmax(1) == labels).float().mean() >= 0.75


def test_clip_paper_preset_parameter_count_on_meta():
    with torch.device("meta"):
        scorer = CLIPScorer("ViT-B-32")
    assert sum(p.numel() for p in scorer.parameters()) == 151_277_313


def test_published_checkpoints_missing_offline_are_clear_errors():
    with pytest.raises(CheckpointNotFoundError, match="ViT-B-32/openai"):
        CLIPScorer("ViT-B-32", pretrained="openai")
    with pytest.raises(CheckpointNotFoundError, match=r"CLIPScorer\.pretrained"):
        CLIPScorer("ViT-B-32", pretrained="/nowhere/clip.bin")
    with pytest.raises(CheckpointNotFoundError, match=r"ImageClassifier\.pretrained"):
        ImageClassifier("vit_base_patch16_224", pretrained="augreg2_in21k_ft_in1k")
