"""CLAP embeddings of every 5 s chunk of the audio pool, computed once and kept on disk.

The pool's files, sorted by id, are cut into parts of ``part_size`` files. A part is decoded
(16 kHz mono, :func:`a2i.audio.io.read_audio`), chunked (A.7), embedded in batches by CLAP and
measured (BS.1770 loudness per chunk, so silent chunks can be left out of retrieval), then
written as ``parts/part-NNNNN.json`` (its chunks and the files that failed to decode) and
``parts/part-NNNNN.safetensors`` (embeddings and loudness), each atomically, the tensors last:
a part whose tensors exist is complete, and a killed run resumes by redoing only the others, as
``a2i prepare`` does with shards (:mod:`a2i.build.prepare`).

``pool_settings.json`` records what decides the embeddings: the chunking (rate, length), the
file list and CLAP (class, checkpoint, front end, a hash of its weights). A cache made with any
other value is refused with the differing fields named, never mixed with new embeddings.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from a2i.audio.effects import loudness
from a2i.audio.io import read_audio
from a2i.build.shards import remove_partial_files
from a2i.build.sonify.pool import (
    CHUNK_SECONDS,
    POOL_SAMPLE_RATE,
    PoolFile,
    PoolReader,
    PoolScan,
    chunk_waveform,
    resample_chunks,
)
from a2i.encoders.audio.clap import ClapEncoder
from a2i.errors import A2IError, ConfigError
from a2i.io_utils import atomic_write, atomic_write_text
from a2i.runtime import ONE_PROCESS, Ranks

logger = logging.getLogger(__name__)

POOL_SETTINGS_FILE = "pool_settings.json"
POOL_PROBLEMS_FILE = "problems.log"
PARTS_DIR = "parts"


@dataclass
class PoolSettings:
    """Everything that decides the cached embeddings (stored as ``pool_settings.json``).

    Attributes:
        sample_rate: Pool standardisation rate (A.7: 16 kHz).
        chunk_seconds: Chunk length (A.7: 5 s).
        part_size: Files per cache part.
        clap: The encoder's :meth:`~a2i.encoders.audio.clap.ClapEncoder.recipe`.
        files_sha1: Hash of the sorted file ids (a pool with other files is another cache).
    """

    sample_rate: int = POOL_SAMPLE_RATE
    chunk_seconds: float = CHUNK_SECONDS
    part_size: int = 256
    clap: dict[str, Any] = field(default_factory=dict)
    files_sha1: str = ""

    def digest(self) -> str:
        """A short hash of the whole recipe (recorded by the sonified dataset that uses it)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def refuse_other_settings(path: Path, wanted: dict[str, Any], remedy: str) -> None:
    """Write ``wanted`` to ``path``, or raise naming every field that differs from what is there."""
    if path.is_file():
        found = json.loads(path.read_text(encoding="utf-8"))
        changed = differences(found, wanted)
        if changed:
            raise ConfigError(
                f"{path.parent} was made with another recipe ({', '.join(changed)} differ; see "
                f"{path}); {remedy}"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(wanted, indent=1, sort_keys=True) + "\n")


def differences(found: Any, wanted: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields that differ between two JSON values (nested dicts walked)."""
    if isinstance(found, dict) and isinstance(wanted, dict):
        names = []
        for key in sorted(set(found) | set(wanted)):
            names += differences(found.get(key), wanted.get(key), f"{prefix}{key}.")
        return names
    if found != wanted:
        return [prefix.rstrip(".") or "value"]
    return []


@dataclass
class PoolIndex:
    """The embedded pool: one row per chunk.

    Attributes:
        chunk_file: File id of each row.
        chunk_index: ``(N,)`` chunk number of each row inside its file.
        embeddings: ``(N, D)`` unit-length CLAP audio embeddings.
        lufs: ``(N,)`` loudness of each chunk (``-inf`` for silence).
        problems: ``{"file", "path", "problem"}`` for each file that could not be decoded.
        settings: The recipe of the cache.
        reader: Reads the chunks' samples back (for mixing).
    """

    chunk_file: list[str]
    chunk_index: Tensor
    embeddings: Tensor
    lufs: Tensor
    problems: list[dict[str, str]]
    settings: PoolSettings
    reader: PoolReader

    def __len__(self) -> int:
        return len(self.chunk_file)

    def audible(self) -> Tensor:
        """Rows with a measurable loudness (silence can be neither retrieved nor normalised)."""
        return torch.isfinite(self.lufs)

    def chunk_id(self, row: int) -> str:
        """``<file id>#<chunk>`` of a row (how logs name a chunk)."""
        return f"{self.chunk_file[row]}#{int(self.chunk_index[row])}"


class _DecodedFiles(Dataset):
    """Files decoded to pool-rate mono (in DataLoader workers when asked)."""

    def __init__(self, files: list[PoolFile], sample_rate: int) -> None:
        self.files = files
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[PoolFile, Tensor | None, str]:
        file = self.files[index]
        try:
            return file, read_audio(file.path, self.sample_rate), ""
        except A2IError as error:
            return file, None, str(error)


def _as_list(items: list[Any]) -> list[Any]:
    return items


def as_clap(encoder: object) -> ClapEncoder:
    """``encoder`` if it is a CLAP (retrieval embeds audio and text in one space), else a fix."""
    if not isinstance(encoder, ClapEncoder):
        raise ConfigError(
            f"data.clap must be a CLAP encoder (a2i.encoders.audio.clap.ClapEncoder), got "
            f"{type(encoder).__name__}"
        )
    return encoder


def complete_settings(
    files: list[PoolFile], clap: ClapEncoder, settings: PoolSettings
) -> PoolSettings:
    """``settings`` with the CLAP recipe and the file-list hash filled in."""
    ids = "\n".join(sorted(file.id for file in files))
    return replace(settings, clap=clap.recipe(), files_sha1=hashlib.sha1(ids.encode()).hexdigest())


def part_name(index: int) -> str:
    """``part-00003``."""
    return f"part-{index:05d}"


def embed_pool(
    scan: PoolScan,
    directory: str | Path,
    clap: ClapEncoder,
    settings: PoolSettings | None = None,
    *,
    batch_size: int = 64,
    decode_workers: int = 0,
    device: str = "cpu",
    progress: bool = True,
    ranks: Ranks = ONE_PROCESS,
) -> PoolIndex:
    """Embed every chunk of the pool's files into ``directory`` (resuming), and load the result.

    Several ranks embed every ``world_size``-th part still to do each (parts do not depend on
    the rank count), then every rank loads the whole cache.

    Args:
        scan: The pool's files (:func:`a2i.build.sonify.pool.scan_pools`).
        directory: The cache folder (shareable between sonified datasets of one pool).
        clap: The encoder; its recipe and weight hash are part of the cache's settings.
        settings: Chunking and part size (``clap`` and ``files_sha1`` are filled in here).
        batch_size: Chunks embedded at once.
        decode_workers: Processes decoding files (0: in this process).
        device: Where CLAP runs.
        progress: Show a progress bar (rank 0's share).
        ranks: The processes that embed together (each calls this with the same arguments).
    """
    directory = Path(directory)
    settings = settings or PoolSettings()
    if settings.part_size < 1:
        raise ConfigError(f"pool part_size must be >= 1 (got {settings.part_size})")
    files = sorted(scan.files, key=lambda file: file.id)
    settings = complete_settings(files, clap, settings)
    parts_dir = directory / PARTS_DIR
    refused = None
    if ranks.is_main:
        try:
            refuse_other_settings(
                directory / POOL_SETTINGS_FILE,
                asdict(settings),
                "use another pool_cache folder, or delete that one to embed the pool again",
            )
            remove_partial_files(parts_dir)
        except A2IError as error:
            refused = error
    ranks.agree(refused)
    plan = {
        part_name(i // settings.part_size): files[i : i + settings.part_size]
        for i in range(0, len(files), settings.part_size)
    }
    done = {path.stem for path in parts_dir.glob("part-*.safetensors")} & set(plan)
    todo = ranks.share(set(plan) - done)
    if todo:
        clap.to(device).eval()
    bar = tqdm(
        total=sum(len(plan[name]) for name in todo),
        unit="file",
        desc="a2i sonify: embedding the audio pool",
        disable=not progress or not ranks.is_main,
    )
    for name in todo:
        _embed_part(parts_dir, name, plan[name], clap, settings, batch_size, decode_workers)
        bar.update(len(plan[name]))
    bar.close()
    ranks.barrier()
    return load_pool(directory, files, settings, sorted(plan))


@torch.no_grad()
def _embed_part(
    parts_dir: Path,
    name: str,
    files: list[PoolFile],
    clap: ClapEncoder,
    settings: PoolSettings,
    batch_size: int,
    decode_workers: int,
) -> None:
    """Decode, chunk, embed and measure one part's files; write its sidecar, then its tensors."""
    loader = DataLoader(
        _DecodedFiles(files, settings.sample_rate),
        batch_size=1,
        num_workers=decode_workers,
        collate_fn=_as_list,
    )
    rows: list[list[Any]] = []
    chunks: list[Tensor] = []
    problems: list[dict[str, str]] = []
    for [(file, waveform, error)] in loader:
        if waveform is None:
            problems.append({"file": file.id, "path": file.path, "problem": error})
            continue
        pieces = chunk_waveform(waveform, settings.sample_rate, settings.chunk_seconds)
        rows += [[file.id, index] for index in range(len(pieces))]
        chunks += list(pieces)
    embeddings, lufs = [], []
    for first in range(0, len(chunks), batch_size):
        batch = torch.stack(chunks[first : first + batch_size])
        audio = resample_chunks(batch, settings.sample_rate, clap.sample_rate)
        embeddings.append(clap(audio).pooled.float().cpu())
        lufs += [loudness(chunk, settings.sample_rate) for chunk in batch]
    width = clap.embed_dim
    tensors = {
        "embeddings": torch.cat(embeddings) if embeddings else torch.zeros(0, width),
        "lufs": torch.tensor(lufs, dtype=torch.float32),
    }
    sidecar = {"part": name, "chunks": rows, "problems": problems}
    atomic_write_text(parts_dir / f"{name}.json", json.dumps(sidecar, indent=0) + "\n")
    with atomic_write(parts_dir / f"{name}.safetensors") as tmp:
        save_file(tensors, str(tmp))


def load_pool(
    directory: Path, files: list[PoolFile], settings: PoolSettings, names: list[str]
) -> PoolIndex:
    """Read the parts ``names`` of a complete cache into one :class:`PoolIndex`."""
    parts_dir = Path(directory) / PARTS_DIR
    chunk_file: list[str] = []
    chunk_index: list[int] = []
    embeddings, lufs, problems = [], [], []
    for name in names:
        sidecar = json.loads((parts_dir / f"{name}.json").read_text(encoding="utf-8"))
        tensors = load_file(str(parts_dir / f"{name}.safetensors"))
        if len(sidecar["chunks"]) != len(tensors["embeddings"]):
            raise ConfigError(f"{parts_dir / name}: sidecar and tensors disagree; delete both")
        chunk_file += [file_id for file_id, _ in sidecar["chunks"]]
        chunk_index += [index for _, index in sidecar["chunks"]]
        embeddings.append(tensors["embeddings"])
        lufs.append(tensors["lufs"])
        problems += sidecar["problems"]
    for problem in problems:
        logger.warning("audio pool: %s: %s", problem["path"], problem["problem"])
    lines = "".join(f"{p['file']}\t{p['path']}\t{p['problem']}\n" for p in problems)
    atomic_write_text(Path(directory) / POOL_PROBLEMS_FILE, "file\tpath\tproblem\n" + lines)
    return PoolIndex(
        chunk_file=chunk_file,
        chunk_index=torch.tensor(chunk_index, dtype=torch.long),
        embeddings=torch.cat(embeddings),
        lufs=torch.cat(lufs),
        problems=problems,
        settings=settings,
        reader=PoolReader(files, settings.sample_rate, settings.chunk_seconds),
    )


def read_pool_problems(directory: str | Path) -> list[str]:
    """``file: problem`` for each pool file the last embedding could not decode."""
    path = Path(directory) / POOL_PROBLEMS_FILE
    if not path.is_file():
        return []
    rows = path.read_text(encoding="utf-8").splitlines()[1:]
    return [f"{row.split(chr(9))[1]}: {row.split(chr(9), 2)[2]}" for row in rows if row]
