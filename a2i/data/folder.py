"""Prediction input: every audio file under a folder, in a stable order.

One unreadable file among thousands must not abort a prediction run: its item carries a
zero waveform and the decode error, the method skips it, and the prediction writer reports it by
name next to the outputs of the files that worked.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from a2i.audio.io import fit_length, read_audio_window
from a2i.audio.listing import list_audio_files
from a2i.data.base import AudioVisualDataModule
from a2i.errors import AudioDecodeError, ConfigError
from a2i.interfaces import AUDIO, KEY

ERROR = "error"
"""Batch field holding one decode error message per clip (empty string when it decoded)."""

logger = logging.getLogger(__name__)


class AudioFolderDataset(Dataset):
    """Audio-only items for prediction: ``key`` (relative path), ``audio`` and ``error``.

    Clips are cropped from the start and zero-padded to ``clip_seconds``, like evaluation; only
    that window is decoded, so an hour-long file costs what a short one does.

    Args:
        audio_dir: Folder searched recursively for :data:`~a2i.audio.formats.AUDIO_EXTENSIONS`.
        sample_rate: Audio rate delivered, in Hz.
        clip_seconds: Audio length delivered.
    """

    def __init__(
        self, audio_dir: str | Path, sample_rate: int = 16000, clip_seconds: float = 10.0
    ) -> None:
        self.root = Path(audio_dir)
        self.sample_rate = sample_rate
        self.clip_seconds = clip_seconds
        self.num_samples = round(sample_rate * clip_seconds)
        self.keys = list_audio_files(self.root)
        logger.info("%s: %d audio files to predict", self.root, len(self.keys))

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> dict[str, Any]:
        key = self.keys[index]
        try:
            window = read_audio_window(self.root / key, self.sample_rate, self.clip_seconds)
        except AudioDecodeError as error:
            logger.warning("%s", error)
            return {KEY: key, AUDIO: torch.zeros(self.num_samples), ERROR: str(error)}
        audio = fit_length(window.waveform, self.num_samples, random_crop=False)
        return {KEY: key, AUDIO: audio, ERROR: ""}


class AudioFolderDataModule(AudioVisualDataModule):
    """Prediction over a folder of audio files (``a2i predict --data.audio_dir DIR``).

    Only the ``predict`` stage exists: a folder of audio has no images or labels to train or
    evaluate against.

    Args:
        audio_dir: Folder searched recursively for audio files.
        **kwargs: Loader settings, with the base's defaults (:class:`AudioVisualDataModule`);
            ``image_size`` is unused here (no images) and kept so configs can link it.
    """

    def __init__(self, audio_dir: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.audio_dir = audio_dir

    def build_dataset(self, split: str) -> AudioFolderDataset:
        """The folder's files for ``predict``; any other stage is a configuration mistake."""
        if split != "predict":
            raise ConfigError(
                f"AudioFolderDataModule only serves prediction, but the '{split}' split was asked "
                "for: a folder of audio has no images or labels. Use it with `a2i predict`, and a "
                "ManifestDataModule (data.root) to fit, validate or test"
            )
        return AudioFolderDataset(self.audio_dir, self.sample_rate, self.clip_seconds)
