from __future__ import annotations

import pytest
import torch

from a2i.errors import ConfigError
from a2i.synth.datamodule import SyntheticWorldDataModule
from a2i.synth.world import WORLD_CLASSES


def tiny_datamodule(**overrides) -> SyntheticWorldDataModule:
    settings = dict(
        batch_size=4,
        clip_seconds=1.0,
        image_size=32,
        train_size=8,
        val_size=4,
        test_size=6,
        mixture_prob=0.5,
        reverb_prob=0.5,
    )
    settings.update(overrides)
    return SyntheticWorldDataModule(**settings)


def test_batches_follow_the_batch_contract() -> None:
    datamodule = tiny_datamodule()
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["audio"].shape == (4, 16000) and batch["audio"].dtype == torch.float32
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64 and batch["label"].shape == (4,)
    assert batch["gain_db"].dtype.is_floating_point and batch["gain_db"].shape == (4,)
    assert batch["reverb"].dtype == torch.bool and batch["num_sources"].dtype == torch.int64
    assert set(batch["num_sources"].tolist()) <= {1, 2}
    assert batch["audio"].abs().max() <= 1.0
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    for label, caption in zip(batch["label"].tolist(), batch["caption"], strict=True):
        assert caption == WORLD_CLASSES[label].caption
    assert all(key.startswith("train/") for key in batch["key"])
    assert datamodule.classes == [c.caption for c in WORLD_CLASSES]


def test_splits_have_their_sizes_and_predict_serves_test() -> None:
    datamodule = tiny_datamodule()
    assert [len(datamodule.dataset(s)) for s in ("train", "val", "test")] == [8, 4, 6]
    test_batch = next(iter(datamodule.test_dataloader()))
    predict_batch = next(iter(datamodule.predict_dataloader()))
    assert test_batch["key"] == predict_batch["key"] == [f"test/{i:06d}" for i in range(4)]
    assert torch.equal(test_batch["audio"], predict_batch["audio"])


def test_items_depend_only_on_seed_split_and_index() -> None:
    first, second = tiny_datamodule(), tiny_datamodule()
    for split, index in (("val", 0), ("test", 5)):
        a, b = first.dataset(split)[index], second.dataset(split)[index]
        assert torch.equal(a["audio"], b["audio"]) and torch.equal(a["image"], b["image"])
    other_seed = tiny_datamodule(seed=3)
    assert not torch.equal(first.dataset("val")[0]["audio"], other_seed.dataset("val")[0]["audio"])


def test_item_factors_match_the_world() -> None:
    datamodule = tiny_datamodule()
    item = datamodule.dataset("train")[2]
    spec = datamodule.world.sample_spec("train", 2)
    assert item["gain_db"] == spec.gains_db[0] and item["reverb"] == spec.reverb
    assert item["num_sources"] == len(spec.sources) and item["label"] == spec.sources[0]


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match="val_size"):
        tiny_datamodule(val_size=-1)
    with pytest.raises(ConfigError, match="gain_range_db"):
        tiny_datamodule(gain_range_db=(0.0, 20.0))
    with pytest.raises(IndexError):
        tiny_datamodule().dataset("val")[4]
