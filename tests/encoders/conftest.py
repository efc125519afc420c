"""Shared fixtures for the encoder tests: offline hub, seeded tiny inputs."""

from __future__ import annotations

import huggingface_hub.constants
import pytest
import torch


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub access, whatever the environment says.

    huggingface_hub reads HF_HUB_OFFLINE once at import, so the module flag is patched as well as
    the environment (read at call time by a2i's torchvision loader).
    """
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def waveforms() -> torch.Tensor:
    """Two 4 s clips of quiet noise at 16 kHz."""
    generator = torch.Generator().manual_seed(0)
    return 0.1 * torch.randn(2, 64000, generator=generator)


@pytest.fixture
def images() -> torch.Tensor:
    """Two 32 px RGB images in [0, 1]."""
    generator = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 32, 32, generator=generator)
