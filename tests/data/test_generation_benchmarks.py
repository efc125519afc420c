"""Seeing Sound's Table 1 benchmarks read from tiny fixtures in each release's own layout."""

import pytest
import torch
from video_fixtures import (
    VGGSOUND_LABELS,
    write_greatest_hits_fixture,
    write_into_the_wild_fixture,
    write_landscapes_fixture,
    write_vggsound_fixture,
)

from a2i.data.generation_benchmarks import (
    GreatestHitsDataModule,
    IntoTheWildDataModule,
    LandscapesDataModule,
    VGGSoundBalancedTest,
)
from a2i.errors import DatasetNotFoundError

pytestmark = pytest.mark.xdist_group("video")

SMALL = {"shard_size": 8, "frame_size": 64, "image_size": 32, "batch_size": 2}


def test_greatest_hits_cuts_a_window_per_hit_and_hears_the_denoised_wav(tmp_path):
    root = tmp_path / "vis-data"
    special = write_greatest_hits_fixture(root)
    data = GreatestHitsDataModule(
        str(root), clip_duration=2.0, clip_seconds=2.0, min_seconds=0.5, **SMALL
    )
    clips = data.scan_result.clips
    # 0.40 opens [0, 2) and holds 0.90; 3.10 opens [2.6, 4.6); the second recording's one hit.
    assert [(c.start, c.caption) for c in clips] == [(0.0, "rock"), (2.6, "leaf"), (0.5, "water")]
    assert data.scan_result.classes == ["leaf", "rock", "water"]
    assert {c.split for c in clips} == {"test"}
    report = data.prepare_data(progress=False)
    assert sum(report.kept.values()) == 2  # the recording without its wav is named, not fatal
    problems = (root / "prepared" / "problems.log").read_text()
    assert special["missing_audio"][0] in problems
    batch = next(iter(data.test_dataloader()))
    assert batch["audio"].shape == (2, 32000) and batch["audio"].abs().amax() > 0
    assert batch["label"].tolist() == [1, 0]


def test_landscapes_classes_are_the_folders_across_splits(tmp_path):
    root = tmp_path / "landscape"
    write_landscapes_fixture(root)
    data = LandscapesDataModule(str(root), clip_seconds=4.0, **SMALL)
    assert data.scan_result.classes == ["fire_crackling", "waterfall_burbling"]
    assert data.clip_counts == {"test": 4}
    data.prepare_data(progress=False)
    batch = next(iter(data.test_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32)
    assert batch["caption"] == ["fire crackling", "waterfall burbling"]  # test/ sorts first


def test_into_the_wild_serves_every_chunk_without_classes(tmp_path):
    root = tmp_path / "itw"
    write_into_the_wild_fixture(root)
    data = IntoTheWildDataModule(str(root), clip_seconds=3.0, **SMALL)
    assert data.clip_counts == {"test": 3}
    assert data.scan_result.classes is None
    data.prepare_data(progress=False)
    assert len(data.dataset("test")) == 3


def test_vggsound_test_sample_is_class_balanced_and_stable(tmp_path):
    root = tmp_path / "vggsound"
    write_vggsound_fixture(root, per_class=(1, 3))
    options = {"classes": list(VGGSOUND_LABELS), "val_fraction": 0.0}
    data = VGGSoundBalancedTest(str(root), test_clips=6, **options)
    tests = [c for c in data.scan_result.clips if c.split == "test"]
    per_label = torch.bincount(torch.tensor([c.label for c in tests]))
    assert per_label.tolist() == [2, 2, 2]
    again = VGGSoundBalancedTest(str(root), test_clips=6, **options)
    assert [c.key for c in again.scan_result.clips] == [c.key for c in data.scan_result.clips]
    assert data.clip_counts["train"] == 3


@pytest.mark.parametrize(
    ("module", "named"),
    [
        (GreatestHitsDataModule, "andrewowens.com/vis"),
        (LandscapesDataModule, "Sound-guided semantic video generation"),
        (IntoTheWildDataModule, "Tinglok/avstyle"),
    ],
)
def test_an_absent_benchmark_names_its_download_and_layout(module, named, tmp_path):
    (tmp_path / "empty").mkdir()
    for root in (tmp_path / "absent", tmp_path / "empty"):
        with pytest.raises(DatasetNotFoundError, match=named):
            module(str(root)).prepare_data(progress=False)
