"""Training crops of prepared clips contain the selected frame's time (AudioToken's frames)."""

import io
import tarfile

import numpy as np
import pytest
import soundfile as sf
import torch

from a2i.audio.io import fit_length
from a2i.build.shards import PreparedClip, shard_name, write_shard
from a2i.data.shards import ShardDataset

RATE = 1000


@pytest.mark.parametrize("contains", [-5, 0, 3, 9, 40])
def test_random_crop_always_contains_the_given_sample(contains):
    waveform = torch.arange(10.0)
    for seed in range(30):
        crop = fit_length(
            waveform,
            4,
            random_crop=True,
            generator=torch.Generator().manual_seed(seed),
            contains=contains,
        )
        assert min(max(contains, 0), 9) in crop.tolist()


def test_training_crop_of_a_shard_hears_the_frame_time(tmp_path):
    audio = torch.zeros(10 * RATE)
    audio[8 * RATE] = 0.9  # a click at the frame time
    clip = PreparedClip(
        key="clip",
        split="train",
        audio=audio,
        sample_rate=RATE,
        frame=np.zeros((8, 8, 3), dtype=np.uint8),
        meta={"frame_time": 8.0},
    )
    (tmp_path / "shards").mkdir()
    write_shard(tmp_path / "shards", shard_name("train", 0), [clip])
    dataset = ShardDataset(tmp_path, "train", RATE, 2.0, 8, random_crop=True)
    torch.manual_seed(0)
    heard = [float(dataset[0]["audio"].abs().max()) for _ in range(20)]
    assert min(heard) > 0.5  # unconstrained, 2 s crops of 10 s would miss it 4 times in 5


def test_a_long_clip_decodes_only_its_crop(tmp_path, monkeypatch):
    """An hour-long recording costs a training item what a short one does: only its crop."""
    clip = PreparedClip(
        key="long",
        split="train",
        audio=torch.rand(600 * RATE) - 0.5,
        sample_rate=RATE,
        frame=np.zeros((8, 8, 3), dtype=np.uint8),
        meta={"frame_time": 300.0},
    )
    (tmp_path / "shards").mkdir()
    tar = write_shard(tmp_path / "shards", shard_name("train", 0), [clip])
    with tarfile.open(tar) as archive:
        stored = sf.read(io.BytesIO(archive.extractfile("long.flac").read()), dtype="float32")[0]
    dataset = ShardDataset(tmp_path, "train", RATE, 2.0, 8, random_crop=True)
    decoded: list[int] = []
    read = sf.SoundFile.read

    def counted(sound: sf.SoundFile, *args, **kwargs):
        samples = read(sound, *args, **kwargs)
        decoded.append(len(samples))
        return samples

    monkeypatch.setattr(sf.SoundFile, "read", counted)
    for seed in range(5):
        torch.manual_seed(seed)
        item = dataset[0]["audio"]
        torch.manual_seed(seed)
        whole = torch.from_numpy(stored)
        assert torch.equal(item, fit_length(whole, 2 * RATE, random_crop=True, contains=300 * RATE))
    assert max(decoded) == 2 * RATE
