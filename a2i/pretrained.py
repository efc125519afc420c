"""One way to say "these weights": resolve a ``pretrained`` value, load it offline, write weights.

Every component takes its weights as ``pretrained: str | None`` (parts of a component as
``<part>_pretrained``) and sends it through :func:`resolve_weights`, which finds what it names on
this machine: a local file or folder, a file in ``$A2I_CACHE``, a weights file shipped in
``a2i/assets``, or else a hub id / library tag for the owning library's cache. a2i-trained
weights are ``.safetensors`` files of one module's state dict, loaded into its ``preset``;
published checkpoints go through their own library (transformers, diffusers, open_clip, timm,
torchvision) with the hub offline (:meth:`Weights.load`). Nothing is ever downloaded: a
checkpoint that is not on disk stops the run with one
:class:`~a2i.errors.CheckpointNotFoundError` naming it, the config field and how to get it.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
from huggingface_hub import constants as hub_constants
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from a2i.errors import CheckpointNotFoundError, OutputExistsError, WeightsFileError
from a2i.io_utils import atomic_write

T = TypeVar("T")

CACHE_ENV = "A2I_CACHE"


def cache_dir() -> Path:
    """Where a2i looks for checkpoints given by bare file name (``$A2I_CACHE``, default ~/.cache/a2i)."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "a2i"))


ASSETS_DIR = Path(__file__).parent / "assets"
"""Small a2i-trained weights shipped with the package (tiny presets); see docs/checkpoints.md."""

WEIGHT_FILE_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".tar", ".npz")
"""A ``pretrained`` value ending like this names a file, never a hub id or a library tag."""

LOCAL_FILE = "a2i (local file)"


@dataclass(frozen=True)
class Weights:
    """The weights a ``pretrained`` value names, found on this machine (:func:`resolve_weights`).

    Attributes:
        spec: The value as written.
        field: The config field that gave it (``ClassName.argument``), named in every error.
        path: The local file or folder; None for a hub id or library tag, which only the owning
            library's cache can provide (:meth:`load`).
    """

    spec: str
    field: str
    path: Path | None = None

    @property
    def is_file(self) -> bool:
        """A local file (not a folder, not a hub id)."""
        return self.path is not None and self.path.is_file()

    @property
    def is_a2i_file(self) -> bool:
        """A ``.safetensors`` file: a2i's format for one module's own state dict."""
        return self.is_file and self.path.suffix == ".safetensors"

    def holds_only(self, prefix: str) -> bool:
        """Whether this is an a2i file whose tensors all start with ``prefix`` (header read only).

        Tells an a2i file of a wrapper (``model.*``, ``visual.*``) from a library's own
        ``.safetensors`` checkpoint, e.g. open_clip's, which holds both towers.
        """
        if not self.is_a2i_file:
            return False
        with safe_open(str(self.path), framework="pt") as handle:
            return all(key.startswith(prefix) for key in handle.keys())

    def metadata(self) -> dict[str, str]:
        """String metadata in an a2i file's header; {} for anything else."""
        if not self.is_a2i_file:
            return {}
        with safe_open(str(self.path), framework="pt") as handle:
            return dict(handle.metadata() or {})

    def local_file(self, *, library: str = LOCAL_FILE, download: str | None = None) -> Path:
        """The local file; a hub id or a folder raises :class:`CheckpointNotFoundError`."""
        if not self.is_file:
            raise CheckpointNotFoundError(self.spec, self.field, library=library, download=download)
        return self.path

    def state_dict(
        self, *, library: str = LOCAL_FILE, download: str | None = None
    ) -> dict[str, Tensor]:
        """Tensors of a ``.safetensors`` or tensors-only ``.pt``/``.pth`` file (:func:`load_tensors`)."""
        path = self.local_file(library=library, download=download)
        if path.suffix == ".safetensors":
            return load_file(str(path))
        return load_tensors(path, self.field)

    def load(
        self,
        loader: Callable[[str], T],
        *,
        library: str,
        download: str | None = None,
        name: str | None = None,
    ) -> T:
        """Run the owning library's ``loader(location)`` with the hub offline.

        ``location`` is the local path, or the hub id / tag for the library's cache. A checkpoint
        the library cannot find there becomes one :class:`CheckpointNotFoundError` naming it
        (``name``, default the spec), the field and ``download``, the command that fetches it
        on a connected machine.
        """
        location = self.spec if self.path is None else str(self.path)
        try:
            with hub_offline():
                return loader(location)
        except (OSError, RuntimeError, ValueError) as error:
            if self.path is not None and not isinstance(error, OSError):
                raise  # the files exist, so this is a real loading bug, not a missing checkpoint
            raise CheckpointNotFoundError(
                name or self.spec,
                self.field,
                library=library,
                download=download,
                cause=_first_line(error),
            ) from error


def resolve_weights(spec: str | None, field: str, *, download: str | None = None) -> Weights | None:
    """Find what a ``pretrained`` value names, without the network; None stays None.

    Looked for in order: the path as given, ``$A2I_CACHE/<spec>``, ``a2i/assets/<spec>`` (the
    shipped tiny weights, e.g. ``tiny/gan/generator.safetensors``). Anything else is a hub id or
    a library tag, left to :meth:`Weights.load`; but a value that can only be a file (a weights
    suffix, or a path from ``/``, ``~`` or ``.``) raises :class:`CheckpointNotFoundError` here.

    Args:
        spec: The ``pretrained`` value; None means no weights (the preset's initialisation).
        field: The config field that gave it (``ClassName.argument``).
        download: How to fetch a missing file, shown in the error.
    """
    if spec is None:
        return None
    for candidate in (Path(spec).expanduser(), cache_dir() / spec, ASSETS_DIR / spec):
        if candidate.exists():
            return Weights(spec, field, candidate)
    if spec.endswith(WEIGHT_FILE_SUFFIXES) or spec.startswith(("/", "~", ".")):
        raise CheckpointNotFoundError(spec, field, library=LOCAL_FILE, download=download)
    return Weights(spec, field)


def load_tensors(path: str | Path, source: str | None = None, *, mmap: bool = False) -> Any:
    """A torch file's tensors and plain containers (``torch.load(weights_only=True)``).

    A file that holds anything else (pickled objects, which run code when unpickled) is refused
    in one line. torch's own refusal advises re-running with ``weights_only=False``, that is,
    running the file's code: a2i never relays that advice, not even in a chained traceback.

    Args:
        path: The ``.pt``/``.pth``/``.ckpt`` file.
        source: Who named the file, for the error (a config field).
        mmap: Map the file instead of reading its tensors (a checkpoint's step, say).

    Raises:
        WeightsFileError: Not a tensors-only torch file.
    """
    named = f"'{path}'" + (f" (given by {source})" if source else "")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on the file's pickle protocol
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        imported = re.search(r"GLOBAL ([\w.]+)", str(error))
        holds = (
            f"it would import {imported[1]}"
            if imported
            else "not torch's format, or pickled objects"
        )
        message = (
            f"{named} is not a tensors-only checkpoint ({holds}); a2i reads tensors and plain "
            "containers only and never unpickles code"
        )
    except Exception as error:  # zip, EOF and torch errors: not a torch file
        detail = _first_line(error).split(". ")[0]  # torch's reason (the zip is cut, …)
        if Path(path).stat().st_size == 0:
            detail = "the file is empty"
        elif not isinstance(error, RuntimeError) or "weights_only" in detail:
            detail = type(error).__name__
        message = f"cannot read {named}: not a torch file ({detail})"
    raise WeightsFileError(path, message)


@contextmanager
def hub_offline() -> Iterator[None]:
    """huggingface_hub's offline mode while a library loads: cached files only, no request.

    The hub reads ``HF_HUB_OFFLINE`` once at import; the flag it checks before every request is
    set here, so no download is tried whatever the environment says.
    """
    previous = hub_constants.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = previous


def save_module(
    module: nn.Module,
    path: str | Path,
    dtype: torch.dtype | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Save a module's state dict as safetensors, atomically (see :func:`save_state_dict`)."""
    save_state_dict(module.state_dict(), path, dtype, metadata)


def save_state_dict(
    state: dict[str, torch.Tensor],
    path: str | Path,
    dtype: torch.dtype | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Save tensors as safetensors, atomically (:func:`~a2i.io_utils.atomic_write`).

    ``dtype`` casts floating-point tensors (e.g. float16 halves the shipped tiny weights;
    loading casts them back to the module's dtype). ``metadata`` goes into the safetensors
    header (read back with :func:`load_file_metadata`).
    """
    cast = {}
    for key, value in state.items():
        value = value.detach().contiguous().cpu()
        cast[key] = value.to(dtype) if dtype is not None and value.is_floating_point() else value
    with atomic_write(path) as tmp:
        save_file(cast, str(tmp), metadata=metadata)


ExportDtype = Literal["float32", "float16"]
"""Floating-point type of exported weights (float16 halves shipped files)."""

EXPORT_REMEDY = (
    "set overwrite_export: true (CLI: --model.init_args.overwrite_export true) "
    "or export somewhere else"
)


def files_in(
    directory: str | Path | None, parts: dict[str, nn.Module | dict[str, torch.Tensor]]
) -> dict[str | Path, nn.Module | dict[str, torch.Tensor]]:
    """``parts`` keyed by their file ``directory/<name>.safetensors``; none without a directory."""
    if directory is None:
        return {}
    return {Path(directory) / f"{name}.safetensors": part for name, part in parts.items()}


def export_parts(
    parts: dict[str | Path, nn.Module | dict[str, torch.Tensor]],
    *,
    overwrite: bool = False,
    dtype: ExportDtype = "float32",
    remedy: str = EXPORT_REMEDY,
) -> None:
    """Write each module (or state dict) to its ``.safetensors`` path, atomically.

    Every target is checked before any is written, so a refused export leaves no mix of old
    and new files.
    """
    existing = [str(path) for path in parts if Path(path).exists()]
    if existing and not overwrite:
        raise OutputExistsError(existing, remedy)
    for path, part in parts.items():
        state = part.state_dict() if isinstance(part, nn.Module) else part
        save_state_dict(state, path, getattr(torch, dtype))


def state_dict_problems(
    stored: dict[str, Tensor],
    expected: dict[str, Tensor],
    *,
    file_name: Callable[[str], str] = str,
    most: int | None = None,
) -> list[str]:
    """What keeps ``stored`` from loading into a module whose state dict is ``expected``.

    One ``"kind: key, key"`` entry per kind (missing, unexpected, shape); none when it fits, so
    a loader names every problem of a wrong file at once. ``file_name`` spells an expected key as
    the weights file names it; ``most`` caps the keys named per kind (`` …`` marks the rest).
    """
    missing = [file_name(key) for key in expected if key not in stored]
    unexpected = [key for key in stored if key not in expected]
    wrong = [
        f"{file_name(key)} {tuple(stored[key].shape)} (expected {tuple(value.shape)})"
        for key, value in expected.items()
        if key in stored and stored[key].shape != value.shape
    ]
    problems = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape", wrong)):
        if keys:
            more = " …" if most is not None and len(keys) > most else ""
            problems.append(f"{what}: {', '.join(keys[:most])}{more}")
    return problems


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
