"""CelebV-HQ (Zhu et al., ECCV 2022) for speech → face (Sound2Vision §6.3).

Expected layout (the release's annotation file and its processed, face-cropped clips)::

    <root>/celebvhq_info.json      # {"meta_info": {...}, "clips": {clip_id: {...}}}
    <root>/processed/<clip_id>.mp4

With ``crop_faces: true`` a2i cuts the clips itself from the source videos
(``<root>/<video_dir>/<ytb_id>.mp4``), using each clip's ``duration`` and ``bbox``, so every
frame is face-centred. The appearance, action and emotion attributes are kept as clip
metadata for evaluation. Sound2Vision trains on 20,000 clips chosen arbitrarily and tests on
the rest; a2i's rule: clip ids sorted, shuffled with ``random.Random(seed)``, the first
``train_clips`` train, the next ``val_clips`` validation, the rest test.
"""

from __future__ import annotations

import json
import random
from typing import Any

from a2i.build.clips import ScanResult, VideoClip
from a2i.data.vegas import clip_key
from a2i.data.video_datamodule import VideoDataModule
from a2i.errors import ConfigError, DatasetNotFoundError, ManifestError


class CelebVHQDataModule(VideoDataModule):
    """CelebV-HQ talking faces; speech is the input, a face frame the target.

    Args:
        root: Raw folder (``celebvhq_info.json`` + videos).
        info_file: The release's annotation JSON, relative to ``root``.
        video_dir: Folder of the videos, relative to ``root``.
        crop_faces: Cut clips from source videos by the annotated time span and face box
            (``<video_dir>/<ytb_id>.mp4``) instead of reading processed ``<clip_id>.mp4``.
        train_clips: Training clips (Sound2Vision §6.3: 20,000).
        val_clips: Validation clips (a2i's addition; not in the paper).
        seed: Seed of the shuffle that assigns clips to splits.
        caption: Text of every clip (there are no classes).
        **kwargs: Shared preparation and loading settings (:class:`VideoDataModule`).
    """

    prepare_hint = (
        "expected <root>/celebvhq_info.json and <root>/processed/<clip_id>.mp4 (docs/datasets.md)"
    )

    def __init__(
        self,
        root: str,
        info_file: str = "celebvhq_info.json",
        video_dir: str = "processed",
        crop_faces: bool = False,
        train_clips: int = 20000,
        val_clips: int = 200,
        seed: int = 0,
        caption: str = "a face",
        **kwargs: Any,
    ) -> None:
        if train_clips < 0 or val_clips < 0:
            raise ConfigError("data.train_clips and data.val_clips must be >= 0")
        self.info_file = info_file
        self.video_dir = video_dir
        self.crop_faces = crop_faces
        self.train_clips = train_clips
        self.val_clips = val_clips
        self.seed = seed
        self.caption = caption
        super().__init__(root, **kwargs)

    def scan(self) -> ScanResult:
        """Read the annotation JSON, split by the seeded rule, find each clip's video."""
        path = self.raw_root / self.info_file
        if not path.is_file():
            raise DatasetNotFoundError(self.raw_root, f"no {self.info_file}; {self.prepare_hint}")
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
            entries = info["clips"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ManifestError(f"{path}: not a CelebV-HQ annotation file ({error})") from None
        mapping = info.get("meta_info", {})
        ids = sorted(entries)
        random.Random(self.seed).shuffle(ids)
        result = ScanResult()
        for position, clip_id in enumerate(ids):
            entry = entries[clip_id]
            split = (
                "train"
                if position < self.train_clips
                else "val"
                if position < self.train_clips + self.val_clips
                else "test"
            )
            try:
                meta = {"clip_id": clip_id, **_attributes(entry, mapping)}
                start, duration, crop = 0.0, None, None
                if self.crop_faces:
                    video = self.raw_root / self.video_dir / f"{entry['ytb_id']}.mp4"
                    span, box = entry["duration"], entry["bbox"]
                    start = float(span["start_sec"])
                    duration = float(span["end_sec"]) - start
                    crop = (
                        int(box["top"]),
                        int(box["bottom"]),
                        int(box["left"]),
                        int(box["right"]),
                    )
                else:
                    video = self.raw_root / self.video_dir / f"{clip_id}.mp4"
            except (KeyError, TypeError, ValueError) as error:
                raise ManifestError(f"{path}: clip '{clip_id}' lacks {error}") from None
            key = clip_key(clip_id)
            result.add(
                VideoClip(
                    key=key,
                    video=str(video),
                    split=split,
                    caption=self.caption,
                    start=start,
                    duration=duration,
                    crop=crop,
                    meta=meta,
                )
            )
        return result


def _attributes(entry: dict[str, Any], mapping: dict[str, Any]) -> dict[str, Any]:
    """Named appearance/action attributes (multi-hot vectors → names) and emotion labels."""
    attributes = entry.get("attributes", {})
    named: dict[str, Any] = {}
    for kind in ("appearance", "action"):
        flags = attributes.get(kind, [])
        names = mapping.get(f"{kind}_mapping")
        if names and len(names) == len(flags):
            named[kind] = [name for name, flag in zip(names, flags, strict=True) if flag]
        else:
            named[kind] = [index for index, flag in enumerate(flags) if flag]
    emotion = attributes.get("emotion")
    if isinstance(emotion, dict):
        named["emotion"] = emotion.get("labels")
    return named
