"""ESC-50 and UrbanSound8K read from their own layout with their official folds (issue 15)."""

import pytest
import torch

from a2i.data.base import collate_batch
from a2i.data.downstream import ERROR, ESC50, FOLD, UrbanSound8K
from a2i.errors import ConfigError, DatasetNotFoundError
from a2i.interfaces import AUDIO, KEY, LABEL


def test_esc50_reads_classes_and_folds_from_its_metadata(tmp_path, write_folded_layout):
    root = write_folded_layout(tmp_path / "ESC-50", "esc50", ("dog", "chirping_birds", "rain"))
    esc = ESC50(str(root))
    assert esc.classes == ["dog", "chirping_birds", "rain"]
    assert esc.folds == [1, 2, 3]
    assert {(c.key, c.label, c.fold) for c in esc.clips} == {
        (f"audio/{fold}-{100 + label}-A-{label}.wav", label, fold)
        for fold in (1, 2, 3)
        for label in range(3)
    }
    assert ESC50(str(root), folds=[2]).folds == [2]


def test_urbansound8k_clips_live_in_their_fold_folder(tmp_path, write_folded_layout):
    root = write_folded_layout(tmp_path / "US8K", "us8k", ("air_conditioner", "siren"), (1, 9, 10))
    us8k = UrbanSound8K(str(root))
    assert us8k.classes == ["air_conditioner", "siren"]
    assert us8k.folds == [1, 9, 10]
    for clip in us8k.clips:
        assert clip.key.startswith(f"audio/fold{clip.fold}/")
        assert (root / clip.key).is_file()


def test_dataset_decodes_at_the_method_rate_and_names_unreadable_clips(
    tmp_path, write_folded_layout
):
    root = write_folded_layout(tmp_path / "ESC-50", "esc50")
    (root / "audio" / "2-101-A-1.wav").write_text("not audio")
    dataset = ESC50(str(root)).dataset(sample_rate=16000, clip_seconds=1.0)
    batch = collate_batch([dataset[i] for i in range(len(dataset))])
    assert batch[AUDIO].shape == (6, 16000)
    assert batch[FOLD].tolist() == [1, 1, 2, 2, 3, 3]
    assert batch[LABEL].tolist() == [0, 1, 0, 1, 0, 1]
    broken = batch[KEY].index("audio/2-101-A-1.wav")
    assert "cannot read audio file" in batch[ERROR][broken]
    assert [bool(e) for e in batch[ERROR]].count(True) == 1
    # the tone survived resampling 44.1 → 16 kHz: 500 Hz peak for class 1
    spectrum = torch.fft.rfft(batch[AUDIO][1]).abs()
    assert int(spectrum.argmax()) == 500  # 1 s at 16 kHz: 1 Hz per bin


def test_missing_dataset_or_foreign_folds_are_refused(tmp_path, write_folded_layout):
    with pytest.raises(DatasetNotFoundError, match=r"meta/esc50\.csv is missing; download ESC-50"):
        ESC50(str(tmp_path / "nowhere"))
    root = write_folded_layout(tmp_path / "ESC-50", "esc50", folds=(1, 6))
    with pytest.raises(ConfigError, match=r"lists folds \[1, 6\]"):
        ESC50(str(root))
    root = write_folded_layout(tmp_path / "ESC", "esc50", folds=(1, 2))
    with pytest.raises(ConfigError, match=r"folds \[4\] are not in"):
        ESC50(str(root), folds=[4])
