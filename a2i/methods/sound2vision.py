"""Sound2Vision (Sung-Bin et al., journal extension of Sound2Scene, CVPR 2023).

Stage 2 of the method (§3.1): an audio encoder learns to land in the feature space of a frozen
image encoder, so that a frozen generator trained on that space (stage 1, §3.2 GAN / §6.1 LDM;
see :mod:`a2i.methods.pretraining`) draws images from sound. Only the audio encoder trains;
the image encoder and the generator are frozen, kept in eval mode, left out of the optimizer and
(by default) out of the checkpoint.

Inference (§5): audio → ``z^A`` → generator, with the controls of
:class:`~a2i.pipelines.AudioToImagePipeline` — volume, waveform mixing, an image joined by
interpolation ``λ·z^V + (1−λ)·z^A`` (§5.2) or composable diffusion (§6.1), several seeds.

Condition scale. Eq. (1–2) compare unit-norm features (§3.1), so the length of ``z^A`` is not
learned; the generator must be given the length it was trained on, which its
``condition_scale`` declares:

- ``"unit"``: every condition is put on the unit sphere — audio, image, their blend (renormalised
  after mixing) and the ``log_images`` grids. IC-GAN (§3.2) trains on unit-length SwAV features
  (``facebookresearch/ic_gan`` @8eff2f7, ``data_utils/datasets_common.py:426``; its
  ``predict.py:102`` normalises at inference), and the released Sound2Scene normalises the audio
  embedding before the generator (``postech-ami/Sound2Scene`` @2cc5fff, ``test.py:102``;
  ``train.py:84-85`` for both modalities).
- ``"feature"``: the generator was trained on the image encoder's raw features, e.g. the
  sd-image-variations LDM (§6.1), whose pipeline feeds CLIP's ``image_embeds`` unnormalised
  (diffusers 0.42 ``pipeline_stable_diffusion_image_variation.py:151``). Image features go as
  they are; the direction of ``z^A`` is scaled to ``image_feature_norm``, the running mean
  norm of the training image features.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from a2i.errors import ConfigError
from a2i.interfaces import (
    AUDIO,
    IMAGE,
    AudioEncoder,
    GenerationRequest,
    ImageEncoder,
    ImageGenerator,
    check_embedding_match,
)
from a2i.losses.alignment import AlignmentLoss, AlignmentLossName
from a2i.methods.base import AudioToImageMethod, Logged


class Sound2Vision(AudioToImageMethod):
    """Align an audio encoder to a frozen image-feature space and generate with a frozen generator.

    Args:
        audio_encoder: Trainable encoder with a pooled output of the image-feature size
            (§3.2: ResNet-18 over a 10 s log-spectrogram, average pooling, one linear layer).
        image_encoder: Frozen image encoder (§3.2: SwAV ResNet-50, 2048-d; §6.1: ViT/CLIP).
        generator: Frozen generator conditioned on image features (IC-GAN or LDM).
        loss: ``nce_l2`` = L_total (eq. 2, the paper's), ``nce_cosine`` = L_nce, ``l2`` =
            plain regression (the Table 2 ablation).
        temperature: Softmax temperature of the InfoNCE variants (eq. 1 has none: 1.0).
        lr: Adam learning rate (§4.1: 1e-3).
        weight_decay: Adam weight decay (§4.1: 1e-5).
        image_blend: How an image joins the audio (``image=``, ``image_weight`` λ):
            ``interpolate`` feeds ``λ·c^V + (1−λ)·c^A`` (§5.2, the paper's choice for the GAN);
            ``composable`` samples with both conditions composed, weights ``(1−λ, λ)``, by
            composable diffusion (Liu et al. 2022; §6.1 and Fig. 19, the paper's choice for the
            LDM; latent diffusion generators only). ``None``: the paper's choice for the
            generator.
        options: :class:`~a2i.methods.base.A2IMethod`'s. ``export_dir`` writes
            ``audio_encoder.safetensors``, which any config with the same audio and image
            encoders reads through ``audio_encoder.init_args.pretrained``, and
            ``state.safetensors`` (the running ``image_feature_norm``); ``pretrained`` reads
            both. The tiny GAN and LDM share their image encoder, so ``make demo`` trains stage 2
            once for both generators.
    """

    optimizer_class = torch.optim.Adam
    controls = frozenset({"image_blend"})
    aligns_spaces = True
    learned_state = ("image_feature_norm",)

    def __init__(
        self,
        audio_encoder: AudioEncoder,
        image_encoder: ImageEncoder,
        generator: ImageGenerator,
        loss: AlignmentLossName = "nce_l2",
        temperature: float = 1.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        image_blend: Literal["interpolate", "composable"] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.save_config(locals())
        check_embedding_match(
            audio_encoder.embed_dim, image_encoder.embed_dim, "audio_encoder", "image_encoder"
        )
        check_embedding_match(
            image_encoder.embed_dim, generator.condition_dim, "image_encoder", "generator"
        )
        if audio_encoder.output == "sequence":
            raise ConfigError("Sound2Vision needs an audio encoder with a pooled output")
        composes = generator.composes_conditions
        self.image_blend = image_blend or ("composable" if composes else "interpolate")
        if self.image_blend == "composable" and not composes:
            raise ConfigError(
                "Sound2Vision.image_blend='composable' needs a generator that composes "
                f"conditions (a latent diffusion one), not {type(generator).__name__}; "
                "use 'interpolate'"
            )
        self.audio_encoder = audio_encoder
        self.image_encoder = image_encoder.freeze()
        self.generator = generator.freeze()
        self.loss = AlignmentLoss(loss, temperature)
        # Mean norm of the training image features: the length given to audio conditions of a
        # "feature"-scale generator (see the module docstring).
        self.register_buffer("image_feature_norm", torch.ones(()))

    def audio_features(self, waveform: Tensor) -> Tensor:
        """``z^A``: pooled audio-encoder output ``(B, D)``."""
        return self.audio_encoder(waveform).pooled

    @torch.no_grad()
    def image_features(self, image: Tensor) -> Tensor:
        """``z^V``: frozen image-encoder output ``(B, D)``."""
        return self.image_encoder(image)

    def cached_or_computed_image_features(self, batch: dict[str, Any]) -> Tensor:
        """``z^V`` from the shards' cache (``features/image``) when present, else computed.

        Prepared video datasets can store the frozen encoder's embeddings
        (:class:`a2i.build.prepare.ImageFeature`), which saves the image-encoder forward pass at
        every step; the cache must come from the encoder this config names.
        """
        cached = self.cached_image_features(batch, self.image_encoder.embed_dim)
        return self.image_features(batch[IMAGE]) if cached is None else cached

    @property
    def condition_scale(self) -> str:
        """``"unit"`` or ``"feature"``: the generator's ``condition_scale`` (module docstring)."""
        return self.generator.condition_scale

    def condition_from_audio(self, waveform: Tensor) -> Tensor:
        """Generator condition for audio: direction of ``z^A`` at the generator's scale."""
        direction = F.normalize(self.audio_features(waveform), dim=-1)
        return direction if self.condition_scale == "unit" else direction * self.image_feature_norm

    def condition_from_image(self, image: Tensor) -> Tensor:
        """Generator condition for an image: ``z^V``, unit-length for a unit-scale generator."""
        visual = self.image_features(image)
        return F.normalize(visual, dim=-1) if self.condition_scale == "unit" else visual

    def blend(self, visual: Tensor, audio: Tensor, image_weight: float) -> Tensor:
        """``λ·c^V + (1−λ)·c^A`` (§5.2), back on the unit sphere for a unit-scale generator."""
        mixed = image_weight * visual + (1.0 - image_weight) * audio
        return F.normalize(mixed, dim=-1) if self.condition_scale == "unit" else mixed

    def draw(self, waveform: Tensor, request: GenerationRequest) -> Tensor:
        """Sound → images, optionally with an image of weight λ (``image_blend``)."""
        seeds, image, image_weight = request.seeds, request.image, request.image_weight
        sampling = {
            "guidance_scale": request.guidance_scale,
            "num_inference_steps": request.num_inference_steps,
        }
        condition = self.condition_from_audio(waveform)
        if image is None:
            return self.generate(condition, seeds, **sampling)
        visual = self.condition_from_image(image.to(condition)).expand_as(condition)
        if self.image_blend == "composable":
            weights = [1.0 - image_weight, image_weight]
            return self.generate([condition, visual], seeds, weights=weights, **sampling)
        return self.generate(self.blend(visual, condition, image_weight), seeds, **sampling)

    def untrained_parts(self) -> list[str]:
        """As the base class; ``image_feature_norm`` counts only for a ``feature``-scale generator."""
        missing = super().untrained_parts()
        if self.condition_scale == "unit" and "state" in missing:
            missing.remove("state")
        return missing

    def step(self, batch: dict[str, Any], stage: str) -> dict[str, Logged]:
        """Alignment loss (eq. 2) between audio and frozen image features; retrieval when held out.

        Training also tracks ``image_feature_norm``, the running mean norm of the image features.
        """
        audio_z = self.audio_features(batch[AUDIO])
        image_z = self.cached_or_computed_image_features(batch)
        values = {"loss": self.loss(audio_z, image_z)}
        if stage == "train":
            with torch.no_grad():
                norm = image_z.float().norm(dim=-1).mean()
                self.image_feature_norm.lerp_(norm, 0.01 if self.global_step else 1.0)
            return values
        a, v = F.normalize(audio_z, dim=-1), F.normalize(image_z, dim=-1)
        own = torch.arange(len(a), device=a.device)
        values["retrieval_top1"] = (torch.cdist(a, v).argmin(dim=1) == own).float().mean()
        values["feature_distance"] = (a - v).norm(dim=-1).mean()
        return values

    def log_images(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """The base class's frames and images from audio, and images from the frames' features."""
        images = super().log_images(batch)
        from_image = self.generate(self.condition_from_image(batch[IMAGE][:8]), [0])[:, 0]
        return {**images, "from_image": from_image}
