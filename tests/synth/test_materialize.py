from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from a2i.audio.io import read_audio
from a2i.data.manifest import ManifestDataModule, ManifestDataset, read_manifest
from a2i.errors import ConfigError
from a2i.synth.materialize import materialize_world
from a2i.synth.world import WORLD_CLASSES, SyntheticWorld

WORLD = SyntheticWorld(image_size=32, clip_seconds=1.0, mixture_prob=0.5, reverb_prob=0.5)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("world")
    materialize_world(root, sizes={"train": 4, "val": 1, "test": 2}, world=WORLD)
    return root


def test_writes_files_manifest_and_classes(dataset_root: Path) -> None:
    records = read_manifest(dataset_root)
    assert [r.key for r in records] == [f"train/{i:06d}" for i in range(4)] + [
        "val/000000",
        "test/000000",
        "test/000001",
    ]
    classes = json.loads((dataset_root / "classes.json").read_text())
    assert classes == [c.caption for c in WORLD_CLASSES]
    world = WORLD
    for record in records:
        split, index = record.key.split("/")
        spec = world.sample_spec(split, int(index))
        assert record.audio == f"audio/{split}/{index}.wav"
        assert record.image == f"images/{split}/{index}.png"
        assert (dataset_root / record.audio).is_file() and (dataset_root / record.image).is_file()
        assert record.label == spec.sources[0] and record.caption == classes[record.label]
        assert record.meta["sources"] == list(spec.sources)
        assert record.meta["gains_db"] == list(spec.gains_db)
        assert record.meta["reverb"] == spec.reverb
        assert record.meta["sizes"] == pytest.approx(world.layout(spec).sizes, abs=1e-6)


def test_reads_back_through_the_manifest_dataset(dataset_root: Path) -> None:
    world = WORLD
    dataset = ManifestDataset(
        dataset_root, "test", sample_rate=16000, clip_seconds=1.0, image_size=32
    )
    assert len(dataset) == 2
    item = dataset[1]
    sample = world.render(world.sample_spec("test", 1))
    assert item["key"] == "test/000001" and item["label"] == sample.label
    assert torch.allclose(item["audio"], sample.audio, atol=1 / 2**15 + 1e-6)  # 16-bit wav
    assert torch.allclose(item["image"], sample.image, atol=1 / 255 + 1e-6)  # 8-bit png
    datamodule = ManifestDataModule(
        str(dataset_root), batch_size=2, clip_seconds=1.0, image_size=32
    )
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["audio"].shape == (2, 16000) and batch["image"].shape == (2, 3, 32, 32)


def test_refuses_a_non_empty_folder_unless_overwrite(dataset_root: Path, tmp_path: Path) -> None:
    with pytest.raises(FileExistsError, match="not empty"):
        materialize_world(dataset_root, sizes={"val": 1}, world=WORLD)
    (tmp_path / "note.txt").write_text("keep me")
    materialize_world(tmp_path, sizes={"val": 1}, overwrite=True, world=WORLD)
    assert (tmp_path / "note.txt").read_text() == "keep me"
    assert [r.key for r in read_manifest(tmp_path)] == ["val/000000"]


def test_audio_only_writes_no_images(tmp_path: Path) -> None:
    materialize_world(tmp_path, sizes={"test": 2}, audio_only=True, world=WORLD)
    records = read_manifest(tmp_path)
    assert all(r.image is None for r in records)
    assert not (tmp_path / "images").exists()


def test_mp4_holds_moving_frames_and_the_sound(tmp_path: Path) -> None:
    materialize_world(tmp_path, sizes={"val": 1}, mp4=True, video_fps=4, world=WORLD)
    record = read_manifest(tmp_path)[0]
    video = tmp_path / record.meta["video"]
    with av.open(str(video)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (32, 32, 3)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).max() > 50  # it moved
    sound = read_audio(video, 16000)
    assert sound.shape[0] >= 16000 and sound.abs().max() > 0.001


def test_bad_sizes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="training"):
        materialize_world(tmp_path, sizes={"training": 1})
    with pytest.raises(ConfigError, match=">= 0"):
        materialize_world(tmp_path, sizes={"train": -1})
