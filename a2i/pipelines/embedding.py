"""``a2i embed``: every audio file of a folder → its embedding by the method's audio tower.

Users of the field's models ask to use a trained tower as an audio embedder (WavBriVL §3 trains
one into a vision-language space; Sound2Vision's audio encoder lives in its image encoder's
space). Any method with :meth:`~a2i.interfaces.AudioToImageModel.audio_features` serves.

Output folder::

    <output_dir>/manifest.jsonl     # the request, then one row per input
    <output_dir>/<key>.npy          # float32 (D,) embedding of <audio_dir>/<key>

``<key>`` is the input's relative path, extension kept (``sub/bell.wav`` → ``sub/bell.wav.npy``),
as ``a2i predict`` names its images. A row holds ``input`` (the key), ``output`` (the ``.npy``
file), ``status``, ``error``, ``dim``, and the ``duration`` and ``offset`` (seconds) of the input
and of the window the model heard. :func:`load_embeddings` stacks a folder into ``(N, D)``.

Why one ``.npy`` per input and a JSONL manifest rather than one ``embeddings.npy`` or safetensors
shards: each file is written atomically and its manifest line appended and fsynced right after,
so a run killed at any instant loses at most the batch in flight and a rerun knows what is done from the
manifest alone (:class:`~a2i.pipelines.writer.FolderWriter`, the same rules as ``a2i predict``:
same request → resume, other request → refused unless ``--overwrite``). A single array would
have to be held back or rewritten until the run ends; shards would be rewritten as they grow
or leave partial shards to reconcile after a kill, and inputs added later would reshuffle them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from a2i.audio.io import Crop
from a2i.errors import A2IError, ConfigError
from a2i.pipelines.audio_to_image import AudioToImagePipeline
from a2i.pipelines.folder import (
    FolderSummary,
    describe_file,
    model_fingerprint,
    share_batches,
    write_share,
)
from a2i.pipelines.progress import FolderProgress
from a2i.pipelines.writer import FolderWriter, read_manifest

SUFFIX = ".npy"


def check_embedder(model: object) -> None:
    """Refuse, in one line, a method that has no audio embedding to give.

    Raises:
        ConfigError: ``model`` does not align audio and image spaces (no ``audio_features``).
    """
    if not getattr(model, "aligns_spaces", False):
        raise ConfigError(
            f"{type(model).__name__} has no audio embedding (audio_features): a2i embed needs "
            "a method that maps audio into a shared space, e.g. Sound2Vision or WavBriVL"
        )


def embedding_settings(
    pipeline: AudioToImagePipeline, *, checkpoint: str | None, crop: Crop
) -> dict[str, Any]:
    """Everything that decides the embeddings of a run, as recorded in its manifest."""
    model = pipeline.model
    return {
        "method": f"{type(model).__module__}.{type(model).__qualname__}",
        "model_config": model_fingerprint(model),
        "checkpoint": describe_file(checkpoint),
        "features": "audio_features",
        "sample_rate": model.sample_rate,
        "clip_seconds": model.clip_seconds,
        "crop": crop,
    }


class EmbeddingFolderWriter(FolderWriter):
    """One ``<key>.npy`` per input plus the manifest (see module docstring)."""

    noun = "embeddings"
    suffix = SUFFIX

    def output_name(self, key: str, seed: int | None) -> str:
        """``<key>.npy`` (embeddings have no seeds)."""
        return f"{key}{SUFFIX}"

    def save_output(self, path: Path, output: Tensor) -> None:
        """One ``(D,)`` embedding as float32 ``.npy``."""
        with open(path, "wb") as handle:
            np.save(handle, output.detach().float().cpu().numpy())


@torch.no_grad()
def embed_folder(
    pipeline: AudioToImagePipeline,
    root: Path,
    keys: list[str],
    writer: FolderWriter,
    crop: Crop = "start",
    show_progress: bool = True,
) -> FolderSummary:
    """Embed ``root/<key>`` for this rank's share of the keys the writer has not done, in batches.

    Each file is decoded by :meth:`AudioToImagePipeline.read` (the window the model hears, at
    its rate); a file that cannot be read is that input's error and the others go on.
    ``show_progress`` shows rank 0's progress.
    """
    check_embedder(pipeline.model)
    clip = pipeline.model.clip_seconds
    batches = share_batches(writer, keys, pipeline.batch_size)
    total = sum(map(len, batches))
    progress = FolderProgress("embed", total, ranks=writer.ranks, shown=show_progress)

    def embed(chunk: list[str], summary: FolderSummary) -> None:
        clips: list[Tensor] = []
        errors: list[str] = []
        details: list[dict[str, Any]] = []
        for key in chunk:
            try:
                waveform, duration, offset = pipeline.read(root / key, crop)
            except A2IError as error:
                errors.append(str(error))
                details.append({})
                continue
            clips.append(waveform)
            errors.append("")
            details.append({"duration": duration, "offset": offset})
            summary.cropped += duration > clip
            summary.padded += duration < clip
        outputs: list[Tensor | None] = [None] * len(chunk)
        if clips:
            features = pipeline.model.audio_features(torch.stack(clips).to(pipeline.device))
            read = iter(features.float().cpu())
            for index, error in enumerate(errors):
                if not error:
                    outputs[index] = next(read)[None]  # one output per input (no seeds)
                    details[index]["dim"] = outputs[index].shape[-1]
        writer.write(chunk, outputs, errors, details)
        progress.advance(len(chunk))

    summary = write_share(writer, batches, embed, FolderSummary())
    progress.close()
    return summary


def load_embeddings(output_dir: str | Path) -> tuple[list[str], np.ndarray]:
    """The keys and the ``(N, D)`` embeddings an ``a2i embed`` folder holds, in manifest order.

    Raises:
        ConfigError: The folder has no ``a2i embed`` manifest.
    """
    request, rows = read_manifest(output_dir)
    if request is None or request.get("features") != "audio_features":
        raise ConfigError(f"'{output_dir}' holds no a2i embed manifest")
    done = [row for row in rows if row["status"] == "ok"]
    if not done:
        return [], np.zeros((0, 0), dtype=np.float32)
    arrays = [np.load(Path(output_dir) / row["output"]) for row in done]
    return [row["input"] for row in done], np.stack(arrays)
