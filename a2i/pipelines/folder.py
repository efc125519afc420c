"""``a2i predict`` on a folder: every audio file in, one image per file and seed out, resumable.

The pipeline does the generation; this module decides what to compute (inputs a previous run of
the same request finished are skipped before anything is decoded), records how each image was
made (:func:`request_settings`) and reports what happened (:class:`FolderSummary`). With several
ranks each draws its share of the inputs still to do (:func:`write_share`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from a2i.errors import A2IError
from a2i.interfaces import GenerationRequest
from a2i.pipelines.audio_to_image import AudioToImagePipeline
from a2i.pipelines.loading import plain_config
from a2i.pipelines.progress import FolderProgress
from a2i.pipelines.writer import FolderWriter, ImageFolderWriter

Batch = TypeVar("Batch")


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
        stopped: Why a rank stopped before its share was done (the other ranks' work is kept).
    """

    written: int = 0
    skipped: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    cropped: int = 0
    padded: int = 0
    stopped: list[str] = field(default_factory=list)

    def failed_inputs(self) -> dict[str, list[str]]:
        """Each failed input's distinct errors (an input failing for every seed is one input)."""
        failed: dict[str, list[str]] = {}
        for failure in self.failures:
            errors = failed.setdefault(failure["input"], [])
            if failure["error"] not in errors:
                errors.append(failure["error"])
        return failed

    @property
    def exit_status(self) -> int:
        """The command's exit status: 2, 1 or 0.

        2 when a rank stopped early (as one process stops on its error), 1 when an input failed.
        """
        return 2 if self.stopped else 1 if self.failures else 0

    @classmethod
    def combine(cls, summaries: list[FolderSummary]) -> FolderSummary:
        """The summary of a run whose ranks each give one (every rank skipped the same inputs)."""
        return cls(
            written=sum(s.written for s in summaries),
            skipped=summaries[0].skipped,
            failures=[row for s in summaries for row in s.failures],
            cropped=sum(s.cropped for s in summaries),
            padded=sum(s.padded for s in summaries),
            stopped=[reason for s in summaries for reason in s.stopped],
        )


def write_share(
    writer: FolderWriter,
    batches: Iterable[Batch],
    write_batch: Callable[[Batch, FolderSummary], None],
    summary: FolderSummary,
) -> FolderSummary:
    """Write this rank's ``batches``, close the folder; every rank's summary (on rank 0).

    With several ranks an a2i error (a full disk…) stops this rank only: its finished batches
    are kept and merged, the others finish theirs, and the error is in ``stopped``. With one it
    is raised, as before ranks existed.
    """
    ranks = writer.ranks
    try:
        for batch in batches:
            write_batch(batch, summary)
    except A2IError as error:
        if not ranks.distributed:
            raise
        summary.stopped.append(f"rank {ranks.rank} stopped: {error}")
    writer.close()
    summary.written = writer.written
    summary.skipped = writer.skipped
    summary.failures = writer.failures
    return FolderSummary.combine(ranks.gather(summary))


def predict_folder(
    pipeline: AudioToImagePipeline,
    request: GenerationRequest,
    root: Path,
    keys: list[str],
    writer: ImageFolderWriter,
    show_progress: bool = True,
) -> FolderSummary:
    """Generate the images of ``root/<key>`` for this rank's share of the keys not already done.

    ``request`` comes from :meth:`AudioToImagePipeline.prepare_request`; ``show_progress``
    shows rank 0's progress (:class:`~a2i.pipelines.progress.FolderProgress`).
    """
    clip = pipeline.model.clip_seconds
    batches = share_batches(writer, keys, pipeline.batch_size)
    total = sum(map(len, batches))
    progress = FolderProgress("predict", total, ranks=writer.ranks, shown=show_progress)

    def draw(chunk: list[str], summary: FolderSummary) -> None:
        output = pipeline.run([root / key for key in chunk], request)
        details = []
        for duration, offset in zip(output.durations, output.offsets, strict=True):
            if duration is not None:
                summary.cropped += duration > clip
                summary.padded += duration < clip
            details.append({"duration": duration, "offset": offset})
        writer.write(chunk, output.images, output.errors, details)
        progress.advance(len(chunk))

    summary = write_share(writer, batches, draw, FolderSummary())
    progress.close()
    return summary


def share_batches(writer: FolderWriter, keys: list[str], batch_size: int) -> list[list[str]]:
    """This rank's batches of the keys the writer has not done (skipped ones are counted).

    The keys still to do are sorted and cut into batches as one process would, and rank ``r``
    takes every ``world_size``-th batch from the ``r``-th: each image is computed in the same
    batch as in a one-process run, so it is the same to the bit (float sums depend on the batch).
    """
    todo = sorted(writer.pending(keys))
    batches = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    return batches[writer.ranks.rank :: writer.ranks.world_size]
