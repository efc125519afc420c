"""CLAP (transformers ``ClapModel``): audio and text in one space, for Seeing Sound's retrieval.

Seeing Sound §3.3 retrieves the audio of a sounding concept by cosine similarity between CLAP's
text embedding of the concept and the audio embeddings of a pool of 5 s chunks. This wrapper
gives both towers behind one object: :meth:`ClapEncoder.forward` (an :class:`AudioEncoder`,
unit-length pooled embedding) and :meth:`ClapEncoder.embed_text`. Its front end is
transformers' ``ClapFeatureExtractor`` (log-mel, repeat-padding short clips), and its
tokenizer the checkpoint's own (RoBERTa BPE for LAION's); the presets, which have no
checkpoint, tokenize bytes (``ByT5Tokenizer``: no vocabulary file, so it works offline).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import (
    AutoTokenizer,
    ByT5Tokenizer,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
)

from a2i.encoders.published import load_a2i_file
from a2i.errors import ConfigError
from a2i.interfaces import AudioEncoder, AudioEncoderOutput
from a2i.pretrained import resolve_weights

PAPER_CHECKPOINT = "laion/clap-htsat-unfused"
"""The published CLAP checkpoint a2i's paper config names (LAION-Audio-630K, HTS-AT audio tower,
RoBERTa text tower, 512-d joint space; Seeing Sound cites CLAP [41] without naming a variant)."""

CLAP_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"audio_config": {"enable_fusion": False}},
    "tiny": {
        "text_config": {
            "vocab_size": 384,
            "pad_token_id": 0,
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 130,
            "projection_dim": 32,
        },
        "audio_config": {
            "spec_size": 128,
            "num_mel_bins": 32,
            "window_size": 4,
            "depths": [1, 1],
            "num_attention_heads": [2, 2],
            "hidden_size": 64,
            "patch_embeds_hidden_size": 32,
            "projection_dim": 32,
            "enable_fusion": False,
            "patch_size": 4,
            "patch_stride": (4, 4),
        },
        "projection_dim": 32,
    },
}
"""``paper`` is transformers' default ClapConfig without fusion, the architecture of
laion/clap-htsat-unfused (153,492,890 parameters, 512-d); ``tiny`` (112,070 parameters, 32-d)
reads 5 s at 16 kHz as 501 × 32 mel frames and trains on a CPU in minutes."""

FRONT_ENDS: dict[str, dict[str, Any]] = {
    "paper": {"truncation": "rand_trunc"},
    "tiny": {
        "feature_size": 32,
        "sampling_rate": 16000,
        "hop_length": 160,
        "max_length_s": 5,
        "fft_window_size": 400,
        "frequency_max": 8000,
        "truncation": "rand_trunc",
    },
}
"""``paper``: LAION's 48 kHz, 64-mel, 10 s front end (repeat-padded; unfused models read one
crop); ``tiny``: 16 kHz, 32 mels, 10 ms hop, 5 s (Seeing Sound's pool chunk, A.7)."""

TEXT_MAX_TOKENS = 77
"""Longest tokenized concept (LAION's CLAP trains on 77 tokens; longer concepts are cut)."""


class ClapEncoder(AudioEncoder):
    """CLAP's audio and text towers with their projections, unit-length outputs.

    Args:
        preset: ``paper`` = laion/clap-htsat-unfused's architecture, ``tiny`` = a 112 k-parameter
            CLAP; random weights (ignored when ``pretrained`` names a checkpoint directory).
        pretrained: A published checkpoint: hub id or local directory with the model, its
            tokenizer and feature-extractor files (``laion/clap-htsat-unfused``); or an a2i
            ``.safetensors`` file of this module's state dict for ``preset`` (the world's tiny
            CLAP, ``tiny/clap/world.safetensors``).
        freeze: Freeze the model (retrieval never trains it).
    """

    def __init__(
        self,
        preset: Literal["tiny", "paper"] = "paper",
        pretrained: str | None = None,
        freeze: bool = True,
    ) -> None:
        super().__init__()
        self.preset = preset
        self.pretrained = pretrained
        weights = resolve_weights(
            pretrained, f"{type(self).__name__}.pretrained", download=f"hf download {pretrained}"
        )
        self.from_checkpoint = weights is not None and not weights.is_a2i_file
        if self.from_checkpoint:
            self.model, self.tokenizer, self.front_end = weights.load(
                lambda where: (
                    ClapModel.from_pretrained(where),
                    AutoTokenizer.from_pretrained(where),
                    ClapFeatureExtractor.from_pretrained(where),
                ),
                library="transformers",
                download=f"hf download {pretrained} (model, tokenizer and preprocessor files)",
            )
        else:
            self.model = ClapModel(ClapConfig(**CLAP_PRESETS[preset]))
            self.tokenizer = ByT5Tokenizer()
            self.front_end = ClapFeatureExtractor(**FRONT_ENDS[preset])
        fused = self.model.config.audio_config.enable_fusion
        if self.front_end.truncation != "rand_trunc" and not fused:
            raise ConfigError(
                f"{type(self).__name__}: the feature extractor fuses crops "
                f"({self.front_end.truncation}) but the model has no fusion layers"
            )
        self.sample_rate = int(self.front_end.sampling_rate)
        self.clip_seconds = float(self.front_end.max_length_s)
        self.embed_dim = int(self.model.config.projection_dim)
        self.output = "pooled"
        self._weights_sha1: str | None = None
        load_a2i_file(self, weights, freeze)

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        return next(self.model.parameters()).device

    def features(self, waveform: Tensor) -> dict[str, Tensor]:
        """The model's audio input for ``(B, T)`` waveforms at :attr:`sample_rate`.

        Longer clips are cut to ``clip_seconds`` from the start (no random crop: a pool chunk
        must always embed the same); shorter ones are repeat-padded by the feature extractor.
        """
        limit = round(self.clip_seconds * self.sample_rate)
        if waveform.shape[-1] == 0:
            raise ConfigError(f"{type(self).__name__} got empty waveforms")
        inputs = self.front_end(
            [row[:limit].numpy().astype(np.float64) for row in waveform.detach().float().cpu()],
            sampling_rate=self.sample_rate,
            return_tensors="pt",
        )
        return {
            "input_features": inputs["input_features"].to(self.device, torch.float32),
            "is_longer": inputs["is_longer"].to(self.device),
        }

    def forward(self, waveform: Tensor) -> AudioEncoderOutput:
        """Unit-length audio embeddings ``(B, D)`` of ``(B, T)`` waveforms at :attr:`sample_rate`."""
        return AudioEncoderOutput(pooled=self.embed_features(self.features(waveform)))

    def embed_features(self, features: dict[str, Tensor]) -> Tensor:
        """Unit-length audio embeddings of :meth:`features`' output (precomputed once in training)."""
        outputs = self.model.get_audio_features(**features)
        return F.normalize(outputs.pooler_output, dim=-1)

    def tokenize(self, texts: Sequence[str]) -> dict[str, Tensor]:
        """Token ids and attention mask of ``texts`` (cut at :data:`TEXT_MAX_TOKENS`)."""
        if not texts:
            raise ConfigError(f"{type(self).__name__}.tokenize() got no texts")
        tokens = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=TEXT_MAX_TOKENS,
            return_tensors="pt",
        )
        return {name: tokens[name].to(self.device) for name in ("input_ids", "attention_mask")}

    def embed_text(self, texts: Sequence[str]) -> Tensor:
        """Unit-length text embeddings ``(B, D)`` in the audio embeddings' space."""
        outputs = self.model.get_text_features(**self.tokenize(texts))
        return F.normalize(outputs.pooler_output, dim=-1)

    def contrastive_loss(self, waveform: Tensor, texts: Sequence[str]) -> Tensor:
        """CLAP's symmetric InfoNCE over a batch of matching (audio, text) pairs."""
        outputs = self.model(**self.tokenize(texts), **self.features(waveform), return_loss=True)
        return outputs.loss

    def weights_sha1(self) -> str:
        """SHA-1 of the state dict (names, shapes, values): what a cache of embeddings depends on."""
        if self._weights_sha1 is None or self.training:
            digest = hashlib.sha1()
            for name, value in sorted(self.model.state_dict().items()):
                tensor = value.detach().cpu().contiguous()
                digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
                digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
            self._weights_sha1 = digest.hexdigest()
        return self._weights_sha1

    def recipe(self) -> dict[str, Any]:
        """What decides this encoder's embeddings (recorded next to cached embeddings)."""
        front = {k: v for k, v in self.front_end.to_dict().items() if not k.startswith("_")}
        return {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "pretrained": self.pretrained,
            "preset": None if self.from_checkpoint else self.preset,
            "front_end": {k: front[k] for k in sorted(front) if k != "processor_class"},
            "tokenizer": type(self.tokenizer).__name__,
            "weights_sha1": self.weights_sha1(),
        }
