"""Loading published checkpoints offline, or failing with one clear message.

Every component with published weights takes ``pretrained=<hub id or local path>``. Loading goes
through the owning library (transformers, diffusers, open_clip, timm, torchvision); when the
checkpoint is not on disk or in the library's cache, :func:`load_pretrained` converts the
library's error into a :class:`~a2i.errors.CheckpointNotFoundError` that names the checkpoint,
the config field and how to get it. a2i-trained weights are plain safetensors files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from a2i.errors import CheckpointNotFoundError

T = TypeVar("T")

CACHE_ENV = "A2I_CACHE"


def cache_dir() -> Path:
    """Where a2i looks for checkpoints given by bare file name (``$A2I_CACHE``, default ~/.cache/a2i)."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "a2i"))


ASSETS_DIR = Path(__file__).parent / "assets"
"""Small a2i-trained weights shipped with the package (tiny presets); see README 'Tiny weights'."""


def resolve_local(pretrained: str) -> Path | None:
    """An existing local path for ``pretrained``: as given, in the a2i cache, or a shipped asset."""
    for candidate in (
        Path(pretrained).expanduser(),
        cache_dir() / pretrained,
        ASSETS_DIR / pretrained,
    ):
        if candidate.exists():
            return candidate
    return None


def load_pretrained(
    loader: Callable[[], T],
    *,
    checkpoint: str,
    field: str,
    library: str,
    download: str | None = None,
) -> T:
    """Run ``loader`` and turn any "not found / no network" failure into a clear error.

    Args:
        loader: Zero-argument callable doing the library's own loading.
        checkpoint: Hub id or path, as the user wrote it.
        field: Config field that asked for it (e.g. ``model.init_args.image_encoder.pretrained``).
        library: Owning library, shown in the message.
        download: Command that fetches the checkpoint on a connected machine.
    """
    try:
        return loader()
    except (OSError, RuntimeError, ValueError, FileNotFoundError) as error:
        if resolve_local(checkpoint) is not None and not isinstance(error, OSError):
            raise  # the file exists, so this is a real loading bug, not a missing checkpoint
        raise CheckpointNotFoundError(
            checkpoint, field, library=library, download=download, cause=_first_line(error)
        ) from error


def load_state_dict_file(path: str, *, field: str, download: str | None = None) -> dict:
    """Read a state dict from ``.safetensors`` or a tensors-only ``.pt``/``.pth`` file.

    ``.pt`` files are opened with ``weights_only=True``: tensors and plain containers only, never
    arbitrary pickled code.
    """
    local = resolve_local(path)
    if local is None or local.is_dir():
        raise CheckpointNotFoundError(path, field, library="a2i (file)", download=download)
    if local.suffix == ".safetensors":
        return load_file(str(local))
    return torch.load(local, map_location="cpu", weights_only=True)


def save_module(module: nn.Module, path: str | Path, dtype: torch.dtype | None = None) -> None:
    """Save a module's state dict as safetensors, atomically (see :func:`save_state_dict`)."""
    save_state_dict(module.state_dict(), path, dtype)


def save_state_dict(
    state: dict[str, torch.Tensor], path: str | Path, dtype: torch.dtype | None = None
) -> None:
    """Save tensors as safetensors, atomically (temp file + rename).

    ``dtype`` casts floating-point tensors (e.g. float16 halves the shipped tiny weights;
    loading casts them back to the module's dtype).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    cast = {}
    for key, value in state.items():
        value = value.detach().contiguous().cpu()
        cast[key] = value.to(dtype) if dtype is not None and value.is_floating_point() else value
    save_file(cast, str(tmp))
    os.replace(tmp, path)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
