"""BEATs audio encoder (Chen et al. 2022), built so the published ``.pt`` checkpoints load into it.

AudioToken §2.1 encodes audio with BEATs, an audio classifier: the fine-tuned iter3+ AS2M model
(``BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt``), frozen. Its embedder reads the hidden
states of layers 4, 8 and 12 (of 12) concatenated per token, because the last layer alone keeps
mostly what AudioSet classification needs; §3 trains on random 5 s crops, which BEATs turns into
248 tokens. transformers has no BEATs, so this module implements the architecture with the
upstream module names (``microsoft/unilm``, ``beats/``), which are the checkpoint's state-dict
keys:

- front end: Kaldi fbank (128 mel bins, 25 ms / 10 ms, Povey window, no dither) of the
  waveform scaled to 16-bit range, standardised as ``(fbank - 15.41663) / (2 · 6.55582)``;
- ``patch_embedding``: 16×16 non-overlapping patches of the (time, mel) image → 512-d, then
  ``layer_norm`` and ``post_extract_proj`` (512 → 768). Tokens run time-major: 8 mel patches
  per 160 ms, so 5 s = 498 frames → 31 × 8 = 248 tokens;
- ``encoder``: a wav2vec2-style Transformer: convolutional position embedding (``pos_conv``,
  kernel 128, 16 groups, weight-normalised, stored as ``weight_g`` / ``weight_v``) added to the
  input, then 12 post-LN layers with DeepNorm residual scaling ``(2·layers)^¼`` and a T5-style
  bucketed relative position bias (320 buckets, max distance 800) that layer 0 owns and every
  layer gates with its own query (``grep_linear``, ``grep_a``);
- ``predictor``: the fine-tuned AudioSet head (527 classes), applied per token and averaged.

Training-only fields of the published ``cfg`` are not used: ``encoder_layerdrop`` (dropping
layers would change which hidden state ``hidden_layers`` reads) and
``layer_wise_gradient_decay_ratio`` (a gradient scale, identity in the forward pass). Every
clip of a batch has one length (short ones zero-padded to ``clip_seconds``), so no padding mask
is needed.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchaudio.compliance import kaldi

from a2i.encoders.audio.layers import check_hidden_layers
from a2i.errors import A2IError, ConfigError
from a2i.interfaces import AudioEncoder, AudioEncoderOutput
from a2i.pretrained import Weights, resolve_weights

SAMPLE_RATE = 16000
NUM_MEL_BINS = 128
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
FBANK_MEAN = 15.41663
FBANK_STD = 6.55582
"""AudioSet fbank statistics of the BEATs reference code (``BEATs.preprocess``)."""

PUBLISHED_CHECKPOINT = "BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt"
DOWNLOAD_HINT = (
    f"download '{PUBLISHED_CHECKPOINT}' (AudioToken's encoder: row 'Iter3+ AS2M', column "
    "'Fine-tuned BEATs_iter3+ (AS2M) (cpt2)') from the table in "
    "https://github.com/microsoft/unilm/blob/master/beats/README.md into $A2I_CACHE"
)

_ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x.float()).type_as(x),
    "gelu_accurate": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


class CheckpointFormatError(A2IError, ValueError):
    """A checkpoint file exists but is not a safe, well-formed BEATs checkpoint."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        super().__init__(f"cannot load BEATs checkpoint '{self.path}': {reason}")


@dataclass(frozen=True)
class BEATsConfig:
    """Architecture of a BEATs model; field names are those of the checkpoint's ``cfg`` dict.

    Defaults are the ``cfg`` of the fine-tuned iter3+ AS2M checkpoint (AudioToken's encoder).
    """

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_first: bool = False
    deep_norm: bool = True
    dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    dropout_input: float = 0.0
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = True
    num_buckets: int = 320
    max_distance: int = 800
    gru_rel_pos: bool = True
    finetuned_model: bool = True
    predictor_dropout: float = 0.0
    predictor_class: int = 527

    @classmethod
    def from_dict(cls, cfg: Mapping[str, object]) -> BEATsConfig:
        """Build from a checkpoint ``cfg``; keys this implementation does not use are ignored."""
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in cfg.items() if key in known}).checked()

    def checked(self) -> BEATsConfig:
        """Return self, or raise a :class:`ConfigError` naming the inconsistent fields."""
        problems = []
        if self.encoder_embed_dim % self.encoder_attention_heads:
            problems.append("encoder_embed_dim must be divisible by encoder_attention_heads")
        if self.encoder_embed_dim % self.conv_pos_groups:
            problems.append("encoder_embed_dim must be divisible by conv_pos_groups")
        if self.activation_fn not in _ACTIVATIONS:
            problems.append(f"activation_fn must be one of {sorted(_ACTIVATIONS)}")
        if self.deep_norm and self.layer_norm_first:
            problems.append("deep_norm needs post-LN layers (layer_norm_first false)")
        if self.input_patch_size > NUM_MEL_BINS:
            problems.append(f"input_patch_size must be <= {NUM_MEL_BINS} mel bins")
        if problems:
            raise ConfigError(f"BEATs config {asdict(self)}: " + "; ".join(problems))
        return self


BEATS_PRESETS: dict[str, BEATsConfig] = {
    "paper": BEATsConfig(),
    "tiny": BEATsConfig(
        embed_dim=32,
        encoder_embed_dim=64,
        encoder_ffn_embed_dim=128,
        encoder_attention_heads=4,
        conv_pos=16,
        conv_pos_groups=4,
        num_buckets=64,
        max_distance=256,
    ),
}
"""``paper``: iter3+ AS2M fine-tuned (90,717,055 parameters, 12 × 768). ``tiny``: the same
front end and 16×16 patching (so the same 248 tokens per 5 s) and 12 layers (so AudioToken's
layers 4, 8, 12 exist), 64 wide: ~0.45 M parameters, for CPU training in the synthetic world."""


class BEATsFbank(nn.Module):
    """BEATs' front end: waveform ``(B, T)`` in ``[-1, 1]`` → standardised fbank ``(B, frames, 128)``.

    Kaldi fbank (torchaudio's port) with its defaults (Povey window, no dither, snip edges) on the
    waveform scaled by 2^15, the 16-bit range Kaldi features are computed on.
    """

    def forward(self, waveform: Tensor) -> Tensor:
        """One fbank per clip (torchaudio's Kaldi fbank reads a single channel)."""
        banks = [
            kaldi.fbank(
                clip[None].float() * 2**15,
                num_mel_bins=NUM_MEL_BINS,
                sample_frequency=SAMPLE_RATE,
                frame_length=FRAME_LENGTH_MS,
                frame_shift=FRAME_SHIFT_MS,
            )
            for clip in waveform
        ]
        return (torch.stack(banks) - FBANK_MEAN) / (2 * FBANK_STD)

    @staticmethod
    def num_frames(num_samples: int) -> int:
        """Frames Kaldi yields for ``num_samples`` (whole 25 ms windows every 10 ms)."""
        window = int(SAMPLE_RATE * FRAME_LENGTH_MS / 1000)
        shift = int(SAMPLE_RATE * FRAME_SHIFT_MS / 1000)
        return 0 if num_samples < window else 1 + (num_samples - window) // shift


class WeightNormConv1d(nn.Module):
    """Grouped ``Conv1d`` with weight normalisation over the kernel axis (``dim=2``).

    Upstream wraps a Conv1d in ``nn.utils.weight_norm`` (deprecated; its replacement renames the
    stored tensors), so the checkpoint holds ``weight_g`` ``(1, 1, K)`` and ``weight_v``; the
    weight is ``weight_v · weight_g / ‖weight_v‖`` with the norm over all but the last axis.
    """

    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        self.groups = groups
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel_size))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel_size))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, T)`` → ``(B, C, T + 1 - K % 2)`` (padding ``K // 2`` on both sides)."""
        weight = self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))
        padding = self.weight_v.shape[-1] // 2
        return F.conv1d(x, weight, self.bias, padding=padding, groups=self.groups)


def relative_position_buckets(
    length: int, num_buckets: int, max_distance: int, device: torch.device | None = None
) -> Tensor:
    """T5-style bidirectional buckets of ``key - query`` offsets, ``(length, length)`` int64.

    Half the buckets per direction; offsets below a quarter of ``num_buckets`` get their own
    bucket, larger ones share log-spaced buckets up to ``max_distance`` (beyond: the last one).
    """
    positions = torch.arange(length, device=device)
    offset = positions[None, :] - positions[:, None]
    per_side = num_buckets // 2
    exact = per_side // 2
    distance = offset.abs()
    log_scaled = torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    far = (exact + (log_scaled * (per_side - exact)).long()).clamp(max=per_side - 1)
    return (offset > 0).long() * per_side + torch.where(distance < exact, distance, far)


class GatedRelativeAttention(nn.Module):
    """Multi-head self-attention with BEATs' gated relative position bias.

    Layer 0 owns the bias table (``relative_attention_bias``, one value per bucket and head) and
    the encoder passes the resulting ``(H, L, L)`` bias to every layer; each layer scales it per
    query and head by a gate computed from its projected queries (``grep_linear`` / ``grep_a``,
    the "gated relative position bias" of WavLM), then adds it to the attention logits.
    """

    def __init__(self, config: BEATsConfig, owns_bias_table: bool) -> None:
        super().__init__()
        width, heads = config.encoder_embed_dim, config.encoder_attention_heads
        self.num_heads = heads
        self.dropout = config.attention_dropout
        self.config = config
        if owns_bias_table and config.relative_position_embedding:
            self.relative_attention_bias = nn.Embedding(config.num_buckets, heads)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.q_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)
        if config.gru_rel_pos:
            self.grep_linear = nn.Linear(width // heads, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def position_bias(self, length: int) -> Tensor:
        """The shared, ungated bias ``(H, length, length)`` (layer 0 only)."""
        table = self.relative_attention_bias.weight
        buckets = relative_position_buckets(
            length, self.config.num_buckets, self.config.max_distance, device=table.device
        )
        return F.embedding(buckets, table).permute(2, 0, 1)

    def forward(self, x: Tensor, position_bias: Tensor | None) -> Tensor:
        """``(B, L, C)`` → ``(B, L, C)``."""
        batch, length, width = x.shape

        def heads(projected: Tensor) -> Tensor:
            return projected.view(batch, length, self.num_heads, -1).transpose(1, 2)

        query, key, value = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        bias = None
        if position_bias is not None:
            bias = position_bias[None]
            if self.config.gru_rel_pos:
                gates = self.grep_linear(query).view(batch, self.num_heads, length, 2, 4)
                gate_a, gate_b = torch.sigmoid(gates.sum(-1)).chunk(2, dim=-1)
                bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * bias
            bias = bias.to(query.dtype)
        attended = F.scaled_dot_product_attention(
            query, key, value, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(attended.transpose(1, 2).reshape(batch, length, width))


class EncoderLayer(nn.Module):
    """Transformer layer: post-LN with DeepNorm (``x·α + f(x)``, α = (2·layers)^¼), or pre-LN."""

    def __init__(self, config: BEATsConfig, owns_bias_table: bool) -> None:
        super().__init__()
        width = config.encoder_embed_dim
        self.layer_norm_first = config.layer_norm_first
        self.residual_scale = (2 * config.encoder_layers) ** 0.25 if config.deep_norm else 1.0
        self.activation = _ACTIVATIONS[config.activation_fn]
        self.self_attn = GatedRelativeAttention(config, owns_bias_table)
        self.self_attn_layer_norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, config.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_embed_dim, width)
        self.final_layer_norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(config.dropout)
        self.activation_dropout = nn.Dropout(config.activation_dropout)

    def _feed_forward(self, x: Tensor) -> Tensor:
        hidden = self.activation_dropout(self.activation(self.fc1(x)))
        return self.dropout(self.fc2(hidden))

    def forward(self, x: Tensor, position_bias: Tensor | None) -> Tensor:
        """``(B, L, C)`` → ``(B, L, C)``."""
        if self.layer_norm_first:
            x = x + self.dropout(self.self_attn(self.self_attn_layer_norm(x), position_bias))
            return x + self._feed_forward(self.final_layer_norm(x))
        x = x * self.residual_scale + self.dropout(self.self_attn(x, position_bias))
        x = self.self_attn_layer_norm(x)
        return self.final_layer_norm(x * self.residual_scale + self._feed_forward(x))


class BEATsTransformer(nn.Module):
    """Convolutional position embedding + layer stack (upstream ``TransformerEncoder``)."""

    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        width = config.encoder_embed_dim
        self.config = config
        self.pos_conv = nn.Sequential(
            WeightNormConv1d(width, config.conv_pos, config.conv_pos_groups)
        )
        self.layers = nn.ModuleList(
            EncoderLayer(config, owns_bias_table=index == 0)
            for index in range(config.encoder_layers)
        )
        self.layer_norm = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """``(B, L, C)`` → (output of every layer, final representation)."""
        positional = self.pos_conv(x.transpose(1, 2))[..., : x.shape[1]]  # "same" for even K
        x = x + F.gelu(positional).transpose(1, 2)
        if not self.config.layer_norm_first:
            x = self.layer_norm(x)
        x = F.dropout(x, self.config.dropout, self.training)
        bias = None
        if self.config.relative_position_embedding:
            bias = self.layers[0].self_attn.position_bias(x.shape[1])
        hidden_states = []
        for layer in self.layers:
            x = layer(x, bias)
            hidden_states.append(x)
        return hidden_states, self.layer_norm(x) if self.config.layer_norm_first else x


class BEATsModel(nn.Module):
    """The BEATs network on fbank input; its state dict is the published checkpoint's ``model``.

    Upstream ties one position-bias table into every layer, so its state dict repeats it under
    ``encoder.layers.{i}.self_attn.relative_attention_bias.weight`` for each layer; here only
    layer 0 holds it (no shared tensors in a2i's safetensors files), and
    :func:`load_published_checkpoint` drops the copies after checking they are identical.
    """

    def __init__(self, config: BEATsConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embedding = nn.Conv2d(
            1,
            config.embed_dim,
            kernel_size=config.input_patch_size,
            stride=config.input_patch_size,
            bias=config.conv_bias,
        )
        self.layer_norm = nn.LayerNorm(config.embed_dim)
        self.post_extract_proj = (
            nn.Linear(config.embed_dim, config.encoder_embed_dim)
            if config.embed_dim != config.encoder_embed_dim
            else None
        )
        self.dropout_input = nn.Dropout(config.dropout_input)
        self.encoder = BEATsTransformer(config)
        if config.finetuned_model:
            self.predictor_dropout = nn.Dropout(config.predictor_dropout)
            self.predictor = nn.Linear(config.encoder_embed_dim, config.predictor_class)
        self._init_weights()

    def forward(self, fbank: Tensor) -> tuple[list[Tensor], Tensor]:
        """Fbank ``(B, frames, 128)`` → (every layer's ``(B, N, C)`` output, final output).

        Patches are flattened time-major: token ``t · P + f`` is time patch ``t``, mel patch
        ``f`` of ``P = 128 / input_patch_size``.
        """
        patches = self.patch_embedding(fbank.unsqueeze(1)).flatten(2).transpose(1, 2)
        features = self.layer_norm(patches)
        if self.post_extract_proj is not None:
            features = self.post_extract_proj(features)
        return self.encoder(self.dropout_input(features))

    def _init_weights(self) -> None:
        """Upstream's initialisation, so random-weight presets train as the original does.

        BERT init (normal 0.02) for the encoder's linear and embedding weights; DeepNorm's
        Xavier init with gain β = (8·layers)^-¼ on the value, output and feed-forward
        projections; the position convolution normal with std √(4 / (K · C)) and its norm
        ``weight_g`` set to ‖weight_v‖ (so the initial weight is ``weight_v``).
        """
        for module in self.encoder.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        config = self.config
        if config.deep_norm:
            beta = (8 * config.encoder_layers) ** -0.25
            for layer in self.encoder.layers:
                attention = layer.self_attn
                for linear in (attention.k_proj, attention.q_proj):
                    nn.init.xavier_normal_(linear.weight)
                for linear in (attention.v_proj, attention.out_proj, layer.fc1, layer.fc2):
                    nn.init.xavier_normal_(linear.weight, gain=beta)
        conv = self.encoder.pos_conv[0]
        nn.init.normal_(
            conv.weight_v, std=math.sqrt(4 / (config.conv_pos * config.encoder_embed_dim))
        )
        with torch.no_grad():
            conv.weight_g.copy_(conv.weight_v.norm(dim=(0, 1), keepdim=True))


def load_published_checkpoint(
    weights: Weights,
) -> tuple[BEATsConfig, dict[str, Tensor], dict | None]:
    """Read a published BEATs ``.pt`` safely: ``(config, model state dict, label_dict)``.

    The file is a ``torch.save`` of ``{"cfg": dict, "model": state dict[, "label_dict": dict]}``
    (see ``beats/README.md`` of microsoft/unilm). It is opened with ``weights_only=True``, which
    admits tensors and plain containers only: the published files need nothing more (their
    ``cfg`` is a plain dict), and a file that does is refused rather than allowed to run code.

    Raises:
        CheckpointNotFoundError: No such file.
        CheckpointFormatError: Not a torch file, unsafe objects inside, or not the BEATs layout.
    """
    local = weights.local_file(library="a2i BEATs loader (torch.load)", download=DOWNLOAD_HINT)
    try:
        checkpoint = torch.load(local, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointFormatError(
            local,
            "it holds objects other than tensors and plain containers, and a2i opens .pt files "
            "with torch.load(weights_only=True), never running pickled code (refused: "
            f"{str(error).strip().splitlines()[-1][:200]})",
        ) from error
    except (RuntimeError, EOFError) as error:
        raise CheckpointFormatError(local, f"not a readable torch file ({error})") from error
    if not (
        isinstance(checkpoint, dict)
        and isinstance(checkpoint.get("cfg"), dict)
        and isinstance(checkpoint.get("model"), dict)
    ):
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointFormatError(
            local, f"expected a dict with 'cfg' and 'model' (the published layout), found {found}"
        )
    state = _drop_tied_bias_copies(dict(checkpoint["model"]), local)
    labels = checkpoint.get("label_dict")
    return (
        BEATsConfig.from_dict(checkpoint["cfg"]),
        state,
        labels if isinstance(labels, dict) else None,
    )


def _drop_tied_bias_copies(state: dict[str, Tensor], path: Path) -> dict[str, Tensor]:
    """Remove layers 1… copies of the shared bias table, which must equal layer 0's."""
    owner = "encoder.layers.0.self_attn.relative_attention_bias.weight"
    for key in [k for k in state if k.endswith("self_attn.relative_attention_bias.weight")]:
        if key == owner:
            continue
        if owner not in state or not torch.equal(state[key], state[owner]):
            raise CheckpointFormatError(
                path, f"'{key}' differs from '{owner}', but BEATs shares one position-bias table"
            )
        del state[key]
    return state


class BEATsAudioEncoder(AudioEncoder):
    """Waveform → BEATs fbank → BEATs → concatenated hidden layers (AudioToken §2.1).

    Args:
        pretrained: A published BEATs ``.pt`` (AudioToken uses
            ``BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt``; a bare name is looked up in
            ``$A2I_CACHE``), whose ``cfg`` replaces ``preset``; or an a2i ``.safetensors`` file of
            this module's state dict for ``preset``; None for random weights.
        preset: ``paper`` = the iter3+ AS2M fine-tuned architecture (12 × 768, AudioSet head);
            ``tiny`` = 12 × 64 with the same front end and patching.
        hidden_layers: 1-based layers whose outputs are concatenated along features into
            ``tokens``; AudioToken §2.1 uses ``(4, 8, 12)``, giving ``token_dim`` 3 × 768 = 2304.
        clip_seconds: Clip length the encoder is built for (AudioToken §3: 5 s crops, 248
            tokens). Shorter inputs are zero-padded at the end to it, so every training clip
            yields :attr:`num_tokens` tokens; longer ones are encoded whole (``any_length``:
            BEATs' relative position bias takes any length, as upstream, where AudioToken's
            official inference feeds 10 s).
        freeze: Freeze the encoder (no gradients, eval mode kept), as AudioToken does.

    Attributes:
        num_tokens: Tokens per clip (248 for 5 s).
        class_ids: The checkpoint's ``label_dict`` (class index → AudioSet id), when it has one.
    """

    def __init__(
        self,
        pretrained: str | None = None,
        preset: Literal["tiny", "paper"] = "paper",
        hidden_layers: tuple[int, ...] = (4, 8, 12),
        clip_seconds: float = 5.0,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        if preset not in BEATS_PRESETS:
            raise ConfigError(
                f"{type(self).__name__}.preset '{preset}': choose one of {sorted(BEATS_PRESETS)}"
            )
        weights = resolve_weights(
            pretrained, f"{type(self).__name__}.pretrained", download=DOWNLOAD_HINT
        )
        config, state, self.class_ids = BEATS_PRESETS[preset], None, None
        if weights is not None and not weights.is_a2i_file:
            config, state, self.class_ids = load_published_checkpoint(weights)
        self.hidden_layers = check_hidden_layers(
            type(self).__name__, hidden_layers, config.encoder_layers
        )
        self.num_samples = round(clip_seconds * SAMPLE_RATE)
        patch = config.input_patch_size
        self.num_tokens = (BEATsFbank.num_frames(self.num_samples) // patch) * (
            NUM_MEL_BINS // patch
        )
        if self.num_tokens == 0:
            raise ConfigError(
                f"{type(self).__name__}.clip_seconds {clip_seconds}: too short for one "
                f"{patch}-frame patch; use at least "
                f"{(FRAME_LENGTH_MS + (patch - 1) * FRAME_SHIFT_MS) / 1000} s"
            )
        self.front_end = BEATsFbank()
        self.model = BEATsModel(config)
        self.sample_rate = SAMPLE_RATE
        self.clip_seconds = clip_seconds
        self.any_length = True
        self.embed_dim = config.encoder_embed_dim
        self.token_dim = config.encoder_embed_dim * len(self.hidden_layers)
        self.output = "both"
        if state is not None:
            self._load_model_state(state, pretrained)
        elif weights is not None:
            self.load_state_dict(weights.state_dict())
        if freeze:
            self.freeze()

    @property
    def config(self) -> BEATsConfig:
        """The architecture in use (the checkpoint's, or the preset's)."""
        return self.model.config

    def _load_model_state(self, state: dict[str, Tensor], path: str) -> None:
        try:
            self.model.load_state_dict(state)
        except RuntimeError as error:
            raise CheckpointFormatError(
                path, f"its 'model' does not fit the BEATs architecture of its 'cfg': {error}"
            ) from error

    def _pad_short(self, waveform: Tensor) -> Tensor:
        if waveform.ndim != 2:
            raise ValueError(
                f"{type(self).__name__} expects a (B, T) waveform batch, got {tuple(waveform.shape)}"
            )
        return F.pad(waveform, (0, max(0, self.num_samples - waveform.shape[-1])))

    def forward(self, waveform: Tensor) -> AudioEncoderOutput:
        """Encode ``(B, T)`` 16 kHz waveforms (zero-padded to at least ``clip_seconds``).

        Returns ``tokens`` ``(B, N, token_dim)`` (``N`` = :attr:`num_tokens` for a clip of
        ``clip_seconds``, more for longer inputs), the chosen layers' outputs side by
        side, and ``pooled`` ``(B, embed_dim)``, the mean over tokens of the final output (the
        representation the fine-tuned AudioSet head classifies).
        """
        hidden_states, final = self.model(self.front_end(self._pad_short(waveform)))
        tokens = torch.cat([hidden_states[i - 1] for i in self.hidden_layers], dim=-1)
        return AudioEncoderOutput(pooled=final.mean(dim=1), tokens=tokens)

    def classify(self, waveform: Tensor) -> Tensor:
        """AudioSet logits ``(B, predictor_class)`` of the fine-tuned head.

        Upstream averages per-token logits; the head is linear, so this equals the head applied
        to ``pooled``. ``torch.sigmoid`` of it gives upstream's class probabilities.
        """
        if not self.config.finetuned_model:
            raise ConfigError(
                f"{type(self).__name__}: this BEATs model has no classification head "
                "(cfg finetuned_model false); use a fine-tuned checkpoint"
            )
        pooled = self.forward(waveform).pooled
        return self.model.predictor(self.model.predictor_dropout(pooled))
