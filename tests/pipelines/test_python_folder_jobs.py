"""a2i predict's and embed's folder jobs from Python, with a plain Lightning trainer (no CLI)."""

import json
from pathlib import Path

import lightning as L
import numpy as np

from a2i.interfaces import GenerationRequest
from a2i.jobs.folders import embed_to_folder, predict_to_folder
from a2i.pipelines import AudioToImagePipeline

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "configs" / "tiny" / "sound2vision_gan_shipped.yaml"


def trainer() -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)


def test_a_python_user_runs_the_folder_jobs_with_their_own_trainer(sounds, tmp_path, capsys):
    paths, _ = sounds
    pipeline = AudioToImagePipeline.from_config(SHIPPED)
    request = GenerationRequest.from_seed(seed=3, num_seeds=2)
    summary = predict_to_folder(
        trainer(), pipeline, request, tmp_path / "images", audio_dir=paths[0].parent
    )
    assert (summary.written, summary.exit_status) == (10, 1)  # 5 tones × 2 seeds; broken.wav
    assert list(summary.failed_inputs()) == ["broken.wav"]
    assert len(list((tmp_path / "images").rglob("*.png"))) >= 10
    assert "a2i predict: 10 images written" in capsys.readouterr().out
    again = predict_to_folder(
        trainer(), pipeline, request, tmp_path / "images", audio_dir=paths[0].parent,
        verbose=False,
    )  # fmt: skip
    assert (again.written, again.skipped) == (0, 5)  # the same request resumes
    assert "a2i predict" not in capsys.readouterr().out  # silent when asked

    embedded = embed_to_folder(
        trainer(), pipeline, paths[0].parent, tmp_path / "embeddings", verbose=False
    )
    assert (embedded.written, embedded.exit_status) == (5, 1)
    assert "a2i embed" not in capsys.readouterr().out  # neither progress nor report
    rows = [json.loads(line) for line in (tmp_path / "embeddings/manifest.jsonl").open()]
    done = [row for row in rows if row.get("status") == "ok"]
    assert len(done) == 5 and np.load(tmp_path / "embeddings" / done[0]["output"]).ndim == 1
