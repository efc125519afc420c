"""Shared fixtures: offline hub settings, a tone writer and a tiny manifest dataset."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from a2i.data.manifest import ManifestRecord, write_manifest

ToneWriter = Callable[..., Path]
RunFitter = Callable[[str, Path], Path]
CONF = Path(__file__).resolve().parent / "conf"
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def tone(
    seconds: float = 0.5, sample_rate: int = 16000, frequency: float = 440.0, amplitude: float = 0.3
) -> np.ndarray:
    """A float32 sine, the deterministic test signal."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


@pytest.fixture
def load_benchmark(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Import ``benchmarks/NAME.py`` (scripts, not a package) for the test's duration.

    Its folder goes on ``sys.path`` as the scripts import each other (``compare.py``), and the
    module is registered under its name (dataclasses look their module up there).
    """
    monkeypatch.syspath_prepend(str(BENCHMARKS))

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def write_tone() -> ToneWriter:
    """Write a sine as a 16-bit wav (or flac/ogg by suffix) and return its path."""

    def write(path: Path, seconds: float = 0.5, sample_rate: int = 16000, **kwargs) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(seconds, sample_rate, **kwargs), sample_rate)
        return path

    return write


@pytest.fixture
def tiny_manifest(tmp_path: Path, write_tone: ToneWriter) -> Path:
    """A two-class audio-visual dataset (train 4, val 2, test 2 clips of 0.5 s, 16x16 images)."""
    root = tmp_path / "tiny"
    colours = [(255, 0, 0), (0, 0, 255)]
    records = []
    for split, count in (("train", 4), ("val", 2), ("test", 2)):
        for index in range(count):
            label = index % 2
            key = f"{split}/{index:03d}"
            write_tone(root / f"audio/{split}_{index}.wav", frequency=300.0 + 200 * label)
            image = root / f"images/{split}_{index}.png"
            image.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), colours[label]).save(image)
            records.append(
                ManifestRecord(
                    key=key,
                    split=split,
                    audio=f"audio/{split}_{index}.wav",
                    image=f"images/{split}_{index}.png",
                    label=label,
                    caption=["a red square", "a blue square"][label],
                    meta={"frequency": 300.0 + 200 * label},
                )
            )
    write_manifest(root, records, classes=["red", "blue"])
    return root


@pytest.fixture(scope="session")
def fit_run() -> RunFitter:
    """Train a ``tests/conf`` config with the real ``a2i fit``, logging under ``out``.

    Returns the run folder (``config.yaml``, ``checkpoints/last.ckpt``).
    """

    def fit(config: str, out: Path) -> Path:
        from a2i.cli import main  # Lightning: imported by the tests that train only

        main(
            ["fit", "--config", str(CONF / config), "--trainer.logger.init_args.save_dir", str(out)]
        )
        (run,) = {p.parent for p in out.rglob("config.yaml")}
        return run

    return fit


FoldedLayoutWriter = Callable[..., Path]


@pytest.fixture
def write_folded_layout(write_tone: ToneWriter) -> FoldedLayoutWriter:
    """Write a tiny ESC-50 or UrbanSound8K folder in the real layout and metadata format.

    Class ``i`` is a tone at ``300 + 200 i`` Hz (as in ``tiny_manifest``); ``per_fold`` clips of
    every class in every fold, at the datasets' own rates (44.1 kHz ESC-50, 22.05 kHz US8K).
    """

    def write(
        root: Path,
        kind: str,
        classes: tuple[str, ...] = ("dog", "rain"),
        folds: tuple[int, ...] = (1, 2, 3),
        per_fold: int = 1,
    ) -> Path:
        rows = []
        for fold in folds:
            for label, name in enumerate(classes):
                for take in range(per_fold):
                    frequency = 300.0 + 200 * label
                    if kind == "esc50":
                        file = f"{fold}-{100 + label}-{'ABC'[take]}-{label}.wav"
                        write_tone(root / "audio" / file, 0.6, 44100, frequency=frequency)
                        rows.append([file, fold, label, name, "False", f"{100 + label}", "A"])
                    else:
                        file = f"{100 + label}-{label}-0-{fold * 10 + take}.wav"
                        write_tone(
                            root / "audio" / f"fold{fold}" / file, 0.6, 22050, frequency=frequency
                        )
                        rows.append([file, 100 + label, 0.0, 0.6, 1, fold, label, name])
        if kind == "esc50":
            header = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
            metadata = root / "meta" / "esc50.csv"
        else:
            header = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID"]
            header.append("class")
            metadata = root / "metadata" / "UrbanSound8K.csv"
        metadata.parent.mkdir(parents=True, exist_ok=True)
        lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
        metadata.write_text("\n".join(lines) + "\n")
        return root

    return write


# One thread per test process: pytest-xdist runs one worker per core, and two torch threads per
# worker on a 2-core machine thrash (20-60x slower).
torch.set_num_threads(1)
