"""Audio pool: A.7's chunking, the four layouts, the resumable and recipe-checked embedding cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from a2i.build.sonify.pool import (
    AudioFolderPool,
    AudioSetPool,
    BBCSoundEffectsPool,
    FSD50KPool,
    PoolReader,
    chunk_of,
    chunk_waveform,
    scan_pools,
)
from a2i.build.sonify.pool_cache import PoolSettings, embed_pool
from a2i.encoders.audio.clap import ClapEncoder
from a2i.errors import ConfigError

RATE = 16000


def test_a_34_second_file_gives_seven_5_second_chunks_the_last_zero_padded():
    wave = torch.rand(34 * RATE) + 0.1
    chunks = chunk_waveform(wave, RATE, 5.0)
    assert chunks.shape == (7, 5 * RATE)
    assert torch.equal(chunks.reshape(-1)[: 34 * RATE], wave)
    assert (chunks[6, 4 * RATE :] == 0).all() and (chunks[6, : 4 * RATE] > 0).all()
    assert chunk_waveform(torch.ones(5 * RATE), RATE, 5.0).shape == (1, 5 * RATE)
    assert chunk_waveform(torch.ones(RATE // 10), RATE, 5.0).shape == (1, 5 * RATE)
    for index in range(7):
        assert torch.equal(chunk_of(wave, index, RATE, 5.0), chunks[index])
    with pytest.raises(ConfigError, match="chunk 7"):
        chunk_of(wave, 7, RATE, 5.0)


def write_wav(path: Path, seconds: float = 1.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(round(seconds * RATE), 0.1, dtype=np.float32), RATE)


def test_the_four_pool_layouts_list_their_files_with_ids_and_labels(tmp_path):
    audioset = tmp_path / "audioset"
    (audioset / "balanced_train_segments.csv").parent.mkdir(parents=True)
    (audioset / "balanced_train_segments.csv").write_text(
        "# Segments csv\n# YTID, start_seconds, end_seconds, positive_labels\n"
        'abc, 30.000, 40.000, "/m/0bt9lr,/m/05tny_"\nmissing1, 0.000, 10.000, "/m/0bt9lr"\n'
    )
    (audioset / "class_labels_indices.csv").write_text(
        "index,mid,display_name\n0,/m/0bt9lr,Dog\n1,/m/05tny_,Bark\n"
    )
    write_wav(audioset / "balanced_train_segments" / "Yabc.wav")
    fsd = tmp_path / "fsd"
    (fsd / "FSD50K.ground_truth").mkdir(parents=True)
    (fsd / "FSD50K.ground_truth" / "dev.csv").write_text(
        'fname,labels,mids,split\n64760,"Rain,Water",/m/06mb1,train\n'
    )
    (fsd / "FSD50K.ground_truth" / "eval.csv").write_text('fname,labels,mids\n37199,"Bird",/m/1\n')
    write_wav(fsd / "FSD50K.dev_audio" / "64760.wav")
    write_wav(fsd / "FSD50K.eval_audio" / "37199.wav")
    bbc = tmp_path / "bbc"
    bbc.mkdir()
    (bbc / "BBCSoundEffects.csv").write_text(
        '"location","description","secs"\n"07076051.wav","Thunder, distant",40\n'
    )
    write_wav(bbc / "07076051.wav")
    folder = tmp_path / "folder"
    write_wav(folder / "engines" / "car.flac")
    scan = scan_pools(
        [AudioSetPool(str(audioset)), FSD50KPool(str(fsd)), BBCSoundEffectsPool(str(bbc)),
         AudioFolderPool(str(folder))]
    )  # fmt: skip
    found = {file.id: file.labels for file in scan.files}
    assert found == {
        "audioset/abc": ("Dog", "Bark"),
        "fsd50k/64760": ("Rain", "Water"),
        "fsd50k/37199": ("Bird",),
        "bbc_sfx/07076051": ("Thunder, distant",),
        "folder/engines/car.flac": ("engines",),
    }
    assert [(i, p) for i, _, p in scan.unusable] == [("audioset/missing1", "missing")]
    reader = PoolReader(scan.files)
    assert reader.resolve("64760") == "fsd50k/64760" and reader.resolve("nope") is None
    with pytest.raises(ConfigError, match="distinct names"):
        scan_pools([AudioFolderPool(str(folder)), AudioFolderPool(str(folder))])


@pytest.fixture(scope="module")
def pool_scan(sonify_inputs):
    return scan_pools([AudioFolderPool(str(sonify_inputs / "pool"))])


def test_pool_embeddings_resume_and_a_changed_recipe_is_refused_by_name(pool_scan, tmp_path):
    torch.manual_seed(0)
    clap = ClapEncoder(preset="tiny")
    settings = PoolSettings(part_size=2)
    index = embed_pool(pool_scan, tmp_path / "cache", clap, settings, progress=False)
    # 5 readable files: 2 + 1 + 3 + 1 + 1 chunks; the broken file is reported, not embedded
    assert len(index) == 8 and index.embeddings.shape == (8, clap.embed_dim)
    assert [p["file"] for p in index.problems] == ["folder/broken.wav"]
    assert torch.allclose(index.embeddings.norm(dim=-1), torch.ones(8), atol=1e-5)
    silent = [index.chunk_id(r) for r in range(8) if not index.audible()[r]]
    assert silent == ["folder/silence/quiet.wav#0"]
    # a killed run: one part missing, a temporary file left behind → only that part is redone
    parts = tmp_path / "cache" / "parts"
    (parts / "part-00001.safetensors").unlink()
    (parts / ".part-00002.safetensors.1234.tmp").write_bytes(b"partial")
    before = (parts / "part-00000.safetensors").stat().st_mtime_ns
    again = embed_pool(pool_scan, tmp_path / "cache", clap, settings, progress=False)
    assert torch.equal(again.embeddings, index.embeddings) and again.chunk_file == index.chunk_file
    assert (parts / "part-00000.safetensors").stat().st_mtime_ns == before
    assert not list(parts.glob(".*.tmp"))
    with pytest.raises(ConfigError, match="chunk_seconds"):
        embed_pool(
            pool_scan, tmp_path / "cache", clap, PoolSettings(part_size=2, chunk_seconds=2.0)
        )
    other = ClapEncoder(preset="tiny")  # other random weights
    with pytest.raises(ConfigError, match=r"clap\.weights_sha1"):
        embed_pool(pool_scan, tmp_path / "cache", other, settings, progress=False)
    shutil.rmtree(tmp_path / "cache")
