from __future__ import annotations

from pathlib import Path

import pytest
import torch

from a2i.data.folder import AudioFolderDataModule, AudioFolderDataset
from a2i.errors import ConfigError, DatasetNotFoundError

RATE = 16000


def test_recursive_stable_order_and_extensions(tmp_path: Path, write_tone) -> None:
    for name in ["b/2.wav", "a.WAV", "b/10.flac", "b/c/z.ogg"]:
        write_tone(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "cover.png").write_bytes(b"\x89PNG")
    dataset = AudioFolderDataset(tmp_path, RATE, clip_seconds=1.0)
    assert dataset.keys == ["a.WAV", "b/10.flac", "b/2.wav", "b/c/z.ogg"]
    item = dataset[2]
    assert item["key"] == "b/2.wav" and item["error"] == ""
    assert item["audio"].shape == (RATE,) and item["audio"][: RATE // 2].abs().max() > 0.2


def test_bad_file_yields_error_and_others_still_load(tmp_path: Path, write_tone) -> None:
    write_tone(tmp_path / "good_1.wav")
    (tmp_path / "broken.mp3").write_text("this is not an mp3")
    write_tone(tmp_path / "good_2.wav")
    module = AudioFolderDataModule(str(tmp_path), batch_size=3, clip_seconds=0.5)
    batch = next(iter(module.predict_dataloader()))
    assert batch["key"] == ["broken.mp3", "good_1.wav", "good_2.wav"]
    assert "broken.mp3" in batch["error"][0] and "not an audio file" in batch["error"][0]
    assert batch["error"][1:] == ["", ""]
    assert batch["audio"].shape == (3, 8000)
    assert batch["audio"][0].eq(0).all() and batch["audio"][1:].abs().amax(dim=1).gt(0.2).all()


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="folder does not exist"):
        AudioFolderDataset(tmp_path / "nowhere", RATE, 1.0)
    (tmp_path / "readme.txt").write_text("no audio here")
    with pytest.raises(DatasetNotFoundError, match="no audio files"):
        AudioFolderDataset(tmp_path, RATE, 1.0)


def test_datamodule_is_prediction_only(tmp_path: Path, write_tone) -> None:
    write_tone(tmp_path / "a.wav")
    module = AudioFolderDataModule(str(tmp_path), clip_seconds=0.5)
    for loader in (module.train_dataloader, module.val_dataloader, module.test_dataloader):
        with pytest.raises(ConfigError, match="only serves prediction"):
            loader()
    assert isinstance(next(iter(module.predict_dataloader()))["audio"], torch.Tensor)
