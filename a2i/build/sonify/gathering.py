"""Step 1 of :mod:`a2i.build.sonify.build`: every image's concepts, appended to ``concepts.jsonl``.

A VLM is the slow step of sonifying, so its results are kept as they come (a killed run loses at
most the batch in flight) and shared over ranks: each rank describes every ``world_size``-th
batch into its own part, which rank 0 merges.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from a2i.build.sonify.concepts import ConceptSource, ImageConcepts
from a2i.build.sonify.images import ImageItem
from a2i.runtime import ONE_PROCESS, Ranks


def gather_concepts(
    images: Sequence[ImageItem],
    sources: Sequence[ConceptSource],
    path: Path,
    device: str = "cpu",
    progress: bool = True,
    ranks: Ranks = ONE_PROCESS,
) -> dict[tuple[str, str], ImageConcepts]:
    """``(source name, image key)`` → concepts, computing only what ``path`` does not hold yet.

    Lines are appended and flushed per batch; a line cut by a kill is dropped on resume. Rank
    ``R`` > 0 describes every ``world_size``-th batch (the batches of one process) into its
    part, which rank 0 merges into ``path`` once every rank is done (or, after a kill, first).
    """
    if ranks.is_main:
        _merge_concept_parts(path)
    ranks.barrier()
    done = _read_concepts(path)
    todo = {
        source.name: [image for image in images if (source.name, image.key) not in done]
        for source in sources
    }
    for source in sources:  # before any source spends hours on its images
        if todo[source.name]:
            source.check_remote_code()
    path.parent.mkdir(parents=True, exist_ok=True)
    own = path if ranks.is_main else path.with_name(f"{path.stem}.rank{ranks.rank}{path.suffix}")
    with own.open("a", encoding="utf-8") as handle:
        for source in sources:
            pending = todo[source.name]
            step = source.batch_size
            batches = [pending[i : i + step] for i in range(0, len(pending), step)]
            batches = batches[ranks.rank :: ranks.world_size]
            if batches:
                source.setup(device)
            bar = tqdm(
                total=sum(map(len, batches)),
                unit="image",
                desc=f"a2i sonify: concepts ({source.name})",
                disable=not progress or not ranks.is_main,
            )
            for batch in batches:
                for image, found in zip(batch, source.describe(batch), strict=True):
                    done[(source.name, image.key)] = found
                    row = {"source": source.name, "image": image.key, **found.to_dict()}
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                handle.flush()
                bar.update(len(batch))
            bar.close()
    if not ranks.distributed:
        return done
    ranks.barrier()
    if ranks.is_main:
        _merge_concept_parts(path)
    ranks.barrier()
    return _read_concepts(path)


def _concept_parts(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.stem}.rank*{path.suffix}"))


def _merge_concept_parts(path: Path) -> None:
    """Cut a line a kill left unfinished off ``path``, append the ranks' parts, delete them.

    A merge cut short before a part's deletion appends it again: the rows are the same, and
    the later one wins when they are read.
    """
    for source in [path, *_concept_parts(path)]:
        if not source.is_file():
            continue
        raw = source.read_bytes()
        whole = raw[: raw.rfind(b"\n") + 1]
        if source == path:
            if len(whole) != len(raw):
                path.write_bytes(whole)  # drop the line a killed run was writing
            continue
        with path.open("ab") as handle:
            handle.write(whole)
        source.unlink()


def _read_concepts(path: Path) -> dict[tuple[str, str], ImageConcepts]:
    done: dict[tuple[str, str], ImageConcepts] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            done[(row["source"], row["image"])] = ImageConcepts.from_dict(row)
    return done
