"""BriVL's cross-modal MoCo (WavBriVL §2.4), and the plain in-batch InfoNCE to compare with.

BriVL adapts MoCo (He et al. 2020) to two modalities: each has a momentum ("key") encoder, an
exponential moving average of its trained ("query") encoder, and a queue of that key encoder's
recent outputs; a query is scored against the other modality's key of its own pair (the positive)
and against that modality's whole queue (the negatives), so the number of negatives — the queue
size, 9600 — no longer depends on the batch size (§2.4). After each step the batch's keys, gathered
from every process, replace the oldest queue entries, so every rank holds the same queues.

WavBriVL freezes the image tower (§2), so the image key *is* the frozen image embedding (an EMA of
a frozen encoder never moves) and only the audio tower has a momentum copy. BriVL's second term —
image query against the momentum text key — would then carry no gradient at all; a2i scores the
image against the *trained* audio embedding instead (the positive), keeping the momentum audio keys
as negatives, so both directions of "CXLoss = L(f(Image), Audio) + L(Image, g(Audio))" (§2.4)
train the audio tower. The two terms are summed, as BriVL's ``loss = t2i_loss + i2t_loss``
(BAAI-WuDao/BriVL ``models/vl_model.py``). No library has cross-modal MoCo queues; the
all-gather is torchmetrics' (any batch size per rank).
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.utilities.distributed import gather_all_tensors

from a2i.errors import ConfigError
from a2i.losses.alignment import similarity_logits, symmetric_infonce


def momentum_copy(module: nn.Module) -> nn.Module:
    """A key encoder: a copy of ``module`` that takes no gradients.

    Tensors that do not train (a frozen backbone inside the tower) are shared, not copied: their
    moving average would equal them forever, and a frozen WavLM would otherwise be held twice.
    """
    shared = {id(t): t for t in (*module.parameters(), *module.buffers()) if not t.requires_grad}
    copied = copy.deepcopy(module, memo=shared)
    return copied.requires_grad_(False)


@torch.no_grad()
def momentum_update(online: nn.Module, key: nn.Module, momentum: float) -> None:
    """``θ_k ← m·θ_k + (1 − m)·θ_q`` for every parameter (MoCo eq. 2; BriVL's m = 0.99)."""
    for query_param, key_param in zip(online.parameters(), key.parameters(), strict=True):
        if key_param is not query_param:
            key_param.mul_(momentum).add_(query_param.detach(), alpha=1.0 - momentum)


def gather_from_all_ranks(tensor: Tensor) -> Tensor:
    """Rows of every process's ``tensor``, in rank order (the same on every rank); local alone."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    return torch.cat(gather_all_tensors(tensor.contiguous()))


class KeyQueue(nn.Module):
    """A ring buffer of the last ``size`` unit-norm keys (BriVL's ``img_queue``/``text_queue``).

    The keys and the write position are buffers, so checkpoints keep them and a resumed run goes
    on with the same negatives. It starts with random unit vectors, as MoCo and BriVL do.

    Args:
        size: Number of keys held (BriVL, WavBriVL §2.4: 9600).
        dim: Key size.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1:
            raise ConfigError(f"the MoCo queue needs a size >= 1 (got {size})")
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=-1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        """How many keys the queue holds."""
        return self.keys.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Replace the oldest entries by ``keys`` ``(B, dim)`` gathered from every rank."""
        keys = gather_from_all_ranks(keys.detach())[-self.size :]
        slots = (self.pointer + torch.arange(len(keys), device=self.keys.device)) % self.size
        self.keys[slots] = keys.to(self.keys.dtype)
        self.pointer.copy_((self.pointer + len(keys)) % self.size)


def moco_term(query: Tensor, positive: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """Mean over rows of ``−log softmax([q·k⁺, q·Q]/τ)[0]``, all vectors unit-norm (MoCo eq. 1)."""
    positive_logit = (query * positive).sum(dim=-1, keepdim=True)
    # a copy: the queue is overwritten in place (enqueue) before this step's backward pass
    negative_logits = query @ queue.detach().clone().T
    logits = torch.cat([positive_logit, negative_logits], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(query), dtype=torch.long, device=query.device))


class CrossModalMoCo(nn.Module):
    """BriVL's cross-modal contrastive loss with an audio queue and an image queue (§2.4).

    Args:
        dim: Size of the shared embedding.
        queue_size: Keys per queue (§2.4: 9600).
        temperature: τ of the softmax (§2.4: 0.07).
        symmetric: Add the image→audio term (module docstring); False keeps audio→image only.
    """

    def __init__(
        self, dim: int, queue_size: int = 9600, temperature: float = 0.07, symmetric: bool = True
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"MoCo temperature must be > 0 (got {temperature})")
        self.temperature = temperature
        self.symmetric = symmetric
        self.audio_queue = KeyQueue(queue_size, dim)
        self.image_queue = KeyQueue(queue_size, dim)

    def forward(self, audio: Tensor, image: Tensor) -> dict[str, Tensor]:
        """Losses for paired rows of trained audio embeddings and frozen image embeddings.

        Returns ``audio_to_image`` (audio vs. its image and the image queue), ``image_to_audio``
        (image vs. its audio and the audio queue of momentum keys; 0 when not ``symmetric``) and
        their sum ``loss``. Inputs need not be unit-norm. The momentum keys enter through
        :meth:`enqueue` only (module docstring).
        """
        audio_query = F.normalize(audio, dim=-1)
        image = F.normalize(image, dim=-1)
        losses = {
            "audio_to_image": moco_term(audio_query, image, self.image_queue.keys, self.temperature)
        }
        losses["image_to_audio"] = (
            moco_term(image, audio_query, self.audio_queue.keys, self.temperature)
            if self.symmetric
            else torch.zeros((), device=image.device)
        )
        losses["loss"] = losses["audio_to_image"] + losses["image_to_audio"]
        return losses

    @torch.no_grad()
    def enqueue(self, audio_key: Tensor, image: Tensor) -> None:
        """Push this step's momentum audio keys and image embeddings (after the loss, as MoCo)."""
        self.audio_queue.enqueue(F.normalize(audio_key.float(), dim=-1))
        self.image_queue.enqueue(F.normalize(image.float(), dim=-1))


def in_batch_infonce(audio: Tensor, image: Tensor, temperature: float = 0.07) -> Tensor:
    """Symmetric InfoNCE over the batch with cosine similarity (Wav2CLIP-style, CLIP's loss).

    Each audio against every image of the batch and vice versa, mean of the two directions
    (:func:`~a2i.losses.alignment.symmetric_infonce`); no queues, no momentum encoder.
    """
    return symmetric_infonce(similarity_logits(audio, image, "cosine", temperature))
