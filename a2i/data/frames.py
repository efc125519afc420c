"""Which frame of a clip becomes its training image.

In-the-wild video is loosely synchronised: the cow is on screen but silent, the dog barks off
screen. Both seed papers therefore choose the frame rather than take the middle one:
AudioToken §3 takes the frame with the highest CLIP score for the label and drops clips whose
classifiers disagree; Sound2Vision §3.3 takes the frame whose visual features correlate best
with the audio at the same moment (top-1). The selectors below implement both behind one
interface; dataset preparation (:mod:`a2i.data.prepare`) calls them once per clip on frames
decoded at ``frame_rate``. They are built from YAML and pickled into worker processes, so
models load in :meth:`FrameSelector.setup`, not in the constructor.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from a2i.errors import ConfigError
from a2i.interfaces import AudioEncoder, ImageEncoder
from a2i.metrics.backbones import CLIPScorer, ImageClassifier
from a2i.metrics.retrieval import class_agreement_matrix


@dataclass
class FrameChoice:
    """A selector's verdict on one clip.

    Attributes:
        index: Chosen frame (index into the decoded frames).
        score: The selector's score of that frame (nan when it has none).
        keep: False when the clip should be dropped from the dataset.
        reason: Why it was dropped (written to ``problems.log``).
    """

    index: int
    score: float = math.nan
    keep: bool = True
    reason: str = ""


class FrameSelector(ABC):
    """Chooses a clip's training frame and may veto the clip."""

    device: torch.device = torch.device("cpu")

    def setup(self, device: str = "cpu") -> None:
        """Load models onto ``device`` (once per preparation worker)."""
        self.device = torch.device(device)

    @abstractmethod
    def select(
        self,
        frames: Tensor,
        times: Tensor,
        audio: Tensor,
        sample_rate: int,
        label: int,
        caption: str,
    ) -> FrameChoice:
        """Choose among ``frames`` ``(N, H, W, 3)`` uint8 shown at ``times`` ``(N,)`` seconds.

        Args:
            frames: Decoded frames, upright.
            times: Presentation time of each frame from the clip start.
            audio: The clip's mono waveform ``(T,)``.
            sample_rate: Rate of ``audio``.
            label: The clip's class index (-1 when unknown).
            caption: The clip's text (the class name for labelled datasets).
        """


def as_images(frames: Tensor) -> Tensor:
    """``(N, H, W, 3)`` uint8 → ``(N, 3, H, W)`` float in ``[0, 1]``."""
    return frames.permute(0, 3, 1, 2).float().div(255.0)


class MidFrame(FrameSelector):
    """The frame shown at the middle of the clip (the usual default, Sound2Vision Table 2 (C))."""

    def select(
        self,
        frames: Tensor,
        times: Tensor,
        audio: Tensor,
        sample_rate: int,
        label: int,
        caption: str,
    ) -> FrameChoice:
        """The frame whose time is closest to the midpoint of the clip's audio."""
        middle = audio.shape[-1] / sample_rate / 2
        return FrameChoice(int((times.double() - middle).abs().argmin()))


class CLIPBestFrame(FrameSelector):
    """AudioToken §3: the frame most similar to the label text, optionally filtered.

    With an ``image_classifier`` the clip is kept only when the classifier's prediction on the
    chosen frame agrees with the clip's label, by name or by CLIP text similarity above
    ``agreement_threshold`` (the AIC rule of AudioToken §4). The paper compares an image and an
    audio classifier; a2i ships no audio classifier with class names and uses the clip's
    annotated label in its place (VGGSound's labels were themselves checked by an audio
    classifier and annotators).

    Args:
        scorer: CLIP towers scoring frame–text similarity (``ViT-B-32``/``openai`` at paper scale).
        prompt: Text scored per clip; ``{caption}`` is replaced by the clip's caption.
        image_classifier: Optional classifier for the disagreement filter.
        agreement_threshold: CLIP text cosine above which two class names agree.
        batch_size: Frames scored per forward pass.
    """

    def __init__(
        self,
        scorer: CLIPScorer,
        prompt: str = "a photo of {caption}",
        image_classifier: ImageClassifier | None = None,
        agreement_threshold: float = 0.75,
        batch_size: int = 32,
    ) -> None:
        self.scorer = scorer
        self.prompt = prompt
        self.image_classifier = image_classifier
        self.agreement_threshold = agreement_threshold
        self.batch_size = batch_size
        self._agreement: dict[str, Tensor] = {}

    def setup(self, device: str = "cpu") -> None:
        """Move the CLIP towers (and the classifier) to ``device``."""
        super().setup(device)
        self.scorer.to(self.device)
        if self.image_classifier is not None:
            self.image_classifier.to(self.device)

    @torch.no_grad()
    def select(
        self,
        frames: Tensor,
        times: Tensor,
        audio: Tensor,
        sample_rate: int,
        label: int,
        caption: str,
    ) -> FrameChoice:
        """Top CLIP score for the prompt; vetoed when the classifier disagrees with the label."""
        text = self.scorer.embed_texts([self.prompt.format(caption=caption)])
        scores = torch.cat(
            [
                self.scorer.embed_images(as_images(chunk).to(self.device)) @ text.T
                for chunk in frames.split(self.batch_size)
            ]
        ).squeeze(1)
        index = int(scores.argmax())
        choice = FrameChoice(index, float(scores[index]))
        if self.image_classifier is None or not caption:
            return choice
        logits = self.image_classifier.logits(as_images(frames[index : index + 1]).to(self.device))
        predicted = int(logits.argmax())
        if not bool(self._agrees(caption)[predicted]):
            name = self.image_classifier.class_names[predicted]
            choice.keep = False
            choice.reason = f"image classifier sees '{name}', the label is '{caption}'"
        return choice

    def _agrees(self, caption: str) -> Tensor:
        """Which classifier classes agree with ``caption`` (cached per caption)."""
        if caption not in self._agreement:
            matrix = class_agreement_matrix(
                self.image_classifier.class_names,
                [caption],
                self.scorer.embed_texts,
                self.agreement_threshold,
            )
            self._agreement[caption] = matrix[:, 0]
        return self._agreement[caption]


class AVCorrelationFrame(FrameSelector):
    """Sound2Vision §3.3: the frame whose features correlate best with the audio at its time.

    For each frame time t, the audio window of the encoder's length centred on t (zero-padded
    at the clip's edges) and the frame are embedded, L2-normalised, and scored by their dot
    product C_av[t]; the top-1 frame is kept. The paper obtains the per-time features from the
    sound-source localisation model of Senocak et al. (2022), which a2i does not ship; any
    audio encoder trained into an image encoder's space plugs in here (in the synthetic world:
    the evaluation's tiny audio tower with the tiny CLIP image tower).

    Args:
        audio_encoder: Frozen audio encoder with a pooled output in the image space.
        image_encoder: Frozen image encoder (an a2i ``ImageEncoder`` or a ``CLIPScorer``).
        batch_size: Windows / frames embedded per forward pass.
    """

    def __init__(
        self,
        audio_encoder: AudioEncoder,
        image_encoder: ImageEncoder | CLIPScorer,
        batch_size: int = 32,
    ) -> None:
        self.audio_encoder = audio_encoder
        self.image_encoder = image_encoder
        self.batch_size = batch_size

    def setup(self, device: str = "cpu") -> None:
        """Move both encoders to ``device`` in eval mode."""
        super().setup(device)
        self.audio_encoder.to(self.device).eval()
        self.image_encoder.to(self.device).eval()

    def windows(self, audio: Tensor, times: Tensor, sample_rate: int) -> Tensor:
        """``(N, L)`` audio windows of the encoder's length centred on each frame time."""
        if sample_rate != self.audio_encoder.sample_rate:
            raise ConfigError(
                f"audio at {sample_rate} Hz but {type(self.audio_encoder).__name__} expects "
                f"{self.audio_encoder.sample_rate} Hz; prepare at that sample_rate"
            )
        length = round(self.audio_encoder.clip_seconds * sample_rate)
        padded = F.pad(audio, (length // 2, length - length // 2))
        starts = (times.double() * sample_rate).round().long().clamp(0, audio.shape[-1])
        return torch.stack([padded[s : s + length] for s in starts.tolist()])

    @torch.no_grad()
    def select(
        self,
        frames: Tensor,
        times: Tensor,
        audio: Tensor,
        sample_rate: int,
        label: int,
        caption: str,
    ) -> FrameChoice:
        """Top-1 of C_av[t] = q_t^V · q_t^A."""
        windows = self.windows(audio, times, sample_rate)
        audio_z = torch.cat(
            [
                self.audio_encoder(chunk.to(self.device)).pooled
                for chunk in windows.split(self.batch_size)
            ]
        )
        image_z = torch.cat(
            [
                self.image_encoder(as_images(chunk).to(self.device))
                for chunk in frames.split(self.batch_size)
            ]
        )
        correlation = (
            F.normalize(image_z.float(), dim=-1) * F.normalize(audio_z.float(), dim=-1)
        ).sum(-1)
        index = int(correlation.argmax())
        return FrameChoice(index, float(correlation[index]))
