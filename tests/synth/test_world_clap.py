"""The world's tiny CLAP: its texts, a few training steps end to end, weights small enough to ship."""

from __future__ import annotations

import torch

from a2i.encoders.audio.clap import ClapEncoder
from a2i.pretrained import save_module
from a2i.synth.world import WORLD_CLASSES, SyntheticWorld
from a2i.synth.world_clap import (
    CLIP_SECONDS,
    evaluate,
    render_sounds,
    train_world_clap,
    world_texts,
)


def test_world_texts_name_every_class_dry_and_in_a_room():
    texts = world_texts()
    assert len(texts) == 2 * len(WORLD_CLASSES) == len(set(texts))
    assert texts[0] == "a red circle" and texts[len(WORLD_CLASSES)] == "a red circle in a room"


def test_a_few_training_steps_give_a_frozen_clap_that_ships_under_2_mb(tmp_path):
    clap, report = train_world_clap(
        steps=3, batch_size=8, train_clips=16, test_clips=8, lr=1e-3, seed=0
    )
    assert clap.frozen and not any(p.requires_grad for p in clap.parameters())
    for value in (report.text_accuracy, report.class_accuracy, report.room_accuracy):
        assert 0.0 <= value <= 1.0
    path = tmp_path / "world.safetensors"
    save_module(clap, path, dtype=torch.float16)
    assert path.stat().st_size < 2e6
    loaded = ClapEncoder(preset="tiny", pretrained=str(path))
    assert loaded.recipe()["weights_sha1"]


def test_the_shipped_world_clap_names_held_out_world_sounds():
    clap = ClapEncoder(preset="tiny", pretrained="tiny/clap/world.safetensors")
    world = SyntheticWorld(clip_seconds=CLIP_SECONDS, seed=0, mixture_prob=0.0)
    waves, labels = render_sounds(world, "test", 40)
    report = evaluate(clap, waves, labels)
    assert report.class_accuracy >= 0.9  # 1.000 on 400 held-out clips when it was trained
