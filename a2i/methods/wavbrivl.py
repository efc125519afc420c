"""WavBriVL (Fang et al.): an audio tower distilled into a frozen vision-language space.

§2: "freeze the BriVL visual model, run video on the visual stream of the model, and train a new
model to predict BriVL embedding independently from the audio stream". The audio tower (WavLM with
learned layer weights, a 4-layer self-attention block and a two-layer ReLU MLP, §2.3,
:class:`~a2i.encoders.audio.wavlm_tower.WavLMTower`) is trained with BriVL's cross-modal MoCo
(§2.4, :mod:`a2i.losses.moco`: momentum key encoder, two negative queues of 9600, m 0.99, τ 0.07),
or with the in-batch InfoNCE of Wav2CLIP to compare. The frame embeddings can come from the shards'
cache (``features/image``, :class:`a2i.build.prepare.ImageFeature`), so training never runs the image
tower on real data. The vision-language tower is BriVL's image tower or, by default, a CLIP: its
text tower turns class names into prompts for zero-shot classification (Table 2's ZS rows).

Generation (§5): WavBriVL "approves" the images of a text-to-image generator by its audio–image
match score. a2i offers both readings of Fig. 4 behind :meth:`WavBriVL.generate_from_audio`:

- ``rerank``: draw ``rerank_candidates`` images from a frozen text-to-image latent diffusion model
  (Stable Diffusion 1.x at paper scale — the paper's DALL·E has no public weights) prompted with
  the zero-shot class prompt of the sound, keep the one whose image embedding is closest to the
  audio's (``clip_sort.py`` of FangSen9000/BriVL-Generation, whose README calls it the reference
  code of the authors' text-to-image part, reranks DALL·E draws by BriVL the same way, for text);
- ``guidance``: one draw whose every denoising step is pushed up the gradient of that audio–image
  cosine (:class:`~a2i.generators.score_guidance.ScoreGuidance`, scale ``score_guidance_scale``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from a2i.data.vggsound import read_class_file
from a2i.encoders.image.vision_language import VisionLanguageEncoder
from a2i.errors import ConfigError
from a2i.generators.diffusion import DiffusionGenerator
from a2i.generators.score_guidance import ScoreGuidance
from a2i.interfaces import (
    AUDIO,
    IMAGE,
    LABEL,
    AudioEncoder,
    GenerationRequest,
    TextEncoder,
    check_embedding_match,
)
from a2i.losses.moco import CrossModalMoCo, in_batch_infonce, momentum_copy, momentum_update
from a2i.methods.base import CACHED_IMAGE_FEATURES, AudioToImageMethod, Logged
from a2i.modules.image_augmentation import ImageAugmentation
from a2i.pipelines.loading import plain_config


def class_name_list(class_names: list[str] | str | None) -> list[str]:
    """Class names as given, or read from a file (one per line; a bare name is a shipped list)."""
    if not isinstance(class_names, str):
        return list(class_names or [])
    try:
        return read_class_file(class_names)
    except ConfigError as error:
        raise ConfigError(f"WavBriVL.class_names: {error}") from None


class WavBriVL(AudioToImageMethod):
    """Distil an audio tower into a frozen vision-language space; draw images steered by it.

    Args:
        audio_encoder: The trained tower, pooled output of the vision-language size (§2.3:
            :class:`~a2i.encoders.audio.wavlm_tower.WavLMTower`).
        image_encoder: The frozen vision-language tower (§2: BriVL's image tower; default in the
            configs: CLIP ViT-B/32, whose text tower gives the class prompts).
        generator: Frozen text-to-image latent diffusion model for generation (§5); None trains
            and embeds only.
        text_encoder: The generator's frozen text encoder (SD 1.x: CLIP ViT-L/14's text tower).
        loss: ``moco`` = BriVL's cross-modal MoCo (§2.4, the paper's); ``infonce`` = in-batch
            symmetric InfoNCE (Wav2CLIP-style), no queues.
        queue_size: Keys per MoCo queue (§2.4: 9600).
        momentum: Momentum of the audio key encoder (§2.4: 0.99).
        temperature: Softmax temperature of both losses (§2.4: 0.07).
        symmetric: Add MoCo's image→audio term (:mod:`a2i.losses.moco`).
        lr: AdamW learning rate. §2.4 takes "the suggested values in the original papers" without
            naming them; 1e-4 is a2i's choice.
        weight_decay: AdamW weight decay (a2i's choice: 0).
        class_names: Class names for zero-shot prompts (Table 2's ZS rows; rerank and guidance
            prompt the generator with the sound's best class), or a file of them, one per line
            (``vggsound_classes.txt`` is shipped). Needs a vision-language tower with a text side.
        prompt_template: Text around each class name (``{}`` marks it).
        generation: ``rerank`` or ``guidance`` (module docstring).
        rerank_candidates: Images drawn per output image in ``rerank`` (the authors' reranking
            script draws and sorts a user-chosen number; a2i's default 8).
        score_guidance_scale: Scale ``s`` of ``guidance`` in units of the normalised gradient
            (:class:`~a2i.generators.score_guidance.ScoreGuidance`; the paper states none, 1.0
            is calibrated in the synthetic world; 0 = the generator's own draw).
        negative_prompt: Unconditional input of the generator's classifier-free guidance.
        image_augmentation: Random colour jitter and grayscale of the training frames before
            the image tower (§2.3 follows BriVL; values: :mod:`a2i.modules.image_augmentation`).
            None by default so the tiny world configs and benchmarks keep their numbers;
            ``configs/wavbrivl.yaml`` turns it on. It needs frames, not cached embeddings.
        options: :class:`~a2i.methods.base.A2IMethod`'s (``export_dir`` writes the trained tower
            as ``audio_encoder.safetensors``; load it with the tower's ``pretrained``, e.g. for
            ``a2i embed``).
    """

    aligns_spaces = True
    controls = frozenset({"image_blend", "prompt"})

    def __init__(
        self,
        audio_encoder: AudioEncoder,
        image_encoder: VisionLanguageEncoder,
        generator: DiffusionGenerator | None = None,
        text_encoder: TextEncoder | None = None,
        loss: Literal["moco", "infonce"] = "moco",
        queue_size: int = 9600,
        momentum: float = 0.99,
        temperature: float = 0.07,
        symmetric: bool = True,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        class_names: list[str] | str | None = None,
        prompt_template: str = "a photo of {}",
        generation: Literal["rerank", "guidance"] = "rerank",
        rerank_candidates: int = 8,
        score_guidance_scale: float = 1.0,
        negative_prompt: str = "",
        image_augmentation: ImageAugmentation | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.save_config(locals())
        if audio_encoder.output == "sequence":
            raise ConfigError("WavBriVL needs an audio encoder with a pooled output")
        check_embedding_match(
            audio_encoder.embed_dim, image_encoder.embed_dim, "audio_encoder", "image_encoder"
        )
        if (generator is None) != (text_encoder is None):
            raise ConfigError(
                "WavBriVL.generator and WavBriVL.text_encoder come together (the text-to-image "
                "model and its text encoder): give both or neither"
            )
        if generator is not None:
            check_embedding_match(
                text_encoder.width, generator.condition_dim, "text_encoder", "generator"
            )
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"WavBriVL.momentum must be in [0, 1) (got {momentum})")
        if rerank_candidates < 1:
            raise ConfigError(f"WavBriVL.rerank_candidates must be >= 1 (got {rerank_candidates})")
        if "{}" not in prompt_template:
            raise ConfigError(
                f"WavBriVL.prompt_template '{prompt_template}' needs '{{}}' where the class goes"
            )
        self.class_names = class_name_list(class_names)
        if self.class_names and not image_encoder.has_text_tower:
            raise ConfigError(
                f"WavBriVL.class_names need a text tower, which {type(image_encoder).__name__} "
                "lacks; drop class_names or use a CLIP (OpenCLIPVisionLanguage)"
            )
        self.audio_encoder = audio_encoder
        self.image_encoder = image_encoder.freeze()
        self.generator = None if generator is None else generator.freeze()
        self.text_encoder = None if text_encoder is None else text_encoder.freeze()
        self.audio_key_encoder = momentum_copy(audio_encoder) if loss == "moco" else None
        self.moco = (
            CrossModalMoCo(audio_encoder.embed_dim, queue_size, temperature, symmetric)
            if loss == "moco"
            else None
        )
        self.image_augmentation = image_augmentation
        self._class_embeddings: Tensor | None = None

    # --- the shared space ------------------------------------------------------------------------

    @property
    def can_draw(self) -> bool:
        """Only with a generator: without one the tower trains and embeds (supports nothing)."""
        return self.generator is not None

    @property
    def image_size(self) -> int:
        """Side of the generated images (the vision-language tower's input without a generator)."""
        return (
            self.image_encoder.image_size if self.generator is None else self.generator.image_size
        )

    def audio_features(self, waveform: Tensor) -> Tensor:
        """Unit-norm ``(B, D)`` audio embeddings in the vision-language space."""
        return F.normalize(self.audio_encoder(waveform).pooled, dim=-1)

    @torch.no_grad()
    def image_features(self, image: Tensor) -> Tensor:
        """Unit-norm ``(B, D)`` embeddings of images in ``[0, 1]`` by the frozen tower."""
        return F.normalize(self.image_encoder(image), dim=-1)

    @torch.no_grad()
    def text_features(self, texts: list[str]) -> Tensor:
        """Unit-norm ``(B, D)`` embeddings of texts by the vision-language text tower."""
        return self.image_encoder.embed_texts(texts)

    def class_prompts(self) -> list[str]:
        """The zero-shot prompt of every class (``prompt_template`` around each name)."""
        return [self.hparams.prompt_template.format(name) for name in self.class_names]

    def class_embeddings(self) -> Tensor:
        """``(C, D)`` text embeddings of :meth:`class_prompts` (computed once per device)."""
        if not self.class_names:
            raise ConfigError("WavBriVL has no class_names: zero-shot prompts need them")
        device = next(self.image_encoder.parameters()).device
        if self._class_embeddings is None or self._class_embeddings.device != device:
            self._class_embeddings = self.text_features(self.class_prompts())
        return self._class_embeddings

    def cached_or_computed_image_features(self, batch: dict[str, Any]) -> Tensor:
        """Frame embeddings from the shards' cache (``features/image``) when there, else computed.

        The cache must come from the tower this config names (a2i prepare's ``ImageFeature``).
        """
        cached = self.cached_image_features(batch, self.image_encoder.embed_dim)
        return self.image_features(batch[IMAGE]) if cached is None else F.normalize(cached, dim=-1)

    # --- training -------------------------------------------------------------------------------

    def loss_terms(self, audio: Tensor, image: Tensor) -> dict[str, Tensor]:
        """MoCo's terms and their sum ``loss``, or the in-batch InfoNCE ``loss``."""
        if self.moco is None:
            return {"loss": in_batch_infonce(audio, image, self.hparams.temperature)}
        return self.moco(audio, image)

    @torch.no_grad()
    def update_queues(self, waveform: Tensor, image: Tensor) -> None:
        """Momentum update of the key encoder, then its keys and the images into the queues."""
        momentum_update(self.audio_encoder, self.audio_key_encoder, self.hparams.momentum)
        self.moco.enqueue(self.audio_key_encoder(waveform).pooled, image)

    def training_image_features(self, batch: dict[str, Any]) -> Tensor:
        """Frame embeddings for a training step: of augmented frames when augmentation is on."""
        if self.image_augmentation is None:
            return self.cached_or_computed_image_features(batch)
        if CACHED_IMAGE_FEATURES in batch:
            raise ConfigError(
                "WavBriVL.image_augmentation changes every frame before the image tower, so it "
                f"cannot use the data's cached '{CACHED_IMAGE_FEATURES}': drop data.features (the "
                "tower then runs on each batch) or set model.image_augmentation: null"
            )
        return self.image_features(self.image_augmentation(batch[IMAGE]))

    def step(self, batch: dict[str, Any], stage: str) -> dict[str, Logged]:
        """Cross-modal MoCo (or in-batch InfoNCE) between audio and frozen image embeddings.

        Training then updates the key encoder and the queues; held-out batches leave them and add
        in-batch retrieval and, with class names, zero-shot accuracy.
        """
        audio = self.audio_encoder(batch[AUDIO]).pooled
        if stage == "train":
            image = self.training_image_features(batch)
        else:
            image = self.cached_or_computed_image_features(batch)
        values: dict[str, Logged] = dict(self.loss_terms(audio, image))
        if stage == "train":
            if self.moco is not None:
                self.update_queues(batch[AUDIO], image)
            return values
        return {**values, **self.retrieval(F.normalize(audio.detach(), dim=-1), image, batch)}

    @torch.no_grad()
    def retrieval(self, audio: Tensor, image: Tensor, batch: dict[str, Any]) -> dict[str, Logged]:
        """In-batch audio→image top-1 and, with class names, zero-shot top-1 on labelled clips."""
        own = (audio @ image.T).argmax(dim=1) == torch.arange(len(audio), device=audio.device)
        values: dict[str, Logged] = {"retrieval_top1": own.float().mean()}
        labels = batch.get(LABEL)
        if self.class_names and labels is not None and bool((labels >= 0).any()):
            known = labels >= 0
            guess = (audio[known] @ self.class_embeddings().to(audio).T).argmax(dim=1)
            accuracy = (guess == labels[known]).float().mean()
            values["zero_shot_top1"] = (accuracy, int(known.sum()))
        return values

    def untrained_parts(self) -> list[str]:
        """As the base class, but a tower counts as given only with its own ``pretrained`` file.

        ``wavlm_pretrained`` names the backbone only; the layer weights and head would be random.
        """
        missing = super().untrained_parts()
        config = plain_config(dict(self.hparams)).get("audio_encoder")
        init_args = (config.get("init_args") or {}) if isinstance(config, dict) else {}
        if "audio_encoder" not in missing and not init_args.get("pretrained"):
            missing.append("audio_encoder")
        return missing

    # --- generation (§5) ------------------------------------------------------------------------

    def generation_target(
        self, waveform: Tensor, image: Tensor | None = None, image_weight: float = 0.5
    ) -> Tensor:
        """Unit-norm ``(B, D)`` embedding generation aims at: the audio's, or its blend with an image.

        ``normalize(λ·z_image + (1−λ)·z_audio)`` in the shared space (``image_blend``).
        """
        target = self.audio_features(waveform)
        if image is None:
            return target
        visual = self.image_features(image.to(target)).expand_as(target)
        return F.normalize(image_weight * visual + (1.0 - image_weight) * target, dim=-1)

    def zero_shot_prompts(self, target: Tensor) -> list[str]:
        """The prompt of each row's best-matching class; the empty prompt without class names."""
        if not self.class_names:
            return [""] * len(target)
        prompts = self.class_prompts()
        best = (target @ self.class_embeddings().to(target).T).argmax(dim=1)
        return [prompts[i] for i in best.tolist()]

    def audio_image_score(self, images: Tensor, target: Tensor) -> Tensor:
        """``(B,)`` cosine between each image's embedding and its row's target (differentiable)."""
        return (F.normalize(self.image_encoder(images), dim=-1) * target).sum(dim=-1)

    def rerank(self, drawn: list[Tensor], target: Tensor) -> Tensor:
        """Per row, the candidate of ``drawn`` (each ``(B, 3, H, W)``) with the highest score."""
        scores = torch.stack([self.audio_image_score(images, target) for images in drawn])
        best = scores.argmax(dim=0)
        rows = torch.arange(len(target), device=target.device)
        return torch.stack(drawn)[best, rows]

    def draw(self, waveform: Tensor, request: GenerationRequest) -> Tensor:
        """Sound → images ``(B, S, 3, H, W)`` by ``rerank`` or score ``guidance`` (module docstring).

        ``prompt`` replaces the zero-shot class prompt; ``image`` is blended into the target.
        Candidate ``k`` of seed ``s`` is drawn with seed ``s·N + k`` (N candidates), row by row.
        """
        seeds, image, image_weight, prompt = (
            request.seeds,
            request.image,
            request.image_weight,
            request.prompt,
        )
        guidance_scale, num_inference_steps = request.guidance_scale, request.num_inference_steps
        if self.generator is None:
            raise ConfigError(
                "WavBriVL draws images only with a generator: set model.init_args.generator and "
                "model.init_args.text_encoder (a text-to-image LDM and its text encoder)"
            )
        target = self.generation_target(waveform, image, image_weight)
        prompts = [prompt] * len(target) if prompt is not None else self.zero_shot_prompts(target)
        condition = self.text_encoder(prompts)
        negative = self.text_encoder([self.hparams.negative_prompt])
        sampling = {
            "unconditional": negative,
            "guidance_scale": guidance_scale,
            "num_inference_steps": num_inference_steps,
        }
        if self.hparams.generation == "guidance":
            guidance = ScoreGuidance(
                self.generator.diffusion,
                lambda drawn: self.audio_image_score(drawn, target.clone()),  # (inference mode)
                self.hparams.score_guidance_scale,
            )
            return self.generate(condition, seeds, guidance=guidance, **sampling)
        count = self.hparams.rerank_candidates
        return self.for_each_seed(
            seeds,
            lambda seed: self.rerank(
                [
                    self.generate(condition, [seed * count + k], **sampling)[:, 0]
                    for k in range(count)
                ],
                target,
            ),
        )
