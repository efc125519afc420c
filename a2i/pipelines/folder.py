"""``a2i predict`` on a folder: every audio file in, one image per file and seed out, resumable.

The pipeline does the generation; this module decides what to compute (inputs a previous run of
the same request finished are skipped before anything is decoded), records how each image was
made (:func:`request_settings`) and reports what happened (:class:`FolderSummary`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from a2i.interfaces import GenerationRequest
from a2i.pipelines.audio_to_image import AudioToImagePipeline
from a2i.pipelines.loading import plain_config
from a2i.pipelines.progress import FolderProgress
from a2i.pipelines.writer import ImageFolderWriter


def describe_file(path: str | Path | None) -> str | None:
    """``<absolute path> (<bytes> B, modified <UTC time>)``: changes when the file does."""
    if path is None:
        return None
    resolved = Path(path).expanduser().resolve()
    if not resolved.exists():
        return str(resolved)
    stat = resolved.stat()
    modified = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stat.st_mtime))
    return f"{resolved} ({stat.st_size} B, modified {modified})"


def model_fingerprint(model: object) -> str:
    """A short hash of the model's full configuration (its recorded hyper-parameters)."""
    hparams = plain_config(dict(getattr(model, "hparams", {}) or {}))
    text = json.dumps(hparams, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def request_settings(
    pipeline: AudioToImagePipeline, request: GenerationRequest, *, checkpoint: str | None
) -> dict[str, Any]:
    """Everything that decides the images of a prediction run, as recorded in its manifest.

    ``request`` names its files by path (it is recorded before they are read).
    """
    model = pipeline.model
    return {
        "method": f"{type(model).__module__}.{type(model).__qualname__}",
        "model_config": model_fingerprint(model),
        "checkpoint": describe_file(checkpoint),
        "seeds": list(request.seeds),
        "gain_db": request.gain_db,
        "mix_with": [describe_file(path) for path in request.mix_with],
        "mix_gains_db": list(request.mix_gains_db),
        "image": describe_file(request.image),
        "image_weight": request.image_weight if request.image is not None else None,
        "prompt": request.prompt,
        "guidance_scale": request.guidance_scale,
        "num_inference_steps": request.num_inference_steps,
        "crop": request.crop,
        "clip_seconds": model.clip_seconds,
    }


@dataclass
class FolderSummary:
    """What a folder prediction did.

    Attributes:
        written: Images written by this run.
        skipped: Inputs a previous run of the same request had finished (not recomputed).
        failures: Manifest rows of the inputs that failed (file and reason).
        cropped: Inputs longer than the model's clip (it heard ``crop``'s window of them).
        padded: Inputs shorter than the clip (zero-padded at the end).
    """

    written: int = 0
    skipped: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    cropped: int = 0
    padded: int = 0


def predict_folder(
    pipeline: AudioToImagePipeline,
    request: GenerationRequest,
    root: Path,
    keys: list[str],
    writer: ImageFolderWriter,
) -> FolderSummary:
    """Generate the images of ``root/<key>`` for every key not already done, batch by batch.

    ``request`` comes from :meth:`AudioToImagePipeline.prepare_request`.
    """
    summary = FolderSummary()
    todo = writer.pending(keys)
    summary.skipped = writer.skipped
    clip = pipeline.model.clip_seconds
    progress = FolderProgress("predict", len(todo))
    for start in range(0, len(todo), pipeline.batch_size):
        chunk = todo[start : start + pipeline.batch_size]
        output = pipeline.run([root / key for key in chunk], request)
        details = []
        for duration, offset in zip(output.durations, output.offsets, strict=True):
            if duration is not None:
                summary.cropped += duration > clip
                summary.padded += duration < clip
            details.append({"duration": duration, "offset": offset})
        writer.write(chunk, output.images, output.errors, details)
        progress.advance(len(chunk))
    progress.close()
    writer.close()
    summary.written = writer.written
    summary.failures = writer.failures
    return summary
