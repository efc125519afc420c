"""The random draws of generation, seeded per row."""

from __future__ import annotations

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from a2i.interfaces import Generators


def randn(
    shape: tuple[int, ...],
    generator: Generators,
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Standard normal noise of ``shape`` on ``device`` (diffusers' ``randn_tensor``).

    A list of generators seeds row ``i`` with ``generator[i]``, so a row's noise does not depend
    on the batch it is drawn in; its length must be the batch size.
    """
    if isinstance(generator, list) and len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} generators given for a batch of {shape[0]} rows")
    return randn_tensor(shape, generator=generator, device=device, dtype=dtype)
