"""``a2i test`` with the Downstream callback: probes, zero-shot, cross-modal MRR (issue 15)."""

import csv
import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from a2i.audio.io import write_audio
from a2i.callbacks.downstream import Downstream
from a2i.cli import main
from a2i.data.downstream import ESC50
from a2i.data.manifest import ManifestDataModule
from a2i.data.retrieval_sets import DESED, ClothoCaptions
from a2i.errors import ConfigError, DatasetNotFoundError

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "tests" / "conf"


@pytest.mark.slow
def test_a2i_test_writes_the_downstream_table_for_a_tiny_sound2vision(
    tmp_path, write_folded_layout, fit_run, caplog
):
    common = ["--trainer.logger.init_args.save_dir", str(tmp_path / "logs")]
    ckpt = fit_run("sound2vision_gan.yaml", tmp_path / "logs") / "checkpoints" / "last.ckpt"
    esc = write_folded_layout(tmp_path / "ESC-50", "esc50", per_fold=2)
    (esc / "audio" / "3-100-B-0.wav").write_bytes(b"")  # one clip of the set is broken
    datasets = [{"class_path": "a2i.data.downstream.ESC50", "init_args": {"root": str(esc)}}]
    main(
        [
            "test",
            "--config",
            str(CONF / "sound2vision_gan.yaml"),
            "--config",
            str(ROOT / "configs" / "eval" / "downstream.yaml"),
            "--ckpt_path",
            str(ckpt),
            "--trainer.callbacks.init_args.output_dir",
            str(tmp_path / "report"),
            "--trainer.callbacks.init_args.datasets",
            json.dumps(datasets),
            "--trainer.callbacks.init_args.hidden_size",
            "16",
            "--trainer.callbacks.init_args.probe_steps",
            "20",
            *common,
        ]
    )
    said = caplog.text  # Lightning's console, where trainer.test from Python says it too
    assert f"Downstream report written to {tmp_path / 'report'}" in said
    assert f"Downstream report recorded in {ckpt.parent.parent / 'reports' / 'downstream'}" in said
    results = json.loads((tmp_path / "report" / "metrics.json").read_text())
    metrics = results["metrics"]
    for task in ("run", "esc50"):
        assert 0.0 <= metrics[task]["probe_accuracy"] <= 1.0
    assert 0.0 < metrics["cmr"]["mrr_a2i"] <= 1.0 and 0.0 < metrics["cmr"]["mrr_i2a"] <= 1.0
    rows = {row["task"]: row for row in results["downstream"]}
    assert rows["esc50"]["clips"] == 11 and rows["esc50"]["held_out_folds"] == 3
    assert rows["run"]["clips"] == 16 + 4  # world train split + the one test batch
    assert results["failed_clips"]["esc50"][0].startswith("audio/3-100-B-0.wav: cannot read")
    assert any("zero-shot skipped: Sound2Vision has no text tower" in n for n in results["notes"])
    markdown = (tmp_path / "report" / "metrics.md").read_text()
    assert "## Downstream tasks (WavBriVL Table 2)" in markdown and "| esc50 |" in markdown
    # Recorded in the tested run too, where the run's model card finds it.
    (record,) = (ckpt.parent.parent / "reports" / "downstream").iterdir()
    assert json.loads((record / "metrics.json").read_text()) == results


class FakeAligned(L.LightningModule):
    """Audio, images and text in one space: class ``k`` is the basis vector ``e_k``.

    Its sound is a tone at ``300 + 200 k`` Hz, its image the colour of ``tiny_manifest``'s class
    ``k``, its names those of ``tiny_manifest`` and of the fake ESC-50 (``write_folded_layout``).
    """

    aligns_spaces = True
    sample_rate = 16000
    clip_seconds = 0.5
    names = (("red", "dog"), ("blue", "rain"))

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the module a device

    def audio_features(self, waveform: torch.Tensor) -> torch.Tensor:
        peak = torch.fft.rfft(waveform).abs().argmax(dim=-1) * self.sample_rate / waveform.shape[-1]
        return F.one_hot(((peak - 300) / 200).round().long().clamp(0, 1), 4).float()

    def image_features(self, image: torch.Tensor) -> torch.Tensor:
        blue = image[:, 2].mean(dim=(1, 2)) > image[:, 0].mean(dim=(1, 2))
        return F.one_hot(blue.long(), 4).float()

    def text_features(self, texts: list[str]) -> torch.Tensor:
        index = [
            next(k for k, names in enumerate(self.names) if t.split()[-1] in names) for t in texts
        ]
        return F.one_hot(torch.tensor(index), 4).float()

    def test_step(self, batch, batch_idx):
        return None


class WithoutTextTower(FakeAligned):
    text_features = None


def run_downstream(model, tiny_manifest, tmp_path, **kwargs) -> dict:
    callback = Downstream(
        output_dir=str(tmp_path / "report"), hidden_size=8, probe_steps=20, **kwargs
    )
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    datamodule = ManifestDataModule(str(tiny_manifest), batch_size=2, clip_seconds=0.5)
    trainer.test(model, datamodule=datamodule, verbose=False)
    return callback.results


def test_zero_shot_probe_and_retrieval_on_a_fake_aligned_model(
    tiny_manifest, tmp_path, write_folded_layout
):
    esc = write_folded_layout(tmp_path / "ESC-50", "esc50")
    results = run_downstream(FakeAligned(), tiny_manifest, tmp_path, datasets=[ESC50(str(esc))])
    metrics = results["metrics"]
    for task in ("run", "esc50"):
        assert metrics[task] == {
            "probe_accuracy": 1.0,
            "probe_map": 1.0,
            "zero_shot_accuracy": 1.0,
            "zero_shot_map": 1.0,
        }
    assert metrics["cmr"] == {"mrr_a2i": 1.0, "mrr_i2a": 1.0}
    assert results["fold_accuracy"]["esc50"] == [1.0, 1.0, 1.0]


def test_zero_shot_is_skipped_with_its_reason_without_a_text_tower(tiny_manifest, tmp_path):
    results = run_downstream(WithoutTextTower(), tiny_manifest, tmp_path)
    assert results["metrics"]["run"]["probe_accuracy"] == 1.0
    assert "zero_shot_accuracy" not in results["metrics"]["run"]
    assert math.isnan(results["downstream"][0]["zero_shot_accuracy"])
    assert "zero-shot skipped: WithoutTextTower has no text tower (text_features)" in " ".join(
        results["notes"]
    )


def test_method_without_audio_embedding_is_refused(tiny_manifest, tmp_path):
    class NotAligned(FakeAligned):
        aligns_spaces = False

    with pytest.raises(ConfigError, match="NotAligned has no audio embedding"):
        run_downstream(NotAligned(), tiny_manifest, tmp_path)


def tone(frequencies: list[float], seconds: float = 1.0, rate: int = 16000) -> torch.Tensor:
    """Consecutive ``seconds`` of each sine."""
    t = torch.arange(round(seconds * rate)) / rate
    return torch.cat([0.5 * torch.sin(2 * math.pi * f * t) for f in frequencies])


def write_clotho(root: Path) -> Path:
    """``clotho_captions_evaluation.csv`` + ``evaluation/*.wav``: one caption names the wrong clip."""
    write_audio(root / "evaluation" / "dog bark.wav", tone([300]), 16000)
    write_audio(root / "evaluation" / "rain.wav", tone([500]), 16000)
    rows = [
        ["file_name", *(f"caption_{n}" for n in range(1, 6))],
        ["dog bark.wav", *(f"a barking dog {n}" for n in range(4)), "a dog"],
        ["rain.wav", "rain", "heavy rain", "light rain", "rain on a roof", "a dog"],
    ]
    with open(root / "clotho_captions_evaluation.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return root


def write_desed(root: Path) -> Path:
    """``metadata/validation/validation.tsv`` + ``audio/validation/*.wav``, 2 s recordings."""
    write_audio(root / "audio" / "validation" / "Y1.wav", tone([300, 500]), 16000)
    write_audio(root / "audio" / "validation" / "Y2.wav", tone([300, 300]), 16000)
    lines = [
        "filename\tonset\toffset\tevent_label",
        "Y1.wav\t0.0\t0.9\tDog",
        "Y1.wav\t1.1\t2.0\tSpeech",
        "Y2.wav\t0.2\t0.8\tDog",
        "Y2.wav\t1.0\t2.0\tFrying",
    ]
    (root / "metadata" / "validation").mkdir(parents=True)
    (root / "metadata" / "validation" / "validation.tsv").write_text("\n".join(lines) + "\n")
    return root


class FakeDomestic(FakeAligned):
    """FakeAligned whose prompts for DESED's Dog and Speech are its two sounds' directions."""

    def text_features(self, texts: list[str]) -> torch.Tensor:
        last = [t.split()[-1] for t in texts]
        index = [{"Dog": 0, "dog": 0, "Speech": 1, "rain": 1}.get(word, 2) for word in last]
        return F.one_hot(torch.tensor(index), 4).float()


def test_clotho_caption_retrieval_and_desed_segment_f1(tiny_manifest, tmp_path):
    clotho = ClothoCaptions(str(write_clotho(tmp_path / "clotho")))
    desed = DESED(str(write_desed(tmp_path / "DESED")), clip_seconds=2.0)
    assert desed.activity[:, :, [4, 8, 6]].tolist() == [
        [[True, False, False], [False, True, False]],
        [[True, False, False], [False, False, True]],
    ]
    results = run_downstream(
        FakeDomestic(), tiny_manifest, tmp_path, caption_sets=[clotho], event_sets=[desed]
    )
    metrics = results["metrics"]
    # 9 of 10 captions find their clip first; "a dog" of rain.wav ranks it second.
    assert metrics["clotho"] == pytest.approx(
        {"t2a_r@1": 0.9, "t2a_r@5": 1.0, "t2a_r@10": 1.0, "t2a_mrr": 0.95, "a2t_r@1": 1.0}
    )
    # Y2's second second sounds like a dog but is labelled Frying: TP 3, FP 1, FN 1.
    assert metrics["desed"] == pytest.approx(
        {"segment_f1": 0.75, "segment_precision": 0.75, "segment_recall": 0.75}
    )


def test_absent_retrieval_sets_name_their_download(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"clotho_captions_evaluation\.csv.*zenodo"):
        ClothoCaptions(str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=r"metadata/validation/validation\.tsv.*DESED"):
        DESED(str(tmp_path))
