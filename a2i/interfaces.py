"""The component contracts every a2i method is built from, and the batch contract.

Methods (Sound2Vision, AudioToken, WavBriVL, Seeing Sound) are compositions of an
:class:`AudioEncoder`, an :class:`ImageEncoder`, a :class:`TextEncoder` and an
:class:`ImageGenerator`. Each component declares what it consumes and produces, so a method can
check at construction that its parts fit (sample rate, clip length, embedding size) instead of
failing deep inside a forward pass, and types the role it needs, never a concrete class.

Batch contract (what every datamodule yields and every method reads):

- ``audio``: ``(B, T)`` float32 mono waveform in ``[-1, 1]`` at the datamodule's sample rate.
- ``image``: ``(B, 3, H, W)`` float32 in ``[0, 1]`` (absent for audio-only prediction batches).
- ``label``: ``(B,)`` int64 class index, ``-1`` when unknown.
- ``caption``: ``list[str]`` of length B (class caption, e.g. ``"a red triangle"``; may be empty).
- ``key``: ``list[str]`` of length B, a stable identifier (relative path for files).
- ``features/<name>``: optional ``(B, ...)`` outputs of frozen models cached when a video
  dataset was prepared (:mod:`a2i.build.prepare`), e.g. ``features/image``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from PIL import Image
from torch import Tensor, nn

from a2i.errors import ConfigError

AUDIO = "audio"
IMAGE = "image"
LABEL = "label"
CAPTION = "caption"
KEY = "key"
FEATURES = "features/"

MAX_SEED = 2**64 - 1
"""Highest noise seed: torch's generators take 64 unsigned bits (a negative seed would wrap
around to the same images as a large one, so none is accepted)."""

Control = Literal["gain", "mix", "image_blend", "prompt", "guidance_scale", "num_inference_steps"]
"""Inference controls a method may honour (Sound2Vision §5; AudioToken §2.1's prompt around the
audio token); ``gain`` and ``mix`` act on the waveform, the others on generation."""

WAVEFORM_CONTROLS: frozenset[Control] = frozenset({"gain", "mix"})

Crop = Literal["start", "center", "loudest"]
"""Which window of a longer input the model hears."""


@dataclass(frozen=True)
class GenerationRequest:
    """The controls of one generation: what ``a2i predict``, ``a2i serve`` and Python users ask.

    Built once (from flags, widgets or keywords) and checked on construction;
    :class:`~a2i.pipelines.AudioToImagePipeline` then refuses the controls the model does not
    support (:meth:`AudioToImageModel.check_controls`), reads the files it names and passes it to
    :meth:`AudioToImageModel.generate_from_audio` with ``image`` as a ``(1 or B, 3, H, W)`` tensor.

    Attributes:
        seeds: Noise seeds; one image per seed and input.
        gain_db: Volume change of every input in dB (``gain``, Sound2Vision §5.1).
        mix_with: Sounds added to every input (``mix``, §5.1): paths, or waveforms ``(T,)`` at
            the model's rate.
        mix_gains_db: Gain of each ``mix_with`` sound in dB (default: 0 dB each).
        image: Image blended with the audio (``image_blend``, §5.2): a path, a PIL image, a
            ``(3, H, W)`` tensor in ``[0, 1]``, or ``(B, 3, H, W)`` with one image per input.
        image_weight: λ of the blend ``λ·z_V + (1−λ)·z_A`` (0 = audio only, 1 = image only).
        prompt: Text around the audio token (``prompt``, AudioToken).
        guidance_scale: Classifier-free guidance scale (diffusion methods; None: the config's).
        num_inference_steps: Sampling steps (diffusion methods; None: the config's).
        crop: Which window of a longer input the model hears: start, center or loudest.
    """

    seeds: tuple[int, ...] = (0,)
    gain_db: float = 0.0
    mix_with: tuple[str | Path | Tensor, ...] = ()
    mix_gains_db: tuple[float, ...] = ()
    image: str | Path | Image.Image | Tensor | None = None
    image_weight: float = 0.5
    prompt: str | None = None
    guidance_scale: float | None = None
    num_inference_steps: int | None = None
    crop: Crop = "start"

    def __post_init__(self) -> None:
        """Accept one sound or gain for a sequence of one; refuse values out of range."""
        mix_with = self.mix_with
        mix_with = (mix_with,) if isinstance(mix_with, str | Path | Tensor) else tuple(mix_with)
        gains = self.mix_gains_db
        gains = (gains,) if isinstance(gains, int | float) else tuple(gains)
        if gains and len(gains) != len(mix_with):
            raise ConfigError(
                f"mix_gains_db has {len(gains)} values for {len(mix_with)} mix_with sounds"
            )
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "mix_with", mix_with)
        object.__setattr__(self, "mix_gains_db", tuple(map(float, gains or [0.0] * len(mix_with))))
        if not self.seeds:
            raise ConfigError("a request needs at least one seed (one image per seed)")
        outside = [seed for seed in self.seeds if not 0 <= seed <= MAX_SEED]
        if outside:
            raise ConfigError(
                f"seeds must be in [0, {MAX_SEED}], the range of torch's generators "
                f"(got {outside[0]})"
            )
        if not 0.0 <= self.image_weight <= 1.0:
            raise ConfigError(f"image_weight must be in [0, 1] (got {self.image_weight})")
        if self.num_inference_steps is not None and self.num_inference_steps < 1:
            raise ConfigError(f"num_inference_steps must be >= 1 (got {self.num_inference_steps})")
        if self.crop not in get_args(Crop):
            raise ConfigError(f"crop must be 'start', 'center' or 'loudest' (got {self.crop!r})")

    @classmethod
    def from_seed(cls, seed: int = 0, num_seeds: int = 1, **controls: Any) -> GenerationRequest:
        """The request of ``num_seeds`` consecutive seeds from ``seed``, with ``controls``.

        Args:
            seed: First noise seed.
            num_seeds: Images per input (seeds ``seed, seed+1, …``).
            controls: The other fields of the request.
        """
        if num_seeds < 1:
            raise ConfigError(f"the number of images per input must be >= 1 (got {num_seeds})")
        return cls(seeds=tuple(range(seed, seed + num_seeds)), **controls)

    def asked_controls(self) -> frozenset[Control]:
        """The controls this request asks of the model (defaults ask for none)."""
        asked: dict[Control, bool] = {
            "gain": self.gain_db != 0.0,
            "mix": bool(self.mix_with),
            "image_blend": self.image is not None,
            "prompt": self.prompt is not None,
            "guidance_scale": self.guidance_scale is not None,
            "num_inference_steps": self.num_inference_steps is not None,
        }
        return frozenset(name for name, on in asked.items() if on)


class FreezableMixin(nn.Module):
    """A module that can be frozen: no gradients, eval mode kept through ``.train()`` calls."""

    _frozen: bool = False

    @property
    def frozen(self) -> bool:
        """Whether this component is frozen (never trained, never in an optimizer)."""
        return self._frozen

    def freeze(self) -> FreezableMixin:
        """Stop gradients and keep eval mode (dropout/batch-norm statistics fixed)."""
        self._frozen = True
        self.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> FreezableMixin:
        """Switch mode, except that a frozen component always stays in eval mode."""
        return super().train(False if self._frozen else mode)


@dataclass
class AudioEncoderOutput:
    """What an audio encoder returns.

    Attributes:
        pooled: ``(B, D)`` clip embedding, or None for sequence-only encoders.
        tokens: ``(B, N, D_tokens)`` frame/patch sequence, or None for pooled-only encoders.
    """

    pooled: Tensor | None = None
    tokens: Tensor | None = None


class AudioEncoder(FreezableMixin, ABC):
    """Waveform ``(B, T)`` → pooled embedding and/or token sequence.

    Subclasses set the attributes below in ``__init__``. The encoder owns its front end
    (spectrogram, fbank, resampling is the datamodule's job), so a waveform at
    :attr:`sample_rate` is all it needs.

    Attributes:
        sample_rate: Expected input sample rate in Hz.
        clip_seconds: Clip duration the encoder was designed for.
        any_length: Whether ``forward`` also encodes inputs longer than ``clip_seconds`` whole
            (relative positions, no fixed position table, e.g. BEATs); otherwise longer inputs
            are cropped to it. The caller then bounds the length.
        embed_dim: Size of ``pooled`` (0 when the encoder yields no pooled output).
        token_dim: Size of each token in ``tokens`` (0 when it yields no sequence).
        output: Which outputs are produced.
    """

    sample_rate: int
    clip_seconds: float
    any_length: bool = False
    embed_dim: int = 0
    token_dim: int = 0
    output: Literal["pooled", "sequence", "both"] = "pooled"

    @abstractmethod
    def forward(self, waveform: Tensor) -> AudioEncoderOutput:
        """Encode a batch of mono waveforms ``(B, T)``."""


class FixedWindowAudioEncoder(AudioEncoder):
    """An audio encoder that pads every clip to one window and emits a fixed token grid (AST).

    A method that conditions on the tokens (Seeing Sound) needs both facts: the number of tokens
    (a learned null sequence, cached sequences) and which tokens only see the padding of a clip
    shorter than the window (masked, so the image depends on the audio only).

    Attributes:
        token_count: Tokens per clip, whatever its length.
    """

    token_count: int

    @abstractmethod
    def heard_tokens(self, num_samples: int) -> Tensor:
        """``(token_count,)`` bool: True for the tokens that see audio of a ``num_samples`` clip."""


class ImageEncoder(FreezableMixin, ABC):
    """Image ``(B, 3, H, W)`` in ``[0, 1]`` → embedding ``(B, D)``.

    The encoder resizes and normalises internally (ImageNet or CLIP statistics), so callers
    always pass plain ``[0, 1]`` images.

    Attributes:
        image_size: Resolution the encoder works at (inputs are resized to it).
        embed_dim: Size of the embedding.
        normalized: Whether embeddings are unit-norm.
    """

    image_size: int
    embed_dim: int
    normalized: bool = False

    @abstractmethod
    def forward(self, image: Tensor) -> Tensor:
        """Encode images in ``[0, 1]``."""


Generators = torch.Generator | list[torch.Generator] | None
"""Seeds of a generation: one generator for the batch, one per row (batch-size independent), or
the global RNG."""


def per_row_generators(seed: int, rows: int, device: torch.device | str) -> list[torch.Generator]:
    """One generator per row, all seeded with ``seed``.

    A row's image is then the same whatever batch it is drawn in (under DDP and on one process).
    """
    return [torch.Generator(device=device).manual_seed(seed) for _ in range(rows)]


@dataclass
class Condition:
    """What a conditional generator reads, as one typed value (audiocraft's conditioning idea).

    Sound2Vision passes an image-space embedding (one token), AudioToken the text encoder's
    states of a prompt with the audio token injected, Seeing Sound AST tokens with a padding mask;
    all go through the same :meth:`ImageGenerator.generate`.

    Attributes:
        tokens: ``(B, N, D)`` sequence the denoiser cross-attends to.
        mask: ``(B, N)`` bool, True for real tokens and False for padding; None = no padding.
        pooled: Optional ``(B, D')`` summary vector (e.g. for denoisers with pooled conditioning).
    """

    tokens: Tensor
    mask: Tensor | None = None
    pooled: Tensor | None = None

    @classmethod
    def from_embedding(cls, embedding: Tensor) -> Condition:
        """One token per row from ``(B, D)`` embeddings (``(B, N, D)`` sequences pass through)."""
        return cls(embedding[:, None, :] if embedding.dim() == 2 else embedding)

    @classmethod
    def of(cls, value: Tensor | Condition) -> Condition:
        """``value`` itself, or :meth:`from_embedding` of an embedding or token sequence."""
        return value if isinstance(value, Condition) else cls.from_embedding(value)

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def dim(self) -> int:
        """Width of each token."""
        return self.tokens.shape[-1]

    def full_mask(self) -> Tensor:
        """``mask``, or all True when there is no padding."""
        if self.mask is not None:
            return self.mask
        return torch.ones(self.tokens.shape[:2], dtype=torch.bool, device=self.tokens.device)

    def null(self) -> Condition:
        """The all-zero condition of the same shape (unconditional input of guidance)."""
        return Condition(
            torch.zeros_like(self.tokens),
            self.mask,
            None if self.pooled is None else torch.zeros_like(self.pooled),
        )

    def expand(self, batch: int) -> Condition:
        """Broadcast a one-row condition (an empty prompt, say) to ``batch`` rows."""
        if len(self) == batch:
            return self
        if len(self) != 1:
            raise ValueError(f"cannot expand a condition of {len(self)} rows to {batch}")
        return Condition(
            self.tokens.expand(batch, *self.tokens.shape[1:]),
            None if self.mask is None else self.mask.expand(batch, -1),
            None if self.pooled is None else self.pooled.expand(batch, -1),
        )

    def cat(self, other: Condition) -> Condition:
        """Rows of ``self`` then ``other`` (classifier-free guidance batches both)."""
        mask = None
        if self.mask is not None or other.mask is not None:
            mask = torch.cat([c.full_mask() for c in (self, other)])
        pooled = None
        if self.pooled is not None and other.pooled is not None:
            pooled = torch.cat([self.pooled, other.pooled])
        return Condition(torch.cat([self.tokens, other.tokens]), mask, pooled)

    def select(self, keep: Tensor) -> Condition:
        """Rows where ``keep`` is False are replaced by the null condition (condition dropout)."""
        k = keep.to(self.tokens.dtype)
        return Condition(
            self.tokens * k.view(-1, 1, 1),
            self.mask,
            None if self.pooled is None else self.pooled * k.view(-1, 1),
        )

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Condition:
        """Move to ``device`` and cast the float parts to ``dtype`` (the mask stays bool)."""
        return Condition(
            self.tokens.to(device=device, dtype=dtype),
            None if self.mask is None else self.mask.to(device=device),
            None if self.pooled is None else self.pooled.to(device=device, dtype=dtype),
        )


LatentGuidance = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``(latents, timestep, prediction) → prediction``: a correction of each sampling step of a
diffusion generator (:class:`~a2i.generators.score_guidance.ScoreGuidance`)."""


class ImageGenerator(FreezableMixin, ABC):
    """Condition → image ``(B, 3, H, W)`` in ``[0, 1]``.

    The condition is a :class:`Condition`, or a plain ``(B, D)`` embedding for generators that
    read one vector (IC-GAN). :meth:`generate` takes every sampling control a method may pass;
    a generator declares which it honours (:attr:`sampling_controls`,
    :attr:`composes_conditions`), so methods read that instead of probing signatures, and it
    refuses the others by name (:meth:`refuse_sampling`) rather than ignore them.

    Attributes:
        condition_dim: Size of the conditioning vector (the last dimension of the condition).
        image_size: Output resolution.
    """

    condition_dim: int
    image_size: int
    sampling_controls: frozenset[Control] = frozenset()
    """The :data:`Control` s among :meth:`generate`'s keywords it honours (``guidance_scale``, …)."""
    composes_conditions: bool = False
    """Whether :meth:`generate` takes a list of conditions and their ``weights`` (composable
    diffusion); Sound2Vision's ``image_blend`` defaults to it then."""
    condition_scale: Literal["unit", "feature"] = "feature"
    """Length of the conditions it was trained on: ``unit`` (IC-GAN on unit SwAV features) or
    ``feature`` (raw encoder output, e.g. CLIP image embeddings for sd-image-variations)."""

    @abstractmethod
    def generate(
        self,
        condition: Tensor | Condition | Sequence[Tensor | Condition],
        generator: Generators = None,
        unconditional: Tensor | Condition | None = None,
        *,
        guidance_scale: float | None = None,
        num_inference_steps: int | None = None,
        weights: Sequence[float] | None = None,
        guidance: LatentGuidance | None = None,
    ) -> Tensor:
        """Draw one image per condition row.

        Every argument after ``generator`` is a sampling control of diffusion generators; None
        leaves it at the generator's configured default (or off). A generator that cannot honour
        one that is given raises :class:`~a2i.errors.ConfigError` naming it.

        Args:
            condition: What to draw, or (:attr:`composes_conditions`) several conditions of the
                same rows to compose.
            generator: Seeds every random draw: a list gives row ``i`` its own generator, so the
                image of a row does not depend on the other rows of the batch.
            unconditional: Classifier-free guidance's unconditional input (one row or one per
                row), e.g. a text-to-image model's empty-prompt encoding.
            guidance_scale: Classifier-free guidance scale for this call.
            num_inference_steps: Sampling steps for this call.
            weights: Weight of each composed condition (default 1 each).
            guidance: A correction of every sampling step (score guidance).
        """

    def refuse_sampling(
        self, condition: Tensor | Condition | Sequence[Tensor | Condition], **asked: object
    ) -> None:
        """Raise a :class:`ConfigError` naming each control of ``asked`` that is given (not None).

        A generator calls it with the controls it cannot honour; several conditions are refused
        too unless it :attr:`composes_conditions`. Ignoring them would draw something else than
        what was asked, silently.
        """
        refused = [name for name, value in asked.items() if value is not None]
        if isinstance(condition, list | tuple) and not self.composes_conditions:
            refused.insert(0, "several conditions")
        if refused:
            raise ConfigError(
                f"{type(self).__name__} cannot generate with {', '.join(refused)} "
                "(a diffusion generator can)"
            )

    def trained_parts(self) -> dict[str, nn.Module]:
        """The submodules stage-1 training changes, by export name (saved as ``<name>.safetensors``).

        The whole generator by default; a latent diffusion model trains only its UNet.
        """
        return {"generator": self}

    @abstractmethod
    def training_losses(self, image: Tensor, condition: Tensor) -> dict[str, Tensor]:
        """Stage-1 training losses for reproducing ``image`` from ``condition``.

        Returns a dict with at least ``"loss"`` (the value to minimise). Adversarial
        generators implement :class:`AdversarialGenerator` instead and raise here.
        """


class TextEncoder(FreezableMixin, ABC):
    """Prompts → the per-token states a text-to-image generator reads, with a slot for a learned token.

    AudioToken (§2.1) injects an audio embedding at :attr:`placeholder` of its prompt and trains
    it against the label's word embeddings (:meth:`pooled_label`); WavBriVL prompts its
    text-to-image generator with class prompts.

    Attributes:
        width: Width of each state and of an injected embedding (the generator's
            ``condition_dim``).
        placeholder: The token of a prompt that marks where an injected embedding goes.
    """

    width: int
    placeholder: str

    @abstractmethod
    def forward(self, prompts: Sequence[str], injected: Tensor | None = None) -> Tensor:
        """States ``(B, L, width)`` of one prompt per row.

        Args:
            prompts: One prompt per row; with ``injected``, each holds :attr:`placeholder` once.
            injected: ``(B, width)`` embeddings to put at the placeholders.
        """

    @abstractmethod
    def pooled_label(self, labels: Sequence[str]) -> Tensor:
        """``(B, width)`` mean input embedding of each label's tokens (AudioToken eq. 7's ``l̂``)."""


class AdversarialGenerator(ImageGenerator):
    """An :class:`ImageGenerator` trained against a discriminator (GAN variants).

    The discriminator lives inside the component so a stage-1 trainer can alternate the
    two updates without knowing the architecture; :meth:`generate` never uses it.
    """

    discriminator: nn.Module

    def generator_parameters(self) -> list[nn.Parameter]:
        """Parameters updated by the generator step (everything but the discriminator)."""
        disc = {id(p) for p in self.discriminator.parameters()}
        return [p for p in self.parameters() if id(p) not in disc]

    @abstractmethod
    def discriminator_loss(self, image: Tensor, condition: Tensor) -> dict[str, Tensor]:
        """Discriminator objective on real ``image`` vs. images generated from ``condition``."""

    @abstractmethod
    def generator_loss(self, image: Tensor, condition: Tensor) -> dict[str, Tensor]:
        """Generator objective (adversarial plus any reconstruction terms), key ``"loss"``."""

    def training_losses(self, image: Tensor, condition: Tensor) -> dict[str, Tensor]:
        """Adversarial generators are trained through the two methods above."""
        raise TypeError(
            f"{type(self).__name__} is adversarial: train it with generator_loss and "
            "discriminator_loss (a2i.methods.pretraining.GeneratorPretraining does this)"
        )


class AudioToImageModel(ABC):
    """The audio-to-image contract: what the pipeline, the harness and the CLI rely on.

    Every method that draws images from sound implements it (Sound2Vision, AudioToken, …), so
    callers read :attr:`supports` instead of probing signatures, and an unsupported control is
    refused by name (:meth:`check_controls`).

    Attributes:
        supports: The controls the method honours (:data:`Control`).
    """

    supports: frozenset[Control] = WAVEFORM_CONTROLS

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """Sample rate of the waveforms :meth:`generate_from_audio` reads."""

    @property
    @abstractmethod
    def clip_seconds(self) -> float:
        """Seconds of audio generation hears (longer inputs are cropped to it)."""

    @property
    def training_clip_seconds(self) -> float:
        """Clip length training data must deliver.

        The same as :attr:`clip_seconds` unless the method hears more at generation (AudioToken's
        official 10 s).
        """
        return self.clip_seconds

    @property
    @abstractmethod
    def image_size(self) -> int:
        """Side of the generated images."""

    @abstractmethod
    def generate_from_audio(self, waveform: Tensor, request: GenerationRequest) -> Tensor:
        """Images ``(B, S, 3, H, W)`` in ``[0, 1]`` for waveforms ``(B, T)`` and ``S`` seeds.

        The image of (row, seed) depends on that row and seed only, never on the batch.

        Args:
            waveform: Mono clips at :attr:`sample_rate` (gain and mixing already applied).
            request: The controls, already checked by :meth:`check_controls`; ``request.image``
                is None or a ``(B or 1, 3, H, W)`` tensor in ``[0, 1]``.
        """

    def audio_features(self, waveform: Tensor) -> Tensor:
        """``(B, D)`` audio embedding in the space shared with :meth:`image_features`.

        Only methods that align an audio and an image space have it (the harness then measures
        the modality gap); see :attr:`aligns_spaces`.
        """
        raise NotImplementedError(f"{type(self).__name__} does not align audio and image spaces")

    def image_features(self, image: Tensor) -> Tensor:
        """``(B, D)`` image embedding of images in ``[0, 1]`` (see :meth:`audio_features`)."""
        raise NotImplementedError(f"{type(self).__name__} does not align audio and image spaces")

    aligns_spaces: bool = False
    """True when :meth:`audio_features` and :meth:`image_features` are implemented."""

    def check_controls(self, request: GenerationRequest) -> None:
        """Refuse the controls ``request`` asks for that this method does not honour."""
        refused = sorted(request.asked_controls() - self.supports)
        if refused:
            raise ConfigError(
                f"{type(self).__name__} does not support {', '.join(refused)} (it supports: "
                f"{', '.join(sorted(self.supports)) or 'none'})"
            )


def check_embedding_match(produced: int, consumed: int, producer: str, consumer: str) -> None:
    """Raise a :class:`ConfigError` when two components' feature sizes disagree."""
    if produced != consumed:
        raise ConfigError(
            f"{producer} produces {produced}-d features but {consumer} expects {consumed}-d; "
            "choose presets of matching size (or set the projection size) in the config"
        )
