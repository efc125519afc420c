"""VGGSound (Chen et al., ICASSP 2020) from a local copy of its clips and official CSV.

Expected layout (a2i does not download YouTube)::

    <root>/vggsound.csv            # official: youtube_id,start_seconds,label,train|test
    <root>/video/<id>_<start:06d>.mp4

The class list (``a2i/assets/datasets/vggsound_classes.txt``, the 310 distinct labels of the
official CSV, alphabetical; label = index) ships with a2i so label indices never depend on
which clips a user has. Sound2Vision §4.1 trains on a 50-class subset and the official split;
the authors publish the 50 names (Sound2Scene ``samples/categories.txt``), shipped as
``a2i/assets/datasets/sound2scene_vggsound50.txt``: ``classes: sound2scene_vggsound50.txt``.
VGGSound has no validation split: a2i holds out ``val_fraction`` of train by a hash of
``val_seed`` and the clip key (:func:`a2i.build.clips.holdout`).
"""

from __future__ import annotations

import csv
import difflib
from importlib import resources
from pathlib import Path
from typing import Any

from a2i.build.clips import ScanResult, VideoClip, holdout, segment_start
from a2i.data.video_datamodule import VideoDataModule, check_fraction
from a2i.errors import ConfigError, DatasetNotFoundError, ManifestError

CLASSES_ASSET = "assets/datasets/vggsound_classes.txt"


def vggsound_classes() -> list[str]:
    """The 310 VGGSound labels in index order."""
    return _class_lines(resources.files("a2i").joinpath(CLASSES_ASSET).read_text(encoding="utf-8"))


def _class_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def read_class_file(name: str) -> list[str]:
    """Class names, one per line, from a file; a bare name not on disk is a shipped list.

    Shipped lists live in ``a2i/assets/datasets/`` (``sound2scene_vggsound50.txt``), so a paper
    config can name its class subset without a path that depends on where a2i is installed.
    """
    path = Path(name)
    if not path.is_file() and path.name == name:
        shipped = resources.files("a2i").joinpath("assets/datasets", name)
        if shipped.is_file():
            return _class_lines(shipped.read_text(encoding="utf-8"))
    try:
        return _class_lines(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"data.classes '{name}': cannot read it ({error})") from None


class VGGSoundDataModule(VideoDataModule):
    """VGGSound clips (10 s) with the official train/test split.

    Args:
        root: Raw folder (``vggsound.csv`` + ``video/``).
        csv_file: The official CSV, relative to ``root``.
        video_dir: Folder of the clips, relative to ``root``.
        filename: Clip file name pattern (``ytid``, ``start`` fields).
        classes: Class subset in label order (None: all 310), or a file of names, one per line
            (:func:`read_class_file`); Sound2Vision §4.1's 50: ``sound2scene_vggsound50.txt``.
        val_fraction: Share of the train split held out for validation.
        val_seed: Seed of that hold-out.
        clip_duration: Clip length in seconds from ``start`` (VGGSound clips are 10 s).
        **kwargs: Shared preparation and loading settings (:class:`VideoDataModule`).
    """

    prepare_hint = (
        "expected <root>/vggsound.csv and <root>/video/<youtube_id>_<start:06d>.mp4 "
        "(docs/datasets.md)"
    )

    def __init__(
        self,
        root: str,
        csv_file: str = "vggsound.csv",
        video_dir: str = "video",
        filename: str = "{ytid}_{start:06d}.mp4",
        classes: list[str] | str | None = None,
        val_fraction: float = 0.02,
        val_seed: int = 0,
        clip_duration: float = 10.0,
        **kwargs: Any,
    ) -> None:
        check_fraction("val_fraction", val_fraction)
        self.csv_file = csv_file
        self.video_dir = video_dir
        self.filename = filename
        self.subset = read_class_file(classes) if isinstance(classes, str) else classes
        self.val_fraction = val_fraction
        self.val_seed = val_seed
        self.clip_duration = clip_duration
        super().__init__(root, **kwargs)

    def scan(self) -> ScanResult:
        """Read the CSV, keep the subset's classes, look for each clip's file."""
        known = vggsound_classes()
        classes = self.subset or known
        unknown = [name for name in classes if name not in known]
        if unknown:
            hints = {n: difflib.get_close_matches(n, known, n=1) for n in unknown}
            raise ConfigError(f"data.classes has names VGGSound does not have: {hints}")
        label_of = {name: index for index, name in enumerate(classes)}
        path = self.raw_root / self.csv_file
        if not path.is_file():
            raise DatasetNotFoundError(self.raw_root, f"no {self.csv_file}; {self.prepare_hint}")
        result = ScanResult(classes=list(classes))
        with path.open(newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                if not row or row[0].startswith("#"):
                    continue
                if len(row) != 4:
                    raise ManifestError(f"{path}:{number}: expected 4 columns, got {len(row)}")
                ytid, start, label, split = (value.strip() for value in row)
                if label not in known:
                    raise ManifestError(f"{path}:{number}: unknown label '{label}'")
                if split not in ("train", "test"):
                    raise ManifestError(f"{path}:{number}: split must be train or test")
                if label not in label_of:
                    continue
                seconds = segment_start(start, f"{path}:{number}")
                key = f"{ytid}_{seconds:06d}".replace(".", "_")
                video = (
                    self.raw_root / self.video_dir / self.filename.format(ytid=ytid, start=seconds)
                )
                if split == "train" and holdout(key, self.val_fraction, self.val_seed):
                    split = "val"
                result.add(
                    VideoClip(
                        key=key,
                        video=str(video),
                        split=split,
                        label=label_of[label],
                        caption=label,
                        duration=self.clip_duration,
                        meta={"youtube_id": ytid, "start": seconds},
                    )
                )
        return result
