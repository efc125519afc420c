"""Published per-clip annotation files: which frame of a clip to train on, which clips to drop.

The authors of both seed papers publish what their data pipelines chose: Sound2Scene (the
official Sound2Vision code) its §3.3 frames, ``top1_boxes_top10_moments.json`` (clip name →
the 10 most audio-visually correlated frame numbers at 10 fps, best first); AudioToken its
CLIP-chosen frames, ``constants/best_frames.json``, and two lists of YouTube ids its training
set drops, ``constants/unmatch_videos.pkl`` and ``constants/low_quality_videos.pkl``. They name
clips their own way, so each reader maps names to a2i clip keys with a :data:`KeyStyle`.

Files are read as data only: JSON, CSV or text. Pickle files can run code when loaded, so a2i
refuses them; ``python -m a2i.build.annotations <in.pkl> <out.json>`` converts one once with an
unpickler that admits only lists, tuples, sets, dicts, strings and numbers (:func:`convert_pickle`).
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from a2i.build.clips import VideoClip
from a2i.errors import ConfigError, DatasetNotFoundError

KeyStyle = Literal["key", "vggsound_ms", "youtube_id"]
"""How a file names clips: ``key`` = a2i's clip key; ``vggsound_ms`` = ``<youtube id>_<start
ms>_<end ms>`` (Sound2Scene, AudioToken), mapped to a2i's VGGSound key ``<youtube id>_<start
s:06d>``; ``youtube_id`` = the bare video id (AudioToken's drop lists), which matches every clip
of that video."""

SAFE_PICKLE_TYPES = frozenset({"list", "tuple", "set", "frozenset", "dict", "str", "int", "float"})


def clip_key(name: str, style: KeyStyle) -> str:
    """The a2i key a file's clip ``name`` refers to (``youtube_id`` names stay ids)."""
    if style != "vggsound_ms":
        return name
    parts = name.rsplit("_", 2)
    ytid, start, end = parts if len(parts) == 3 else ("", "", "")
    if not (ytid and start.isdigit() and end.isdigit()):
        raise ConfigError(f"clip name '{name}' is not <youtube id>_<start ms>_<end ms>")
    return f"{ytid}_{int(start) // 1000:06d}"


def _read_text(path: str, field: str, source: str) -> str:
    """The file's text, or an error naming the config field and where the file comes from."""
    file = Path(path)
    if file.suffix.lower() in (".pkl", ".pickle"):
        raise ConfigError(
            f"{field} '{path}': a2i does not load pickle files (loading one can run code); "
            f"convert it once to JSON with `python -m a2i.build.annotations {path} "
            f"{file.with_suffix('.json')}` (admits only lists, dicts, strings and numbers) "
            "and name the .json file here"
        )
    if not file.is_file():
        raise DatasetNotFoundError(path, f"{field} names this published file; {source}")
    return file.read_text(encoding="utf-8")


def _rows(text: str, suffix: str) -> Any:
    """JSON as is; CSV and text as lists of rows (a header row ``key,...`` is skipped)."""
    if suffix == ".json":
        return json.loads(text)
    if suffix == ".csv":
        rows = [row for row in csv.reader(io.StringIO(text)) if row and row[0].strip()]
        return rows[1:] if rows and rows[0][0].strip().lower() == "key" else rows
    return [[line.strip()] for line in text.splitlines() if line.strip()]


def read_clip_names(path: str, field: str, source: str = "") -> list[str]:
    """Clip names from a JSON list (or the keys of a JSON object), a CSV's first column or lines."""
    suffix = Path(path).suffix.lower()
    try:
        data = _rows(_read_text(path, field, source or "check the path"), suffix)
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as error:
        raise ConfigError(f"{field} '{path}': not a readable {suffix} file ({error})") from None
    if isinstance(data, dict):
        return [str(name) for name in data]
    if suffix == ".json":
        if not isinstance(data, list) or not all(isinstance(n, str) for n in data):
            raise ConfigError(f"{field} '{path}': expected a JSON list of clip names")
        return data
    return [row[0].strip() for row in data]


def read_frame_annotations(
    path: str, field: str, pick: Callable[[Any], float], source: str = ""
) -> dict[str, float]:
    """Clip name → ``pick(value)`` from a JSON object or ``key,value`` CSV rows."""
    suffix = Path(path).suffix.lower()
    try:
        data = _rows(_read_text(path, field, source or "check the path"), suffix)
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as error:
        raise ConfigError(f"{field} '{path}': not a readable {suffix} file ({error})") from None
    if suffix == ".csv":
        data = {row[0].strip(): row[1].strip() for row in data if len(row) > 1}
    if not isinstance(data, dict):
        raise ConfigError(f"{field} '{path}': expected a JSON object or key,value CSV rows")
    picked = {}
    for name, value in data.items():
        try:
            picked[str(name)] = float(pick(value))
        except (TypeError, ValueError, IndexError) as error:
            raise ConfigError(
                f"{field} '{path}': clip '{name}' has value {value!r} ({error})"
            ) from None
    return picked


class _ContainersOnly(pickle.Unpickler):
    """Admits builtin containers, strings and numbers; any other global is refused unloaded."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in SAFE_PICKLE_TYPES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused {module}.{name}: not a plain container or number")


def convert_pickle(source: str | Path, target: str | Path) -> int:
    """Write the pickled list/set/dict in ``source`` as JSON to ``target``; returns its length.

    Only builtin containers, strings and numbers are admitted, so a malicious file fails instead
    of running code. Sets become sorted lists.
    """
    with open(source, "rb") as handle:
        try:
            data = _ContainersOnly(handle).load()
        except (pickle.UnpicklingError, EOFError, ValueError) as error:
            raise ConfigError(f"'{source}': not a pickle of plain containers ({error})") from None
    if isinstance(data, set | frozenset | tuple):
        data = sorted(data) if isinstance(data, set | frozenset) else list(data)
    if not isinstance(data, list | dict):
        raise ConfigError(f"'{source}': holds a {type(data).__name__}, not a list or dict")
    Path(target).write_text(json.dumps(data, default=_json_set), encoding="utf-8")
    return len(data)


def _json_set(value: Any) -> list:
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


@dataclass
class ClipList:
    """A published list of clips that a dataset keeps exclusively or drops (before decoding).

    Attributes:
        path: JSON list / object keys, CSV first column or one name per line (no pickle).
        action: ``drop`` the listed clips, or ``keep`` only them.
        match: How the file names clips (:data:`KeyStyle`).
        splits: The splits it applies to (None: all); AudioToken filters its training set only.
    """

    path: str
    action: Literal["keep", "drop"] = "drop"
    match: KeyStyle = "key"
    splits: list[Literal["train", "val", "test"]] | None = None

    def names(self) -> set[str]:
        """The listed clips as a2i keys (or YouTube ids for ``match: youtube_id``)."""
        names = read_clip_names(self.path, "data.clip_lists.path")
        return {clip_key(name, self.match) for name in names}

    def apply(self, clips: list[VideoClip]) -> list[VideoClip]:
        """The clips that stay (``youtube_id`` lists match the clips' ``meta["youtube_id"]``)."""
        listed, keep = self.names(), self.action == "keep"

        def stays(clip: VideoClip) -> bool:
            if self.splits is not None and clip.split not in self.splits:
                return True
            name = clip.meta.get("youtube_id") if self.match == "youtube_id" else clip.key
            return (name in listed) == keep

        return [clip for clip in clips if stays(clip)]


def main(argv: list[str] | None = None) -> None:
    """``python -m a2i.build.annotations in.pkl out.json``: the one conversion a2i offers."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.exit("usage: python -m a2i.build.annotations <in.pkl> <out.json>")
    try:
        count = convert_pickle(*args)
    except (ConfigError, OSError) as error:
        sys.exit(str(error))
    print(f"{args[1]}: {count} entries")


if __name__ == "__main__":
    main()
