"""A tiny image collection (SAM layout), an audio pool folder and captions, written once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from PIL import Image

from a2i.encoders.audio.clap import ClapEncoder
from a2i.pretrained import save_module

POOL_SOUNDS = {
    "dog/bark.wav": 7.0,
    "rain/rain.wav": 3.0,
    "car/engine.wav": 12.0,
    "bird/chirp.wav": 0.3,
    "silence/quiet.wav": 2.0,
}
CAPTIONS = [
    "a dog and rain",
    "a car with a bird",
    "a bird",
    "a logo of a car",
    "a dog, a car and a bird",
    "rain on a street sign",
]


def write_pool(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for index, (name, seconds) in enumerate(POOL_SOUNDS.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(round(seconds * 16000)) / 16000
        wave = 0.1 * np.sin(2 * np.pi * (200 + 150 * index) * t)
        wave = wave + 0.02 * rng.standard_normal(len(t))
        if name.startswith("silence"):
            wave = 0 * wave
        sf.write(path, wave.astype(np.float32), 16000)
    (root / "broken.wav").write_bytes(b"RIFF but not audio")
    return root


def write_images(root: Path, count: int) -> dict[str, str]:
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    captions = {}
    for index in range(count):
        pixels = (rng.random((24, 32, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"sa_{index}.jpg")
        (root / f"sa_{index}.json").write_text("{}")
        captions[f"sa_{index}"] = CAPTIONS[index % len(CAPTIONS)]
    return captions


@pytest.fixture(scope="session")
def sonify_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pool/`` (5 sounds + 1 broken file), ``images/`` (12 SAM images), ``captions.json`` and
    ``clap.safetensors`` (a tiny CLAP with seeded random weights: every run uses the same)."""
    root = tmp_path_factory.mktemp("sonify")
    torch.manual_seed(0)
    save_module(ClapEncoder(preset="tiny"), root / "clap.safetensors")
    write_pool(root / "pool")
    captions = write_images(root / "images", 12)
    (root / "captions.json").write_text(json.dumps(captions))
    return root


def sonify_config(inputs: Path, out: Path, config_name: str | None = None, **overrides) -> Path:
    """A config whose data section sonifies ``inputs`` into ``out`` with the tiny CLAP."""
    init_args = {
        "images": str(inputs / "images"),
        "prepared": str(out),
        "layout": "sam",
        "pools": [{"class_path": "a2i.build.sonify.pool.AudioFolderPool",
                   "init_args": {"root": str(inputs / "pool")}}],
        "concepts": [{"class_path": "a2i.build.sonify.concepts.CaptionConcepts",
                      "init_args": {"captions": str(inputs / "captions.json")}}],
        "clap": {"class_path": "a2i.encoders.audio.clap.ClapEncoder",
                 "init_args": {"preset": "tiny", "pretrained": str(inputs / "clap.safetensors")}},
        "features": [{"class_path": "a2i.build.sonify.features.AudioTokensFeature",
                      "init_args": {"encoder": {
                          "class_path": "a2i.encoders.audio.ast.ASTAudioEncoder",
                          "init_args": {"preset": "tiny", "freeze": True}}}}],
        "top_k": 2,
        "shard_size": 1,
        "val_fraction": 0.2,
        "test_fraction": 0.2,
        "frame_size": 16,
        "image_size": 16,
        "batch_size": 2,
        **overrides,
    }  # fmt: skip
    path = out.parent / f"{config_name or out.name}.yaml"
    path.write_text(yaml.safe_dump({"data": {
        "class_path": "a2i.data.sonify.datamodule.SonifiedImagesDataModule",
        "init_args": init_args,
    }}))  # fmt: skip
    return path


@pytest.fixture(scope="session")
def make_config():
    """:func:`sonify_config` as a fixture (test modules do not import the conftest)."""
    return sonify_config
