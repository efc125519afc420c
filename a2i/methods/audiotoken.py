"""AudioToken (Yariv et al., Interspeech 2023): sound as one extra token of a frozen text-to-image LDM.

A frozen audio classifier φ (BEATs) encodes the clip; the hidden states of its layers 4, 8 and 12
are concatenated per frame (§2.1). The :class:`AudioTokenEmbedder` — two linear layers with a
GELU (eq. 5) and attentive pooling over frames (eq. 6) — turns them into one embedding
``e_audio`` of the text encoder's width, which replaces the placeholder of "A photo of a <audio>"
inside the frozen text encoder (a :class:`~a2i.interfaces.TextEncoder`, SD's CLIP). The frozen
latent diffusion model (Stable Diffusion) then denoises with that prompt. Only the embedder trains,
with the LDM's own ε-prediction loss, an L1 penalty on ``e_audio`` (eq. 8) and optionally the
classification loss L_CL (eqs. 7, 9).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from a2i.errors import ConfigError
from a2i.generators.diffusion import DiffusionGenerator
from a2i.interfaces import (
    AUDIO,
    CAPTION,
    IMAGE,
    AudioEncoder,
    GenerationRequest,
    TextEncoder,
    check_embedding_match,
)
from a2i.methods.base import AudioToImageMethod, Logged
from a2i.modules.pooling import AttentivePooling
from a2i.modules.projectors import MLPProjector
from a2i.pretrained import resolve_weights, state_dict_problems


class AudioTokenEmbedder(nn.Module):
    """The trainable part of AudioToken: ``e_audio = Atten-Pooling(W2 σ(W1 φ(a)))`` (eqs. 5, 6).

    With BEATs' layers 4, 8, 12 (3 × 768 = 2304-d tokens) and SD v1.x's 768-d text width it
    has 8,853,507 parameters (§3).

    Args:
        audio_dim: Width ``d̂`` of the concatenated audio hidden states.
        text_dim: Width of the text encoder's token embeddings.
        pool_dropout: The attentive pooling's dropout (:class:`AttentivePooling`; official: 0.5).
    """

    def __init__(self, audio_dim: int, text_dim: int, pool_dropout: float = 0.0) -> None:
        super().__init__()
        self.project = MLPProjector(audio_dim, audio_dim, text_dim, activation="gelu")
        self.pool = AttentivePooling(text_dim, dropout=pool_dropout)

    def forward(self, audio_tokens: Tensor) -> Tensor:
        """Audio hidden states ``(B, N, d̂)`` → ``e_audio`` ``(B, text_dim)``."""
        return self.pool(self.project(audio_tokens))


OFFICIAL_EMBEDDER_KEYS = {
    # guyyariv/AudioToken ab7d280: FGAEmbedder (modules/AudioToken/embedder.py:7-10) holds fc1,
    # fc2 and ``fga = Atten(util_e=[768], pairwise_flag=False)``, whose one utility has a Unary
    # (modules/FGA/atten.py:16-17), a self Pairwise (:46-47) and reduce_potentials (:178) over
    # [unary, pairwise] in that order (:241-244), as a2i's ``merge``.
    "fc1.weight": "project.0.weight",
    "fc1.bias": "project.0.bias",
    "fc2.weight": "project.2.weight",
    "fc2.bias": "project.2.bias",
    "fga.un_models.0.embed.weight": "pool.unary.0.weight",
    "fga.un_models.0.embed.bias": "pool.unary.0.bias",
    "fga.un_models.0.feature_reduce.weight": "pool.unary.2.weight",
    "fga.un_models.0.feature_reduce.bias": "pool.unary.2.bias",
    "fga.pp_models.0.embed_X.weight": "pool.pair_query.weight",
    "fga.pp_models.0.embed_X.bias": "pool.pair_query.bias",
    "fga.pp_models.0.embed_Y.weight": "pool.pair_key.weight",
    "fga.pp_models.0.embed_Y.bias": "pool.pair_key.bias",
    "fga.reduce_potentials.0.weight": "pool.merge.weight",
}
"""Official embedder state-dict key → :class:`AudioTokenEmbedder` key (same shapes)."""

OFFICIAL_EMBEDDER_DOWNLOAD = (
    "wget -P ~/.cache/a2i "
    "https://github.com/guyyariv/AudioToken/raw/master/output/embedder_learned_embeds.bin"
)


def load_embedder(embedder: AudioTokenEmbedder, spec: str, field: str) -> None:
    """Load an a2i embedder file or the official ``embedder_learned_embeds.bin`` into ``embedder``.

    The official file is ``torch.save(embedder.state_dict())`` of its FGAEmbedder (train.py:51),
    read tensors-only and renamed by :data:`OFFICIAL_EMBEDDER_KEYS`. A missing file raises
    :class:`~a2i.errors.CheckpointNotFoundError` with the download command; a missing,
    unexpected or wrongly shaped tensor raises :class:`ConfigError` naming it.
    """
    weights = resolve_weights(spec, field, download=OFFICIAL_EMBEDDER_DOWNLOAD)
    state = weights.state_dict(download=OFFICIAL_EMBEDDER_DOWNLOAD)
    expected = embedder.state_dict()
    layout, names = "a2i", {key: key for key in expected}  # a2i key → name in the file
    if any(key in OFFICIAL_EMBEDDER_KEYS for key in state):
        layout = "official AudioToken (FGAEmbedder)"
        names = {ours: theirs for theirs, ours in OFFICIAL_EMBEDDER_KEYS.items()}
        state = {OFFICIAL_EMBEDDER_KEYS.get(key, key): value for key, value in state.items()}
    problems = state_dict_problems(state, expected, file_name=names.__getitem__)
    if problems:
        raise ConfigError(
            f"{field} '{spec}' ({layout} layout) does not fit the AudioToken embedder "
            f"({embedder.project[0].in_features} → {embedder.project[2].out_features}): "
            + "; ".join(problems)
        )
    embedder.load_state_dict(state)


def classification_loss(audio_token: Tensor, label_embedding: Tensor) -> Tensor:
    """L_CL (eq. 7): ``(1 − cos(e_audio, l̂))²``, averaged over the batch.

    Per clip, as eq. 7 writes it; the official code squares one minus the batch-mean cosine
    (train.py:373-374), which differs only when the cosines vary within a batch.
    """
    return ((1.0 - F.cosine_similarity(audio_token, label_embedding, dim=-1)) ** 2).mean()


def l1_penalty(audio_token: Tensor) -> Tensor:
    """Eq. 8's ``‖e_audio‖₁`` as the official code computes it: the *mean* of ``|e_audio|``.

    Over the batch and the dimensions (guyyariv/AudioToken ab7d280, train.py:360,
    ``lambda_a * torch.mean(torch.abs(audio_token))``, λ 0.01). The sum over dimensions that eq. 8
    writes would be, with that λ, 768× stronger at SD's width (64× in the tiny world).
    """
    return audio_token.abs().mean()


class AudioToken(AudioToImageMethod):
    """Train an audio token for a frozen text-to-image latent diffusion model.

    Args:
        audio_encoder: Frozen audio classifier with a token output (§2.1: BEATs, hidden states of
            layers 4, 8 and 12 concatenated, :class:`~a2i.encoders.audio.beats.BEATsAudioEncoder`).
        text_encoder: The LDM's frozen text encoder (SD v1.x: CLIP ViT-L/14 text tower).
        generator: The frozen LDM (SD v1.x UNet + VAE); its ``condition_dim`` is the text width.
            Give it ``condition_dropout: 0.0``: AudioToken trains on every prompt.
        prompt: Text around the audio token in training (§2.1: "A photo of a"; the official code
            trains on "a photo of <*>", data/dataloader.py:34). The placeholder marks where
            ``e_audio`` goes, so "A painting of a <audio>" works at inference too.
        inference_prompt: Prompt for generation when none is given; None uses ``prompt``. The
            paper states none; the official code uses "a photo of <*>, 4k, high resolution"
            (inference.py:73).
        negative_prompt: Unconditional input of classifier-free guidance (SD's: the empty prompt).
        lambda_l1: Weight of ``‖e_audio‖₁`` (eq. 8; 0.01 in the public code).
        lambda_cl: Weight of L_CL (eq. 9; 0.01 in the public code; 0 trains without it, eq. 8).
        lr: AdamW learning rate (§3: 8e-5).
        weight_decay: AdamW weight decay (1e-2 in the public code).
        inference_clip_seconds: Seconds of audio generation hears; None hears the audio
            encoder's training clip (§3: 5 s crops; the paper states no other length). The
            official code feeds 10 s at inference (inference.py:74); that needs an encoder that
            takes any length (``any_length``, as BEATs), and training data still delivers the
            encoder's ``clip_seconds``.
        pool_dropout: Dropout of the attentive pooling, at training and inference when set
            (:class:`~a2i.modules.pooling.AttentivePooling`). The paper names none (default 0);
            the official code uses 0.5.
        embedder_pretrained: An embedder file (``embedder.safetensors`` of an ``export_dir``, a
            few MB) or the official release, ``embedder_learned_embeds.bin``
            (:func:`load_embedder`).
        options: :class:`~a2i.methods.base.A2IMethod`'s (``export_dir`` writes
            ``embedder.safetensors``; the frozen backbones are referenced by the config).
    """

    controls = frozenset({"prompt"})

    def __init__(
        self,
        audio_encoder: AudioEncoder,
        text_encoder: TextEncoder,
        generator: DiffusionGenerator,
        prompt: str = "A photo of a <audio>",
        inference_prompt: str | None = None,
        negative_prompt: str = "",
        lambda_l1: float = 0.01,
        lambda_cl: float = 0.0,
        lr: float = 8e-5,
        weight_decay: float = 1e-2,
        inference_clip_seconds: float | None = None,
        pool_dropout: float = 0.0,
        embedder_pretrained: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.save_config(locals())
        if audio_encoder.output == "pooled":
            raise ConfigError("AudioToken needs an audio encoder with a token output")
        check_embedding_match(
            text_encoder.width, generator.condition_dim, "text_encoder", "generator"
        )
        for name, text in (("prompt", prompt), ("inference_prompt", inference_prompt)):
            if text is not None and text_encoder.placeholder not in text:
                raise ConfigError(
                    f"AudioToken.{name} '{text}' lacks the placeholder '{text_encoder.placeholder}'"
                )
        if inference_clip_seconds is not None and (
            inference_clip_seconds <= 0 or not audio_encoder.any_length
        ):
            raise ConfigError(
                f"AudioToken.inference_clip_seconds {inference_clip_seconds}: needs a positive "
                f"length and an audio encoder that takes any length ({type(audio_encoder).__name__}"
                f" {'does' if audio_encoder.any_length else 'crops to its clip_seconds'})"
            )
        self.audio_encoder = audio_encoder.freeze()
        self.text_encoder = text_encoder.freeze()
        self.generator = generator.freeze()
        self.embedder = AudioTokenEmbedder(
            audio_encoder.token_dim, text_encoder.width, pool_dropout=pool_dropout
        )
        if embedder_pretrained is not None:
            load_embedder(self.embedder, embedder_pretrained, "AudioToken.embedder_pretrained")

    @property
    def clip_seconds(self) -> float:
        """Seconds generation hears: ``inference_clip_seconds``, else the training clip."""
        return self.hparams.inference_clip_seconds or self.training_clip_seconds

    @property
    def training_clip_seconds(self) -> float:
        """Clip duration the audio encoder is trained on (§3: 5 s crops)."""
        return self.audio_encoder.clip_seconds

    def audio_token(self, waveform: Tensor) -> Tensor:
        """``e_audio`` ``(B, text width)`` of waveforms ``(B, T)``."""
        with torch.no_grad():
            tokens = self.audio_encoder(waveform).tokens
        return self.embedder(tokens)

    def condition(self, audio_token: Tensor, prompt: str | None = None) -> Tensor:
        """Text-encoder states ``(B, L, width)`` of the prompt with ``e_audio`` injected."""
        prompts = [prompt or self.hparams.prompt] * len(audio_token)
        return self.text_encoder(prompts, audio_token)

    def step(self, batch: dict[str, Any], stage: str) -> dict[str, Logged]:
        """L_LDM, the L1 term and L_CL, and their weighted sum ``loss`` (eqs. 8, 9).

        Only the embedder trains (§2.1: the audio network and the LDM stay frozen); held-out
        batches draw fresh noise and timesteps each time.
        """
        audio_token = self.audio_token(batch[AUDIO])
        condition = self.condition(audio_token)
        losses = {
            "ldm": self.generator.training_losses(batch[IMAGE], condition)["loss"],
            "l1": l1_penalty(audio_token),
        }
        total = losses["ldm"] + self.hparams.lambda_l1 * losses["l1"]
        if self.hparams.lambda_cl > 0:
            with torch.no_grad():
                labels = self.text_encoder.pooled_label(batch[CAPTION])
            losses["cl"] = classification_loss(audio_token, labels)
            total = total + self.hparams.lambda_cl * losses["cl"]
        losses["loss"] = total
        return losses

    def draw(self, waveform: Tensor, request: GenerationRequest) -> Tensor:
        """Sound (and a prompt with the placeholder) → images ``(B, S, 3, H, W)``."""
        seeds, prompt = request.seeds, request.prompt
        guidance_scale, num_inference_steps = request.guidance_scale, request.num_inference_steps
        if prompt is not None and self.text_encoder.placeholder not in prompt:
            raise ConfigError(
                f"prompt '{prompt}' lacks the placeholder '{self.text_encoder.placeholder}' "
                "where the audio token goes"
            )
        condition = self.condition(
            self.audio_token(waveform), prompt or self.hparams.inference_prompt
        )
        negative = self.text_encoder([self.hparams.negative_prompt])
        return self.generate(
            condition,
            seeds,
            unconditional=negative,
            guidance_scale=guidance_scale,
            num_inference_steps=num_inference_steps,
        )
