from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from a2i.data.manifest import (
    ManifestDataModule,
    ManifestDataset,
    ManifestRecord,
    read_classes,
    read_manifest,
    write_manifest,
)
from a2i.errors import AudioDecodeError, DatasetNotFoundError, ManifestError

RATE = 16000


def test_round_trip(tiny_manifest: Path, tmp_path: Path) -> None:
    records = read_manifest(tiny_manifest)
    assert len(records) == 8 and read_classes(tiny_manifest) == ["red", "blue"]
    assert records[0] == ManifestRecord(
        key="train/000",
        split="train",
        audio="audio/train_0.wav",
        image="images/train_0.png",
        label=0,
        caption="a red square",
        meta={"frequency": 300.0},
    )
    extra = ManifestRecord("x", "test", "a.wav", features={"clip": "f/x.safetensors"})
    copy = tmp_path / "copy"
    write_manifest(copy, [*records, extra])
    assert read_manifest(copy) == [*records, extra]
    assert read_classes(copy) is None
    assert "features" not in records[0].to_dict() and extra.to_dict()["image"] is None


def test_write_refuses_overwrite_and_checks_labels(tiny_manifest: Path) -> None:
    records = read_manifest(tiny_manifest)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_manifest(tiny_manifest, records)
    write_manifest(tiny_manifest, records[:2], overwrite=True)
    assert len(read_manifest(tiny_manifest)) == 2
    with pytest.raises(ManifestError, match="only 1 classes"):
        write_manifest(tiny_manifest, records[:2], classes=["red"], overwrite=True)
    with pytest.raises(ManifestError, match="unique"):
        write_manifest(tiny_manifest, [records[0], records[0]], overwrite=True)
    assert not list(tiny_manifest.glob("*.tmp"))


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"key": "b", "split": "train"}', "missing required field 'audio'"),
        ('{"key": "b", "split": "train", "audio": "b.wav", "label": "3"}', "'label' must be int"),
        ('{"key": "b", "split": "training", "audio": "b.wav"}', "'split' must be one of"),
        ('{"key": "b", "split": "train", "audio": "b.wav", "lable": 3}', "unknown field"),
        ('{"key": "a", "split": "train", "audio": "b.wav"}', "already used on line 1"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    good = json.dumps({"key": "a", "split": "train", "audio": "a.wav"})
    (tmp_path / "manifest.jsonl").write_text(f"{good}\n\n{bad_line}\n")
    with pytest.raises(ManifestError, match=message) as caught:
        read_manifest(tmp_path)
    assert f"{tmp_path / 'manifest.jsonl'}:3:" in str(caught.value)


def test_missing_manifest_and_bad_classes(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="a2i world"):
        read_manifest(tmp_path)
    (tmp_path / "classes.json").write_text('{"red": 0}')
    with pytest.raises(ManifestError, match="list of class names"):
        read_classes(tmp_path)


def test_dataset_items_follow_batch_contract(tiny_manifest: Path) -> None:
    dataset = ManifestDataset(tiny_manifest, "val", RATE, clip_seconds=1.0, image_size=8)
    item = dataset[1]
    assert item["audio"].shape == (RATE,) and item["audio"].dtype == torch.float32
    assert item["audio"][RATE // 2 :].eq(0).all()  # 0.5 s clip zero-padded to 1 s
    assert item["image"].shape == (3, 8, 8) and 0 <= item["image"].min() <= item["image"].max() <= 1
    torch.testing.assert_close(item["image"][:, 0, 0], torch.tensor([0.0, 0.0, 1.0]))
    assert (item["label"], item["caption"], item["key"]) == (1, "a blue square", "val/001")
    assert not (tiny_manifest / "problems_val.log").exists()


def test_missing_files_are_logged_and_skipped(tiny_manifest: Path, caplog) -> None:
    (tiny_manifest / "audio/train_1.wav").unlink()
    (tiny_manifest / "images/train_2.png").write_bytes(b"")
    with caplog.at_level(logging.INFO, logger="a2i.data.manifest"):
        dataset = ManifestDataset(tiny_manifest, "train", RATE, 0.5, 8)
    assert [r.key for r in dataset.records] == ["train/000", "train/003"]
    log = (tiny_manifest / "problems_train.log").read_text()
    assert "train/001\taudio 'audio/train_1.wav': missing" in log
    assert "train/002\timage 'images/train_2.png': empty (0 bytes)" in log
    assert "2 clips" in caplog.text and "problems_train.log" in caplog.text
    with pytest.raises(ManifestError, match="2 unusable") as caught:
        ManifestDataset(tiny_manifest, "train", RATE, 0.5, 8, strict=True)
    assert "audio/train_1.wav" in str(caught.value) and "strict=False" in str(caught.value)


def test_undecodable_file_is_named_and_replaced_or_raised_when_strict(
    tiny_manifest: Path, caplog
) -> None:
    """One damaged file used to end a training run at whichever step first loaded it."""
    (tiny_manifest / "audio/test_0.wav").write_text("not audio\n")
    dataset = ManifestDataset(tiny_manifest, "test", RATE, 0.5, 8)
    assert dataset[0]["key"] == "test/001" and dataset[1]["key"] == "test/001"
    assert "test_0.wav" in caplog.text  # named once, with its reason
    assert caplog.text.count("serving the next clip instead of test/000") == 1
    strict = ManifestDataset(tiny_manifest, "test", RATE, 0.5, 8, strict=True)
    with pytest.raises(AudioDecodeError, match=r"test_0\.wav"):
        strict[0]
    (tiny_manifest / "audio/test_1.wav").write_text("not audio either\n")
    with pytest.raises(DatasetNotFoundError, match="no clip of split 'test' can be decoded"):
        dataset[0]


def test_split_mixing_images_and_audio_only_is_rejected(tiny_manifest: Path) -> None:
    records = read_manifest(tiny_manifest)
    records[4].image = None  # first val clip loses its image
    write_manifest(tiny_manifest, records, overwrite=True)
    with pytest.raises(ManifestError, match="mixes clips with and without images"):
        ManifestDataset(tiny_manifest, "val", RATE, 0.5, 8)


def test_datamodule_splits_and_crops(tiny_manifest: Path) -> None:
    module = ManifestDataModule(str(tiny_manifest), batch_size=2, clip_seconds=0.25, image_size=8)
    assert module.classes == ["red", "blue"]
    batch = next(iter(module.train_dataloader()))
    assert batch["audio"].shape == (2, 4000) and batch["image"].shape == (2, 3, 8, 8)
    assert batch["label"].dtype == torch.int64 and len(batch["caption"]) == 2
    assert module.dataset("train").random_crop and not module.dataset("val").random_crop
    val = [next(iter(module.val_dataloader()))["audio"] for _ in range(2)]
    torch.testing.assert_close(val[0], val[1])
    assert next(iter(module.predict_dataloader()))["key"] == ["test/000", "test/001"]


def test_datamodule_missing_root_names_remedy(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="directory does not exist") as caught:
        ManifestDataModule(str(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in str(caught.value)
    assert f"a2i world --out {tmp_path / 'nowhere'}" in str(caught.value)
