from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from a2i.errors import CheckpointNotFoundError, ConfigError
from a2i.synth.judge import (
    DEFAULT_WEIGHTS,
    MAP_SIZE,
    WorldJudge,
    degrade,
    label_maps,
    main,
    score_report,
)
from a2i.synth.world import WORLD_CLASSES, SceneSpec, SyntheticWorld


@pytest.fixture(scope="module")
def judge() -> WorldJudge:
    return WorldJudge.load()


def test_shipped_weights_are_small() -> None:
    assert DEFAULT_WEIGHTS.is_file() and DEFAULT_WEIGHTS.stat().st_size < 1_000_000


@pytest.mark.parametrize("image_size", [64, 32])
def test_judge_reads_fresh_test_renders(judge: WorldJudge, image_size: int) -> None:
    # A world seed the judge never trained on, mixtures and reverb over-represented.
    world = SyntheticWorld(image_size=image_size, seed=11, mixture_prob=0.4, reverb_prob=0.5)
    specs = [world.sample_spec("test", i) for i in range(200)]
    report = judge.judge(torch.stack([world.render_image(s) for s in specs]))
    count = len(WORLD_CLASSES)
    assert report.present.shape == report.sizes.shape == report.confidence.shape == (200, count)
    assert report.main_class.shape == report.indoor.shape == (200,)
    assert report.present.dtype == report.indoor.dtype == torch.bool
    for name, correct in score_report(report, world, specs).items():
        assert correct.float().mean() >= 0.95, name


def test_judged_size_grows_with_gain(judge: WorldJudge) -> None:
    world = SyntheticWorld(image_size=32)
    gains = (-20.0, -10.0, 0.0, 10.0)
    specs = [SceneSpec((source,), (g,), False, 5) for source in range(10) for g in gains]
    report = judge.judge(torch.stack([world.render_image(s) for s in specs]))
    sizes = report.sizes.gather(1, torch.tensor([[s.sources[0]] for s in specs]))[:, 0]
    assert (sizes.view(10, len(gains)).diff(dim=1) > 0).all()


def test_missing_weights_raise_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        CheckpointNotFoundError, match=re.escape("python -m a2i.synth.judge --train")
    ):
        WorldJudge.load(tmp_path / "absent.safetensors")


def test_save_load_round_trip_and_no_silent_overwrite(tmp_path: Path) -> None:
    torch.manual_seed(0)
    small = WorldJudge(width=4).eval()
    path = tmp_path / "judge.safetensors"
    small.save(path)
    with pytest.raises(FileExistsError, match="overwrite"):
        small.save(path)
    loaded = WorldJudge.load(path)
    images = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(loaded(images), small(images), atol=5e-2, rtol=5e-2)  # float16
    with pytest.raises(ConfigError, match=r"\(B, 3, H, W\)"):
        loaded.judge(torch.rand(3, 32, 32))


def test_training_command_refuses_to_overwrite(tmp_path: Path) -> None:
    existing = tmp_path / "judge.safetensors"
    existing.write_bytes(b"")
    with pytest.raises(FileExistsError, match="--overwrite"):
        main(["--train", "--out", str(existing)])
    with pytest.raises(SystemExit):
        main(["--out", str(existing)])


def test_label_maps_are_distributions_matching_the_scene() -> None:
    world = SyntheticWorld(image_size=64)
    specs = [SceneSpec((2, 7), (10.0, 0.0), True, 3), SceneSpec((4,), (-5.0,), False, 4)]
    images, maps = label_maps(world, specs)
    assert images.shape == (2, 3, 64, 64) and maps.shape == (2, 14, MAP_SIZE, MAP_SIZE)
    torch.testing.assert_close(maps.sum(dim=1), torch.ones(2, MAP_SIZE, MAP_SIZE))
    present = maps.sum(dim=(2, 3)) > 0
    assert present[0].nonzero().flatten().tolist() == [2, 3, 4 + 2, 4 + 7]  # wall, floor
    assert present[1].nonzero().flatten().tolist() == [0, 1, 4 + 4]  # sky, grass


def test_degrade_is_seeded_and_stays_in_range() -> None:
    images = torch.rand(8, 3, 64, 64)
    first = degrade(images, torch.Generator().manual_seed(1))
    second = degrade(images, torch.Generator().manual_seed(1))
    assert torch.equal(first, second) and not torch.equal(first, images)
    assert first.min() >= 0 and first.max() <= 1
    assert F.mse_loss(first, images) < 0.05
