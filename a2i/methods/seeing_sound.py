"""Seeing Sound (Bhardwaj et al., 2024): PixArt-α conditioned on AST's token sequence.

A frozen Audio Spectrogram Transformer turns a 5 s clip into a vector time series (§3.4; chosen
because its embeddings keep loudness, App. A.8, and several sources at once); an audio projector,
an MLP in place of PixArt-α's caption projection (App. A.10), maps those tokens into the
cross-attention of a DiT initialised from PixArt-α 512×512 (§4.3), which is trained with the
latent diffusion loss. The paper trains on sonified images (§3; part 1 of a2i's issue 17), but any
datamodule with audio and images serves.

5 s clips and AST's padding. AST covers 10.24 s (1024 fbank frames); a 5 s clip's fbank is
zero-padded to it (AST's recipe: zero frames before normalisation), so about half of AST's patch
tokens only see padding. The cache, training and ``a2i predict`` all feed AST exactly
:attr:`SeeingSound.clip_seconds` of waveform (cut, or zero-padded when shorter, App. A.7), so the
three give the same tokens. Those tokens are masked in the cross-attention
(:meth:`~a2i.interfaces.FixedWindowAudioEncoder.heard_tokens`), so the image depends on the tokens
of the audio only.

Pre-computed inputs (§4.3). When the data carries AST sequences and VAE latents cached while it was
prepared (``features/audio_tokens``, ``features/latents``: each image's posterior mean and std,
drawn from at every step as on-the-fly encoding does), training runs neither model.

Classifier-free guidance. PixArt-α's caption embedder replaces a caption by its ``y_embedding``
with probability 0.1 (``PixArt-alpha/PixArt-alpha`` ``diffusion/model/nets/PixArt_blocks.py``,
``CaptionEmbedder``), i.e. in the space the projection reads; ``y_embedding`` is a registered
buffer, a random sequence (randn / √width) saved with the model but never trained. The audio
projector takes that projection's place, so a2i's default null is the same: a fixed random
AST-token sequence (``null_condition="fixed"``), dropped in with probability 0.1. ``"learned"``
(a2i's option) trains that sequence as a parameter; an all-zero sequence (``"zero"``) makes the
unconditional input the projector's bias (one token repeated), which shares its weights with the
conditional path.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import torch
from torch import Tensor, nn

from a2i.errors import ConfigError
from a2i.generators.autoencoder import load_weights_file, sample_posterior
from a2i.generators.diffusion import ProjectedConditionGenerator, TrainedPart
from a2i.interfaces import (
    AUDIO,
    FEATURES,
    IMAGE,
    Condition,
    FixedWindowAudioEncoder,
    GenerationRequest,
)
from a2i.methods.base import AudioToImageMethod, Logged
from a2i.pretrained import resolve_weights

logger = logging.getLogger(__name__)

CACHED_AUDIO_TOKENS = FEATURES + "audio_tokens"
CACHED_LATENTS = FEATURES + "latents"
"""Batch keys of the AST sequences and VAE latents a prepared dataset may cache (§4.3:
pre-computed), e.g. :class:`a2i.build.sonify.features.AudioTokensFeature` and
:class:`a2i.build.prepare.LatentFeature`; they must come from this config's AST, VAE and
``clip_seconds`` (the feature's ``clip_seconds``)."""


class TrainedParts(nn.Module):
    """Everything Seeing Sound trains, under one prefix: checkpoints and exports hold only this.

    The modules are the generator's own (registered here too, not copied): the audio projector,
    and with ``train`` the cross-attention layers or the whole transformer; ``null_tokens`` is
    the null audio sequence of classifier-free guidance, a parameter when ``learned``, else a
    buffer (saved, not trained, as PixArt-α's ``y_embedding``).
    """

    def __init__(
        self, parts: dict[str, nn.Module], null_tokens: Tensor | None, learned: bool
    ) -> None:
        super().__init__()
        self.parts = nn.ModuleDict(parts)
        if null_tokens is not None and learned:
            self.null_tokens = nn.Parameter(null_tokens)
        else:
            self.register_buffer("null_tokens", null_tokens)


class SeeingSound(AudioToImageMethod):
    """Audio-conditioned PixArt-α: frozen AST tokens → audio projector → DiT cross-attention.

    Args:
        audio_encoder: The frozen AST (§3.4; AudioSet-finetuned ``MIT/ast-finetuned-audioset-
            10-10-0.4593``). Its ``hidden_layers`` chooses the tokens; the paper names no layer,
            so the default is AST's final, layer-normed output.
        generator: The PixArt-α generator (§4.3: initialised from PixArt-α 512×512). Its
            caption projection is replaced here by the audio projector.
        clip_seconds: Seconds of audio per example (§4.1, App. A.7: 5 s chunks, zero-padded
            when shorter); AST's padding beyond them is masked (its ``heard_tokens``).
        projector_hidden_dim: Width after the audio projector's first layer (App. A.10 gives
            none; None: the transformer's width, 1152, as PixArt's caption projection).
        train: What trains (:data:`~a2i.generators.diffusion.TrainedPart`): ``projector``,
            ``projector_cross_attention`` or ``all``. §4.3 initialises the whole model from
            PixArt-α and trains it for ~0.5M steps without freezing anything: ``all``.
        null_condition: Unconditional input of classifier-free guidance: ``fixed`` (PixArt-α's: a
            random sequence kept as a buffer, never trained; see the module docstring),
            ``learned`` (a2i's option: that sequence trained) or ``zero``.
        condition_dropout: Probability of training on the null condition (PixArt-α's
            ``class_dropout_prob``, 0.1).
        lr: AdamW learning rate (§4.3: 3.16e-5).
        weight_decay: AdamW weight decay (§4.3: 3e-2).
        projector_pretrained: A projector pre-trained contrastively against the text projection
            (App. A.11, optional; ``projector.safetensors`` of
            :class:`~a2i.methods.pretraining.AudioProjectorPretraining`'s ``export_dir``), loaded in
            place of the random initialisation.
        options: :class:`~a2i.methods.base.A2IMethod`'s (``export_dir`` writes the trained
            parts, :class:`TrainedParts`, as ``trained.safetensors``; the frozen AST, VAE and
            untouched PixArt weights are referenced by the config, not copied).
    """

    def __init__(
        self,
        audio_encoder: FixedWindowAudioEncoder,
        generator: ProjectedConditionGenerator,
        clip_seconds: float = 5.0,
        projector_hidden_dim: int | None = None,
        train: TrainedPart = "all",
        null_condition: Literal["fixed", "learned", "zero"] = "fixed",
        condition_dropout: float = 0.1,
        lr: float = 3.16e-5,
        weight_decay: float = 3e-2,
        projector_pretrained: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.save_config(locals())
        if null_condition not in ("fixed", "learned", "zero"):
            raise ConfigError(
                "SeeingSound.null_condition must be 'fixed', 'learned' or 'zero' "
                f"(got {null_condition!r})"
            )
        if not 0.0 <= condition_dropout < 1.0:
            raise ConfigError(
                f"SeeingSound.condition_dropout must be in [0, 1) (got {condition_dropout})"
            )
        if null_condition != "zero" and condition_dropout == 0:
            raise ConfigError(
                f"SeeingSound.null_condition '{null_condition}' is never trained on with "
                "condition_dropout 0; set condition_dropout > 0 (PixArt-α: 0.1) or "
                "null_condition 'zero'"
            )
        if generator.diffusion.condition_dropout:
            raise ConfigError(
                "SeeingSound drops audio conditions itself (condition_dropout, null_condition); "
                "set the generator's condition_dropout to 0.0"
            )
        if not 0.0 < clip_seconds <= audio_encoder.clip_seconds:
            raise ConfigError(
                f"SeeingSound.clip_seconds {clip_seconds} must be in (0, "
                f"{audio_encoder.clip_seconds}], the length the AST covers (it crops longer clips)"
            )
        self.audio_encoder = audio_encoder.freeze()
        self.generator = generator.freeze()
        denoiser = generator.denoiser
        projector = denoiser.replace_projector(audio_encoder.token_dim, projector_hidden_dim)
        if projector_pretrained is not None:
            field = f"{type(self).__name__}.projector_pretrained"
            load_weights_file(projector, resolve_weights(projector_pretrained, field))
        parts = denoiser.trained_parts(train)
        for part in parts.values():
            part.requires_grad_(True)
        null_tokens = None
        if null_condition != "zero":
            # PixArt-α's y_embedding initialisation: randn / sqrt(width)
            dim = audio_encoder.token_dim
            null_tokens = torch.randn(audio_encoder.token_count, dim) / dim**0.5
        self.trained = TrainedParts(parts, null_tokens, learned=null_condition == "learned")
        self._warned_mean_latents = False

    @property
    def clip_seconds(self) -> float:
        """Seconds of audio the model hears (§4.1: 5 s)."""
        return self.hparams.clip_seconds

    def condition(self, waveform: Tensor) -> Condition:
        """AST tokens of ``(B, T)`` clips with their padding mask (the frozen encoder, no grad)."""
        with torch.no_grad():
            tokens = self.audio_encoder(waveform).tokens
        mask = self.audio_encoder.heard_tokens(waveform.shape[-1]).to(tokens.device)
        return Condition(tokens, mask.expand(len(tokens), -1))

    def null(self, condition: Condition) -> Condition:
        """The null condition for ``condition``'s rows (same padding mask)."""
        null_tokens = self.trained.null_tokens
        if null_tokens is None:
            return condition.null()
        tokens = null_tokens.to(condition.tokens.dtype).expand_as(condition.tokens)
        return Condition(tokens, condition.mask)

    def drop_conditions(self, condition: Condition) -> Condition:
        """Replace each row by the null condition with probability ``condition_dropout``."""
        rate = self.hparams.condition_dropout
        if rate == 0:
            return condition
        keep = torch.rand(len(condition), device=condition.tokens.device) >= rate
        null = self.null(condition)
        tokens = torch.where(keep[:, None, None], condition.tokens, null.tokens)
        return Condition(tokens, condition.mask)

    def cached_or_computed_condition(self, batch: dict[str, Any]) -> Condition:
        """AST tokens from the shards' cache (``features/audio_tokens``) when present, else computed.

        The padding mask is that of :attr:`clip_seconds` of audio, the length the data delivers.
        """
        cached = batch.get(CACHED_AUDIO_TOKENS)
        if cached is None:
            return self.condition(batch[AUDIO])
        expected = (self.audio_encoder.token_count, self.audio_encoder.token_dim)
        if tuple(cached.shape[1:]) != expected:
            raise ConfigError(
                f"the data's cached '{CACHED_AUDIO_TOKENS}' are {tuple(cached.shape[1:])} per clip "
                f"but model.audio_encoder gives {expected}; prepare the data with the same AST "
                "(and hidden_layers) or drop the cached feature"
            )
        samples = round(self.clip_seconds * self.sample_rate)
        mask = self.audio_encoder.heard_tokens(samples).to(cached.device)
        return Condition(cached.to(self.dtype), mask.expand(len(cached), -1))

    def cached_latents(self, batch: dict[str, Any]) -> Tensor | None:
        """A posterior draw of the VAE latents the shards cache (``features/latents``); None if absent.

        The cache holds each image's posterior mean and std, so training draws latents as it does
        on images. A cache of means alone (written before a2i cached the std) still trains, on
        the means, with one warning: re-encoding a large dataset costs hours, and the user decides.
        """
        cached = batch.get(CACHED_LATENTS)
        if cached is None:
            return None
        expected = self.generator.diffusion.sample_shape
        shape = tuple(cached.shape[1:])
        if shape == (2, *expected):
            return sample_posterior(cached.to(self.dtype))
        if shape != expected:
            raise ConfigError(
                f"the data's cached '{CACHED_LATENTS}' are {shape} per image but "
                f"model.generator denoises {expected} (its posterior: {(2, *expected)}); prepare "
                "the data with the generator's VAE and image size or drop the cached feature"
            )
        if not self._warned_mean_latents:
            self._warned_mean_latents = True
            logger.warning(
                "the data's cached '%s' are posterior means (an older a2i): training uses them "
                "instead of posterior draws; prepare the data again to train as on images",
                CACHED_LATENTS,
            )
        return cached.to(self.dtype)

    def step(self, batch: dict[str, Any], stage: str) -> dict[str, Logged]:
        """The latent diffusion loss of the batch's images given their audio (or the caches).

        Training drops conditions (``condition_dropout``); held-out batches draw fresh noise and
        timesteps each time, without dropout.
        """
        condition = self.cached_or_computed_condition(batch)
        if stage == "train":
            condition = self.drop_conditions(condition)
        latents = self.cached_latents(batch)
        image = batch[IMAGE] if latents is None else None
        return {"loss": self.generator.training_losses(image, condition, latents)["loss"]}

    def draw(self, waveform: Tensor, request: GenerationRequest) -> Tensor:
        """Sound → images ``(B, S, 3, H, W)``; mixtures are summed waveforms (§4.5)."""
        seeds = request.seeds
        guidance_scale, num_inference_steps = request.guidance_scale, request.num_inference_steps
        condition = self.condition(waveform)
        null = self.null(condition)
        return self.generate(
            condition,
            seeds,
            unconditional=null,
            guidance_scale=guidance_scale,
            num_inference_steps=num_inference_steps,
        )
