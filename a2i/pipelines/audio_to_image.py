"""Sound in, images out: the one inference path of every method, without Lightning.

``a2i predict``, the evaluation harness, the control sweeps and Python users all call
:class:`AudioToImagePipeline`. It follows diffusers' pipeline conventions
(``pipeline_pixart_alpha.py``): inference only, one ``__call__``, the usual argument names
(``num_images_per_input``, ``seed``, ``guidance_scale``, ``num_inference_steps``,
``output_type``), inputs checked before anything is computed. What it adds to a method's
:meth:`~a2i.interfaces.AudioToImageModel.generate_from_audio`:

- reading audio files of any format and rate (one bad file is that input's error, the others go on),
- the waveform controls of Sound2Vision §5.1 (volume, mixing with other sounds at given gains),
- the image blend of §5.2 from a file or tensor, a prompt, sampling overrides — each refused by
  name when the method does not support it,
- batching, with images that do not depend on the batch (every (input, seed) has its own noise).

Building a pipeline from a training run, an exported folder or a config lives in
:mod:`a2i.pipelines.loading`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from torch import Tensor, nn

from a2i.audio.effects import apply_gain, db_to_amplitude
from a2i.audio.io import fit_length, read_audio_window
from a2i.audio.windows import crop_waveform
from a2i.errors import A2IError, ConfigError
from a2i.image import image_tensor, read_image, to_uint8
from a2i.interfaces import AudioToImageModel, Crop, GenerationRequest
from a2i.pipelines.card import ModelCard

AudioInput = str | Path | Tensor
"""A file path, or a mono waveform ``(T,)`` at the model's sample rate."""


@dataclass
class AudioToImageOutput:
    """What :class:`AudioToImagePipeline` returns, one entry per input, in input order.

    Attributes:
        images: ``(S, 3, H, W)`` tensors in ``[0, 1]`` (``output_type="pt"``) or lists of
            ``PIL.Image`` (``"pil"``); None for an input that failed.
        seeds: The ``S`` noise seeds, shared by every input.
        errors: ``""`` for an input that worked, else why it failed (file and reason).
        durations: Seconds of audio each input held before cropping/padding (None if unread).
        offsets: Where the clip the model heard starts in each input, in seconds.
    """

    images: list[Tensor | list[Image.Image] | None]
    seeds: list[int]
    errors: list[str]
    durations: list[float | None] = field(default_factory=list)
    offsets: list[float | None] = field(default_factory=list)

    @property
    def failed(self) -> list[int]:
        """Indices of the inputs that failed."""
        return [i for i, error in enumerate(self.errors) if error]


class AudioToImagePipeline:
    """Inference over any :class:`~a2i.interfaces.AudioToImageModel` (see module docstring).

    Args:
        model: A trained method (a Lightning module or any object with the contract).
        batch_size: Inputs generated at once (images do not depend on it).
        card: What the model is and where it came from (the loaders fill it; default empty).

    Example::

        pipe = AudioToImagePipeline.from_run("runs/demo/<time>/logs/gan/version_0")
        out = pipe(["dog.wav", "rain.flac"], num_images_per_input=2)
        out.images[0]  # (2, 3, H, W)
    """

    def __init__(
        self, model: AudioToImageModel, batch_size: int = 16, card: ModelCard | None = None
    ) -> None:
        if not isinstance(model, AudioToImageModel):
            raise ConfigError(
                f"{type(model).__name__} does not draw images from audio (it does not implement "
                "a2i.interfaces.AudioToImageModel); predict and test need such a method"
            )
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1 (got {batch_size})")
        self.model = model
        self.batch_size = batch_size
        self.card = ModelCard() if card is None else card
        if isinstance(model, nn.Module):
            model.eval()

    @classmethod
    def from_run(cls, run: str | Path, **kwargs: Any) -> AudioToImagePipeline:
        """The method of a training run.

        ``run`` is a run folder (``config.yaml`` + ``checkpoints/``) or a ``.ckpt`` inside one;
        see :func:`a2i.pipelines.loading.load_run`.
        """
        from a2i.pipelines.loading import load_run

        model, card = load_run(run)
        return cls(model, card=card, **kwargs)

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs: Any) -> AudioToImagePipeline:
        """The method saved by :meth:`save_pretrained` in ``directory``."""
        from a2i.pipelines.loading import load_exported

        model, card = load_exported(directory)
        return cls(model, card=card, **kwargs)

    @classmethod
    def from_config(cls, config: str | Path, **kwargs: Any) -> AudioToImagePipeline:
        """The method of a config that names every trained part's weights (no checkpoint).

        A file or a shipped config's name, e.g. ``tiny/sound2vision_gan_shipped``, whose weights
        ship in ``a2i/assets``; see :func:`a2i.pipelines.loading.load_config`.
        """
        from a2i.pipelines.loading import load_config

        model, card = load_config(config)
        return cls(model, card=card, **kwargs)

    def save_pretrained(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write ``config.yaml`` + ``model.safetensors`` (trainable weights) + ``README.md``."""
        from a2i.pipelines.loading import save_exported

        return save_exported(self.model, directory, self.card, overwrite=overwrite)

    @property
    def device(self) -> torch.device:
        """Where the model's weights live (CPU for weight-less models)."""
        if isinstance(self.model, nn.Module):
            for tensor in (*self.model.parameters(), *self.model.buffers()):
                return tensor.device
        return torch.device("cpu")

    def to(self, device: torch.device | str) -> AudioToImagePipeline:
        """Move the model to ``device``."""
        if isinstance(self.model, nn.Module):
            self.model.to(device)
        return self

    @property
    def num_samples(self) -> int:
        """Samples per clip the model hears."""
        return round(self.model.clip_seconds * self.model.sample_rate)

    # -- checking and resolving the request ------------------------------------------------------

    def prepare_request(self, request: GenerationRequest) -> GenerationRequest:
        """Refuse the controls the model does not support, then read the files ``request`` names.

        The result holds ``image`` as a ``(1 or B, 3, H, W)`` tensor and each ``mix_with`` sound
        as the clip the model hears, so every batch of a call shares one decoding.

        Raises:
            ConfigError: A control the model does not support.
            AudioDecodeError / ImageDecodeError: A ``mix_with`` or ``image`` file is unreadable
                (it applies to every input, so the whole call stops).
        """
        self.model.check_controls(request)
        image = request.image
        if isinstance(image, str | Path):
            image = read_image(image, self.model.image_size)
        elif isinstance(image, Image.Image):
            image = image_tensor(image, self.model.image_size)
        if image is not None and image.dim() == 3:
            image = image[None]
        sources = tuple(self._clip(source, request.crop) for source in request.mix_with)
        return replace(request, image=image, mix_with=sources)

    def read(self, source: AudioInput, crop: Crop = "start") -> tuple[Tensor, float, float]:
        """The window of ``source`` the model hears, its whole duration and the window's offset.

        Files are decoded only as far as the window needs (an hour-long file costs what its
        window costs); the window is zero-padded at the end when the input is shorter.

        Raises:
            AudioDecodeError: A file :func:`~a2i.audio.io.read_audio_window` refuses.
            ConfigError: A waveform with no samples or with NaN/inf ones, refused as such a
                file is (the model would draw garbage from it without a word).
        """
        rate = self.model.sample_rate
        if _is_path(source):
            window = read_audio_window(source, rate, self.model.clip_seconds, crop)
            waveform, duration, offset = window.waveform, window.duration, window.offset
        else:
            waveform = source.float().reshape(-1)
            _check_waveform(waveform, rate)
            duration = waveform.shape[-1] / rate
            waveform, start = crop_waveform(waveform, self.num_samples, crop)
            offset = start / rate
        return fit_length(waveform, self.num_samples, random_crop=False), duration, offset

    def _clip(self, source: AudioInput, crop: Crop) -> Tensor:
        return self.read(source, crop)[0]

    # -- generation ------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, waveform: Tensor, request: GenerationRequest) -> Tensor:
        """Images ``(B, S, 3, H, W)`` for clips ``(B, T)`` already at the model's rate/length.

        ``request`` comes from :meth:`prepare_request` (checked, its files read).
        """
        device = self.device
        waveform = waveform.to(device)
        if request.gain_db:
            waveform = apply_gain(waveform, request.gain_db)
        for source, gain in zip(request.mix_with, request.mix_gains_db, strict=True):
            waveform = waveform + db_to_amplitude(gain) * source.to(waveform)
        if request.image is not None:
            if len(request.image) not in (1, len(waveform)):
                raise ConfigError(
                    f"{len(request.image)} blend images for {len(waveform)} inputs "
                    "(give 1 or one each)"
                )
            request = replace(request, image=request.image.to(device))
        return self.model.generate_from_audio(waveform, request)

    def __call__(
        self,
        audio: AudioInput | Sequence[AudioInput],
        *,
        num_images_per_input: int = 1,
        seed: int = 0,
        output_type: Literal["pt", "pil"] = "pt",
        request: GenerationRequest | None = None,
        **controls: Any,
    ) -> AudioToImageOutput:
        """Draw ``num_images_per_input`` images for every input.

        Args:
            audio: Files (any format and rate) and/or mono waveforms ``(T,)`` at the model's rate;
                a ``(B, T)`` tensor is B waveforms.
            num_images_per_input: Images per input, seeds ``seed, seed+1, …``.
            seed: First noise seed.
            output_type: ``"pt"`` tensors in ``[0, 1]`` or ``"pil"`` images.
            request: The whole request at once, instead of the keywords.
            controls: The other fields of :class:`~a2i.interfaces.GenerationRequest`
                (``gain_db``, ``mix_with``, ``image``, ``image_weight``, ``prompt``,
                ``guidance_scale``, ``num_inference_steps``, ``crop``).
        """
        if output_type not in ("pt", "pil"):
            raise ConfigError(f"output_type must be 'pt' or 'pil' (got {output_type!r})")
        if request is None:
            request = GenerationRequest.from_seed(seed, num_images_per_input, **controls)
        elif controls:
            raise ConfigError(f"give request= or the controls, not both ({', '.join(controls)})")
        inputs = _as_inputs(audio)
        return self.run(inputs, self.prepare_request(request), output_type)

    def run(
        self,
        inputs: Sequence[AudioInput],
        request: GenerationRequest,
        output_type: Literal["pt", "pil"] = "pt",
    ) -> AudioToImageOutput:
        """Generate for ``inputs`` under a request from :meth:`prepare_request`."""
        inputs = list(inputs)
        if request.image is not None and len(request.image) not in (1, len(inputs)):
            raise ConfigError(
                f"{len(request.image)} blend images for {len(inputs)} inputs (give 1 or one each)"
            )
        output = AudioToImageOutput(
            images=[None] * len(inputs),
            seeds=list(request.seeds),
            errors=[""] * len(inputs),
            durations=[None] * len(inputs),
            offsets=[None] * len(inputs),
        )
        for indices, clips in self._batches(inputs, request.crop, output):
            batch_request = request
            if request.image is not None and len(request.image) > 1:
                batch_request = replace(request, image=request.image[indices])
            images = self.generate(torch.stack(clips), batch_request).cpu()
            for index, drawn in zip(indices, images, strict=True):
                output.images[index] = drawn if output_type == "pt" else to_pil(drawn)
        return output

    def _batches(
        self, inputs: list[AudioInput], crop: Crop, output: AudioToImageOutput
    ) -> Iterator[tuple[list[int], list[Tensor]]]:
        """Read inputs in order and yield full batches; a read failure is that input's error."""
        indices: list[int] = []
        clips: list[Tensor] = []
        for index, source in enumerate(inputs):
            try:
                clip, output.durations[index], output.offsets[index] = self.read(source, crop)
            except A2IError as error:
                output.errors[index] = str(error)
                continue
            indices.append(index)
            clips.append(clip)
            if len(indices) == self.batch_size:
                yield indices, clips
                indices, clips = [], []
        if indices:
            yield indices, clips


def to_pil(images: Tensor) -> list[Image.Image]:
    """``(S, 3, H, W)`` in ``[0, 1]`` → S PIL images."""
    return [Image.fromarray(to_uint8(image)) for image in images]


def _check_waveform(waveform: Tensor, rate: int) -> None:
    if not len(waveform):
        raise ConfigError("a waveform input holds zero samples")
    finite = torch.isfinite(waveform)
    if not finite.all():
        at = int(torch.argmin(finite.int())) / rate
        raise ConfigError(
            f"a waveform input holds {int((~finite).sum())} NaN or infinite samples "
            f"(the first at {at:.2f} s)"
        )


def _is_path(source: AudioInput) -> bool:
    return isinstance(source, str | Path)


def _as_inputs(audio: AudioInput | Sequence[AudioInput]) -> list[AudioInput]:
    if _is_path(audio):
        return [audio]
    if isinstance(audio, Tensor):
        if audio.dim() == 1:
            return [audio]
        if audio.dim() == 2:
            return list(audio)
        raise ConfigError(f"waveforms must be (T,) or (B, T), got {tuple(audio.shape)}")
    return list(audio)
