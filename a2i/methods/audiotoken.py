"""AudioToken (Yariv et al., Interspeech 2023): sound as one extra token of a frozen text-to-image LDM.

A frozen audio classifier φ (BEATs) encodes the clip; the hidden states of its layers 4, 8 and 12
are concatenated per frame (§2.1). The :class:`AudioTokenEmbedder` — two linear layers with a
GELU (eq. 5) and attentive pooling over frames (eq. 6) — turns them into one embedding
``e_audio`` of the text encoder's width, which replaces the placeholder of "A photo of a <audio>"
inside the frozen text encoder (:class:`~a2i.encoders.text.clip_text.CLIPTextEncoder`). The frozen
latent diffusion model (Stable Diffusion) then denoises with that prompt. Only the embedder trains,
with the LDM's own ε-prediction loss, an L1 penalty on ``e_audio`` (eq. 8) and optionally the
classification loss L_CL (eqs. 7, 9).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from a2i.controls import seeded
from a2i.encoders.text.clip_text import CLIPTextEncoder
from a2i.errors import ConfigError
from a2i.generators.latent_diffusion import LatentDiffusionGenerator
from a2i.interfaces import AUDIO, CAPTION, IMAGE, KEY, AudioEncoder, check_embedding_match
from a2i.methods.base import A2IMethod
from a2i.pretrained import load_state_dict_file, save_module


class AttentivePooling(nn.Module):
    """Attention-weighted mean over a token sequence (§2.1 eq. 6, "Atten-Pooling" [35]).

    As in the public AudioToken code, a token's weight combines a *unary* potential (a two-layer
    1×1-conv MLP of the token) and a *pairwise* one (its mean cosine similarity to every token,
    through two 1×1-conv projections), merged by a bias-free 1×1 conv and normalised by a softmax
    over tokens. The public code keeps dropout active at inference; a2i's pooling has no
    dropout, so generation is deterministic for a given seed.

    Args:
        dim: Token width (the text encoder's, 768 for Stable Diffusion v1.x).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.unary = nn.Sequential(nn.Conv1d(dim, dim, 1), nn.ReLU(), nn.Conv1d(dim, 1, 1))
        self.pair_query = nn.Conv1d(dim, dim, 1)
        self.pair_key = nn.Conv1d(dim, dim, 1)
        self.merge = nn.Conv1d(2, 1, 1, bias=False)

    def weights(self, tokens: Tensor) -> Tensor:
        """Softmax weights ``(B, N)`` of tokens ``(B, N, D)``."""
        channels = tokens.transpose(1, 2)  # (B, D, N): 1×1 convs act per token
        unary = self.unary(channels)
        query = F.normalize(self.pair_query(channels), dim=1)
        key = F.normalize(self.pair_key(channels), dim=1)
        pairwise = (query.transpose(1, 2) @ key).mean(dim=2)[:, None]  # (B, 1, N)
        return self.merge(torch.cat([unary, pairwise], dim=1))[:, 0].softmax(dim=-1)

    def forward(self, tokens: Tensor) -> Tensor:
        """``(B, N, D)`` → ``(B, D)``."""
        return (self.weights(tokens)[:, None] @ tokens)[:, 0]


class AudioTokenEmbedder(nn.Module):
    """The trainable part of AudioToken: ``e_audio = Atten-Pooling(W2 σ(W1 φ(a)))`` (eqs. 5, 6).

    With BEATs' layers 4, 8, 12 (3 × 768 = 2304-d tokens) and SD v1.x's 768-d text width it
    has 8,853,507 parameters (§3).

    Args:
        audio_dim: Width ``d̂`` of the concatenated audio hidden states.
        text_dim: Width of the text encoder's token embeddings.
    """

    def __init__(self, audio_dim: int, text_dim: int) -> None:
        super().__init__()
        self.project = nn.Sequential(
            nn.Linear(audio_dim, audio_dim), nn.GELU(), nn.Linear(audio_dim, text_dim)
        )
        self.pool = AttentivePooling(text_dim)

    def forward(self, audio_tokens: Tensor) -> Tensor:
        """Audio hidden states ``(B, N, d̂)`` → ``e_audio`` ``(B, text_dim)``."""
        return self.pool(self.project(audio_tokens))


def classification_loss(audio_token: Tensor, label_embedding: Tensor) -> Tensor:
    """L_CL (eq. 7): ``(1 − cos(e_audio, l̂))²``, averaged over the batch."""
    return ((1.0 - F.cosine_similarity(audio_token, label_embedding, dim=-1)) ** 2).mean()


def l1_penalty(audio_token: Tensor) -> Tensor:
    """``‖e_audio‖₁`` of eq. 8, averaged over the batch."""
    return audio_token.abs().sum(dim=-1).mean()


class AudioToken(A2IMethod):
    """Train an audio token for a frozen text-to-image latent diffusion model.

    Args:
        audio_encoder: Frozen audio classifier with a token output (§2.1: BEATs, hidden states of
            layers 4, 8 and 12 concatenated, :class:`~a2i.encoders.audio.beats.BEATsAudioEncoder`).
        text_encoder: The LDM's frozen text encoder (SD v1.x: CLIP ViT-L/14 text tower).
        generator: The frozen LDM (SD v1.x UNet + VAE); its ``condition_dim`` is the text width.
            Give it ``condition_dropout: 0.0``: AudioToken trains on every prompt.
        prompt: Text around the audio token (§2.1: "A photo of a"; the placeholder marks where
            ``e_audio`` goes, so "A painting of a <audio>" works at inference too).
        negative_prompt: Unconditional input of classifier-free guidance (SD's: the empty prompt).
        lambda_l1: Weight of ``‖e_audio‖₁`` (eq. 8; 0.01 in the public code).
        lambda_cl: Weight of L_CL (eq. 9; 0.01 in the public code; 0 trains without it, eq. 8).
        lr: AdamW learning rate (§3: 8e-5).
        weight_decay: AdamW weight decay (1e-2 in the public code).
        embedder_pretrained: An embedder saved by :meth:`save_embedder` (a few MB of safetensors).
        export_embedder: Write the trained embedder to this ``.safetensors`` file at the end of
            ``fit`` (the frozen backbones are referenced by the config, not copied).
        overwrite_export: Replace an existing ``export_embedder`` file.
        save_frozen: See :class:`~a2i.methods.base.A2IMethod`.
    """

    def __init__(
        self,
        audio_encoder: AudioEncoder,
        text_encoder: CLIPTextEncoder,
        generator: LatentDiffusionGenerator,
        prompt: str = "A photo of a <audio>",
        negative_prompt: str = "",
        lambda_l1: float = 0.01,
        lambda_cl: float = 0.0,
        lr: float = 8e-5,
        weight_decay: float = 1e-2,
        embedder_pretrained: str | None = None,
        export_embedder: str | None = None,
        overwrite_export: bool = False,
        save_frozen: bool = False,
    ) -> None:
        super().__init__(save_frozen=save_frozen)
        self.save_config(locals())
        if audio_encoder.output == "pooled":
            raise ConfigError("AudioToken needs an audio encoder with a token output")
        check_embedding_match(
            text_encoder.width, generator.condition_dim, "text_encoder", "generator"
        )
        if text_encoder.placeholder not in prompt:
            raise ConfigError(
                f"AudioToken.prompt '{prompt}' lacks the placeholder '{text_encoder.placeholder}'"
            )
        self.audio_encoder = audio_encoder.freeze()
        self.text_encoder = text_encoder.freeze()
        self.generator = generator.freeze()
        self.embedder = AudioTokenEmbedder(audio_encoder.token_dim, text_encoder.width)
        if embedder_pretrained is not None:
            self.embedder.load_state_dict(
                load_state_dict_file(embedder_pretrained, field="AudioToken.embedder_pretrained")
            )

    @property
    def sample_rate(self) -> int:
        """Sample rate the audio encoder expects."""
        return self.audio_encoder.sample_rate

    @property
    def clip_seconds(self) -> float:
        """Clip duration the audio encoder expects (§3: 5 s crops)."""
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

    def losses(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """L_LDM, the L1 term and L_CL, and their weighted sum (eqs. 8, 9)."""
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

    def _log_losses(self, losses: dict[str, Tensor], stage: str, batch_size: int) -> None:
        for name, value in losses.items():
            self.log(
                f"{stage}/{name}",
                value,
                prog_bar=name == "loss",
                batch_size=batch_size,
                sync_dist=stage != "train",
            )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """L_LDM + λ_l1‖e_audio‖₁ (+ λ_CL L_CL)."""
        losses = self.losses(batch)
        self._log_losses(losses, "train", len(batch[AUDIO]))
        return losses["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """The training losses on held-out clips (fresh noise and timesteps each time)."""
        self._log_losses(self.losses(batch), "val", len(batch[AUDIO]))

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Same as validation on the test split (the harness adds the generation metrics)."""
        self._log_losses(self.losses(batch), "test", len(batch[AUDIO]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW over the embedder only (§2.1: the audio network and the LDM stay frozen)."""
        return torch.optim.AdamW(
            self.embedder.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )

    @torch.no_grad()
    def generate_from_audio(
        self, waveform: Tensor, seeds: list[int], prompt: str | None = None
    ) -> Tensor:
        """Sound (and a prompt with the placeholder) → images ``(B, S, 3, H, W)``."""
        condition = self.condition(self.audio_token(waveform), prompt)
        negative = self.text_encoder([self.hparams.negative_prompt])
        images = [
            self.generator.generate(condition, seeded(seed, condition.device), negative)
            for seed in seeds
        ]
        return torch.stack(images, dim=1)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Images for every input under :attr:`controls` (gain and mixing apply to the audio)."""
        controls = self.controls
        if controls.image is not None:
            raise ConfigError("AudioToken draws from audio and text: --image is not supported")
        waveform = controls.apply_to_waveforms(batch[AUDIO], self.sample_rate)
        images = self.generate_from_audio(waveform, controls.seeds)
        errors = batch.get("error", [""] * len(batch[KEY]))
        return {"key": batch[KEY], "images": images, "seeds": controls.seeds, "error": errors}

    def log_images(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Ground-truth frames and the images drawn from their audio."""
        return {
            "frame": batch[IMAGE][:8],
            "from_audio": self.generate_from_audio(batch[AUDIO][:8], [0])[:, 0],
        }

    def on_fit_end(self) -> None:
        """Export the embedder when ``export_embedder`` is set (rank 0 only)."""
        if self.hparams.export_embedder is not None and self.global_rank == 0:
            self.save_embedder(self.hparams.export_embedder, self.hparams.overwrite_export)

    def save_embedder(self, path: str | Path, overwrite: bool = False) -> None:
        """Write the trained embedder alone (safetensors); load it with ``embedder_pretrained``.

        The frozen backbones are not copied: they are referenced by the config.
        """
        if Path(path).exists() and not overwrite:
            raise FileExistsError(f"'{path}' exists; pass overwrite=True to replace it")
        save_module(self.embedder, path)
