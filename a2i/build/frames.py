"""Which frame of a clip becomes its training image, and whether the clip is kept at all.

In-the-wild video is loosely synchronised (the cow is on screen but silent), so both seed papers
choose the frame: AudioToken §3 (Hyperparameters) by CLIP score for the label, dropping clips
whose image and audio classifiers disagree; Sound2Vision §3.3 by audio-visual correlation. Both
publish their choices, which :class:`AnnotatedFrame` reads.
:mod:`a2i.build.prepare` calls a selector once per clip. Selectors are built from YAML and pickled
into worker processes, so constructors only store (an annotation file's times at most);
:meth:`FrameSelector.setup` moves models.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from a2i.build.annotations import clip_key, read_frame_annotations
from a2i.encoders.image.scorers import CLIPScorer, ImageClassifier
from a2i.errors import A2IError, ConfigError
from a2i.interfaces import AudioEncoder, ImageEncoder, check_embedding_match


class FrameSelectionError(A2IError, ValueError):
    """A clip handed to a selector has no frames or mismatched frames and times."""


@dataclass
class FrameChoice:
    """A selector's verdict on one clip.

    Attributes:
        index: Chosen frame (index into the decoded frames).
        score: The selector's score of that frame (nan when it has none, e.g. mid-frame).
        keep: False when the clip should be dropped from the dataset.
        reason: Why it was dropped (written to the prepare log).
    """

    index: int
    score: float
    keep: bool = True
    reason: str = ""


@dataclass(frozen=True)
class ClipFrames:
    """One clip as a selector sees it (the arguments of :meth:`FrameSelector.select`)."""

    frames: Tensor
    times: Tensor
    audio: Tensor
    sample_rate: int
    label: int
    caption: str
    key: str = ""
    fps: float = math.nan


class FrameSelector(ABC):
    """Chooses a clip's training frame and may veto the clip.

    :meth:`select` checks the clip and loads the models once; a selector writes :meth:`choose`.
    """

    device: torch.device = torch.device("cpu")
    _ready: bool = False

    def setup(self, device: str = "cpu") -> None:
        """Load models onto ``device``, once per preparation worker (nothing to load here)."""
        self.device = torch.device(device)
        self._ready = True

    @torch.no_grad()
    def select(
        self,
        frames: Tensor,
        times: Tensor,
        audio: Tensor,
        sample_rate: int,
        label: int,
        caption: str,
        *,
        key: str = "",
        fps: float = math.nan,
    ) -> FrameChoice:
        """Choose among ``frames`` ``(N, H, W, 3)`` uint8 shown at ``times`` ``(N,)`` seconds.

        Args:
            frames: Decoded RGB frames, upright.
            times: Presentation time of each frame from the clip start.
            audio: The clip's mono waveform ``(T,)``.
            sample_rate: Rate of ``audio`` in Hz.
            label: The clip's class index (-1 when unknown).
            caption: The clip's text (the class name for labelled datasets).
            key: The clip's key (annotation files name clips by it).
            fps: The video's own frame rate (annotations may count frames at it).
        """
        if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3:
            raise FrameSelectionError(
                f"expected (N, H, W, 3) frames with N > 0, got {frames.shape}"
            )
        if times.shape != frames.shape[:1]:
            raise FrameSelectionError(f"{frames.shape[0]} frames but {tuple(times.shape)} times")
        if not self._ready:
            self.setup(str(self.device))
        return self.choose(ClipFrames(frames, times, audio, sample_rate, label, caption, key, fps))

    @abstractmethod
    def choose(self, clip: ClipFrames) -> FrameChoice:
        """The verdict on a checked clip (models already on :attr:`device`)."""


class BatchedSelector(FrameSelector):
    """A selector that embeds a clip's frames (and audio windows) ``batch_size`` at a time."""

    def __init__(self, batch_size: int) -> None:
        if batch_size < 1:
            raise ConfigError(f"{type(self).__name__}.batch_size must be >= 1 (got {batch_size})")
        self.batch_size = batch_size

    def embed(self, embed: Callable, inputs: Tensor) -> Tensor:
        """``embed`` over ``inputs`` in batches on :attr:`device` (uint8 frames become images)."""
        chunks = inputs.split(self.batch_size)
        if inputs.dtype == torch.uint8:
            chunks = [as_images(chunk) for chunk in chunks]
        return torch.cat([embed(chunk.to(self.device)).float() for chunk in chunks])


def as_images(frames: Tensor) -> Tensor:
    """``(N, H, W, 3)`` uint8 → ``(N, 3, H, W)`` float in ``[0, 1]``, the scorers' input."""
    return frames.permute(0, 3, 1, 2).float().div(255.0)


def centred_windows(audio: Tensor, times: Tensor, sample_rate: int, seconds: float) -> Tensor:
    """``(N, L)`` windows of ``seconds`` of ``audio`` centred on each of ``times``.

    At the clip's edges a window is shifted inside the clip rather than zero-padded: measured on
    the tiny world tower, zero-padded edge windows embed far from any sound and often out-score
    the frame that shows the source. Only a clip shorter than the window is zero-padded.
    """
    length = max(1, round(seconds * sample_rate))
    total = audio.shape[-1]
    low, high = min(0, total - length), max(0, total - length)
    centres = (times.double() * sample_rate).round().long()
    starts = (centres - length // 2).clamp(low, high) + length
    padded = F.pad(audio.float(), (length, length))
    return torch.stack([padded[s : s + length] for s in starts.tolist()])


def _check_rate(owner: str, encoder: AudioEncoder, sample_rate: int) -> None:
    if sample_rate != encoder.sample_rate:
        raise ConfigError(
            f"{owner}: audio at {sample_rate} Hz but {type(encoder).__name__} expects "
            f"{encoder.sample_rate} Hz; prepare at sample_rate {encoder.sample_rate}"
        )


def _check_space(field: str, encoder: AudioEncoder, dim: int, other: str) -> None:
    """Audio embeddings are compared with ``other``'s, so they must be pooled and ``dim``-d."""
    if encoder.output == "sequence":
        raise ConfigError(f"{field}: {type(encoder).__name__} gives no pooled embedding")
    check_embedding_match(encoder.embed_dim, dim, field, other)


class MidFrame(FrameSelector):
    """The frame shown at the clip's middle: the usual default (Sound2Vision Table 2 (C))."""

    def choose(self, clip: ClipFrames) -> FrameChoice:
        """The frame closest to half the audio's duration (or the frame times' midpoint)."""
        times, samples = clip.times.double(), clip.audio.shape[-1]
        middle = samples / clip.sample_rate / 2
        if samples == 0:
            middle = float(times.min() + times.max()) / 2
        return FrameChoice(int((times - middle).abs().argmin()), math.nan)


class CLIPBestFrame(BatchedSelector):
    """AudioToken §3 (Hyperparameters): the frame most similar to the label text, filtered.

    The score is the cosine between the frame's CLIP image embedding and the text embedding of
    ``prompt``. With both classifiers the clip is kept only when the image classifier's class on
    the chosen frame equals the audio classifier's class on the ``clip_seconds`` of audio around
    that frame. The audio classifier is either one with a head (``classify(waveform)``, e.g. a
    fine-tuned BEATs) over the image classifier's classes, index for index (counts are checked
    in :meth:`setup`), or a pooled encoder trained into ``scorer``'s space (the tiny world's
    ``tiny/eval/audio_tower.safetensors``) that classifies zero-shot among the image
    classifier's class names put into ``prompt``.

    Args:
        scorer: CLIP towers scoring frame–text similarity (``ViT-B-32``/``openai`` at paper scale).
        prompt: Text scored per clip; ``{caption}`` is replaced by the clip's caption.
        classifier: Image classifier of the disagreement filter.
        audio_classifier: Audio classifier of the disagreement filter (give both or neither).
        batch_size: Frames scored per forward pass.
    """

    def __init__(
        self,
        scorer: CLIPScorer,
        prompt: str = "a photo of {caption}",
        classifier: ImageClassifier | None = None,
        audio_classifier: AudioEncoder | None = None,
        batch_size: int = 32,
    ) -> None:
        name = type(self).__name__
        if "{caption}" not in prompt or "{" in prompt.replace("{caption}", ""):
            raise ConfigError(f"{name}.prompt '{prompt}': use {{caption}} and no other {{field}}")
        if (classifier is None) != (audio_classifier is None):
            raise ConfigError(
                f"{name}.classifier and {name}.audio_classifier: the disagreement filter "
                "compares both; give both or neither"
            )
        super().__init__(batch_size)
        self.scorer = scorer
        self.prompt = prompt
        self.classifier = classifier
        self.audio_classifier = audio_classifier
        self._has_head, self._class_texts = False, None
        self._texts: dict[str, Tensor] = {}

    @torch.no_grad()
    def setup(self, device: str = "cpu") -> None:
        """Move the models to ``device`` and check that the two classifiers share classes."""
        super().setup(device)
        self.scorer.to(self.device).eval()
        self._texts.clear()
        if self.classifier is None or self.audio_classifier is None:
            return
        name, audio = type(self).__name__, self.audio_classifier
        self.classifier.to(self.device).eval()
        audio.to(self.device).eval()
        self._has_head = callable(getattr(audio, "classify", None))
        if self._has_head:
            silence = torch.zeros(1, round(audio.clip_seconds * audio.sample_rate))
            count = int(audio.classify(silence.to(self.device)).shape[-1])
            if count != self.classifier.num_classes:
                raise ConfigError(
                    f"{name}.audio_classifier ({type(audio).__name__}) predicts {count} classes "
                    f"but {name}.classifier predicts {self.classifier.num_classes}; the filter "
                    "compares class indices, so both must classify the same label set"
                )
            return
        _check_space(f"{name}.audio_classifier", audio, self.scorer.embed_dim, f"{name}.scorer")
        names = [self.prompt.format(caption=c) for c in self.classifier.class_names]
        self._class_texts = self.scorer.embed_texts(names).float()

    def choose(self, clip: ClipFrames) -> FrameChoice:
        """Top CLIP score for the prompt; vetoed when the two classifiers disagree."""
        if not clip.caption:
            raise ConfigError(f"{type(self).__name__} needs captions; this clip has none")
        text = self._text(self.prompt.format(caption=clip.caption))
        images = self.embed(self.scorer.embed_images, clip.frames)
        scores = (images @ text).cpu()
        index = int(scores.argmax())
        choice = FrameChoice(index, float(scores[index]))
        if self.classifier is None:
            return choice
        frame = as_images(clip.frames[index : index + 1]).to(self.device)
        seen = int(self.classifier.logits(frame)[0].argmax())
        heard = self._audio_class(clip.audio, clip.times[index : index + 1], clip.sample_rate)
        if seen != heard:
            names = self.classifier.class_names
            choice.keep = False
            choice.reason = (
                f"image classifier sees '{names[seen]}' at {float(clip.times[index]):.2f} s, "
                f"audio classifier hears '{names[heard]}'"
            )
        return choice

    def _audio_class(self, audio: Tensor, time: Tensor, sample_rate: int) -> int:
        """The audio classifier's class for the window around ``time``."""
        encoder = self.audio_classifier
        _check_rate(f"{type(self).__name__}.audio_classifier", encoder, sample_rate)
        window = centred_windows(audio, time, sample_rate, encoder.clip_seconds).to(self.device)
        if self._has_head:
            return int(encoder.classify(window)[0].argmax())
        pooled = F.normalize(encoder(window).pooled.float(), dim=-1)
        return int((pooled @ self._class_texts.T)[0].argmax())

    def _text(self, text: str) -> Tensor:
        """Unit text embedding ``(D,)``, cached per prompt (captions repeat across a dataset)."""
        if text not in self._texts:
            self._texts[text] = self.scorer.embed_texts([text])[0].float()
        return self._texts[text]


class AVCorrelationFrame(BatchedSelector):
    """Sound2Vision §3.3: the frame whose features correlate best with the audio at its time.

    For each frame time t, the ``window_seconds`` of audio centred on t (shifted inside the clip
    at its edges, :func:`centred_windows`) and the frame are embedded, L2-normalised and scored
    by their dot product C_av[t]; the top-1 frame is kept. Windows are not zero-padded to the
    encoder's ``clip_seconds``: a2i audio encoders take any length (fixed-length ones fit it
    themselves), and padding a 1 s window to 4 s wrecks the tiny tower's embedding (measured).
    The paper's per-time features come from Senocak et al.'s (2022) sound-source localisation
    model, which would be plugged in here; a2i ships none. Any audio encoder trained into an
    image encoder's space works instead: in the world, the tiny eval audio tower with the tiny
    CLIP image tower, best with ``window_seconds`` at the tower's 4 s.

    Args:
        audio_encoder: Frozen audio encoder with a pooled output in the image encoder's space.
        image_encoder: Frozen image encoder (an a2i ``ImageEncoder`` or a ``CLIPScorer``).
        window_seconds: Length of the audio window around each frame time.
        batch_size: Windows / frames embedded per forward pass.
    """

    def __init__(
        self,
        audio_encoder: AudioEncoder,
        image_encoder: ImageEncoder | CLIPScorer,
        window_seconds: float = 1.0,
        batch_size: int = 32,
    ) -> None:
        name = type(self).__name__
        if not window_seconds > 0:
            raise ConfigError(f"{name}.window_seconds must be > 0 (got {window_seconds})")
        super().__init__(batch_size)
        self.audio_encoder = audio_encoder
        self.image_encoder = image_encoder
        self.window_seconds = window_seconds

    def setup(self, device: str = "cpu") -> None:
        """Move both encoders to ``device`` and check that they embed into one space."""
        super().setup(device)
        name = type(self).__name__
        field, dim = f"{name}.audio_encoder", self.image_encoder.embed_dim
        _check_space(field, self.audio_encoder, dim, f"{name}.image_encoder")
        self.audio_encoder.to(self.device).eval()
        self.image_encoder.to(self.device).eval()

    def windows(self, audio: Tensor, times: Tensor, sample_rate: int) -> Tensor:
        """``(N, L)`` audio windows centred on each frame time, checked against the encoder."""
        _check_rate(f"{type(self).__name__}.audio_encoder", self.audio_encoder, sample_rate)
        return centred_windows(audio, times, sample_rate, self.window_seconds)

    def choose(self, clip: ClipFrames) -> FrameChoice:
        """Top-1 of C_av[t] = q_t^V · q_t^A."""
        windows = self.windows(clip.audio, clip.times, clip.sample_rate)
        audio_z = self.embed(lambda x: self.audio_encoder(x).pooled, windows)
        image_z = self.embed(self.image_encoder, clip.frames)
        correlation = (F.normalize(image_z, dim=-1) * F.normalize(audio_z, dim=-1)).sum(-1).cpu()
        index = int(correlation.argmax())
        return FrameChoice(index, float(correlation[index]))


def best_annotated(value: Any) -> Any:
    """The first entry of nested lists: the published files list candidates best first."""
    while isinstance(value, list):
        value = value[0]
    return value


class AnnotatedFrame(FrameSelector):
    """The frame a published annotation file names for each clip (Sound2Vision Table 2 (A)).

    The file (JSON object or ``key,value`` CSV; :mod:`a2i.build.annotations`) maps clip names to
    a time or a frame number, or to a list of them best first, of which the first is used:
    Sound2Scene's ``top1_boxes_top10_moments.json`` (frame numbers at 10 fps: ``unit: frame``,
    ``frame_rate: 10``, ``match: vggsound_ms``) and AudioToken's ``best_frames.json`` (frame
    numbers at the video's own rate, read by OpenCV from 0: ``frame_rate: null``). The decoded
    frame nearest to that time is chosen, so decode at the annotation's rate (the datamodule's
    ``frame_rate``) to get the annotated frame itself.

    Args:
        path: The annotation file (read once here; a missing file stops the config).
        match: How the file names clips (``key`` or ``vggsound_ms``, see ``KeyStyle``).
        unit: ``seconds`` from the clip start, or ``frame`` numbers.
        frame_rate: Rate of the frame numbers; None = the video's own frame rate.
        first_frame: The number of the clip's first frame (0 or 1).
        missing: ``drop`` clips the file does not name, or fall back to the ``mid`` frame.
        source: Where the file is published (shown when it is missing).
    """

    def __init__(
        self,
        path: str,
        match: Literal["key", "vggsound_ms"] = "key",
        unit: Literal["seconds", "frame"] = "seconds",
        frame_rate: float | None = None,
        first_frame: int = 0,
        missing: Literal["drop", "mid"] = "drop",
        source: str = "",
    ) -> None:
        name = type(self).__name__
        if frame_rate is not None and not frame_rate > 0:
            raise ConfigError(f"{name}.frame_rate must be > 0 or null (got {frame_rate})")
        field = "data.frame_selector.path"
        hint = f"download it from {source}" if source else "check the path"
        named = read_frame_annotations(path, field, best_annotated, hint)
        self.annotations = {clip_key(k, match): v for k, v in named.items()}
        self.path, self.unit, self.frame_rate = path, unit, frame_rate
        self.first_frame, self.missing = first_frame, missing

    def choose(self, clip: ClipFrames) -> FrameChoice:
        """The decoded frame nearest to the annotated time; unlisted clips per ``missing``."""
        if clip.key not in self.annotations:
            if self.missing == "mid":
                return MidFrame().choose(clip)
            return FrameChoice(0, math.nan, keep=False, reason=f"not in {self.path}")
        value = self.annotations[clip.key]
        if self.unit == "frame":
            rate = self.frame_rate or clip.fps
            if not rate > 0:
                raise FrameSelectionError(f"{clip.key}: frame numbers need the video's frame rate")
            value = (value - self.first_frame) / rate
        times = clip.times.double()
        index = int((times - value).abs().argmin())
        end = max(float(times.max()), clip.audio.shape[-1] / clip.sample_rate)
        if not 0 <= value <= end:
            reason = f"annotated time {value:.2f} s is outside the clip (0-{end:.2f} s)"
            return FrameChoice(index, math.nan, keep=False, reason=reason)
        return FrameChoice(index, math.nan)
