"""BriVL's tower head: token features → self-attention block → average pooling → two-layer MLP.

BriVL (Fei et al. 2022, the model WavBriVL builds on) ends both of its towers this way: the
backbone's token features are L2-normalised, pass a self-attention (SA) block of post-norm
Transformer encoder layers (WavBriVL §2.3 eq. 2), are average-pooled over the valid tokens (eq. 3)
and projected by a two-layer MLP with a ReLU into the joint space. WavBriVL's audio tower ends the
same way ("4 Transformer encoder layers and MLP block ... two fully connected layers and one ReLU",
§2.3), so :class:`~a2i.encoders.audio.wavlm_tower.WavLMTower` and
:class:`~a2i.encoders.image.brivl.BriVLImageEncoder` share this module. It is torch's own
``nn.TransformerEncoder`` and :class:`~a2i.modules.projectors.MLPProjector`; only the masked mean
is written here.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from a2i.modules.projectors import MLPProjector


class SelfAttentionHead(nn.Module):
    """Tokens ``(B, N, dim)`` → ``(B, out_dim)``.

    The defaults are BriVL's (BAAI-WuDao/BriVL ``cfg/test_xyb.yml``: 4 layers, 4 heads; torch's
    default feed-forward width 2048, dropout 0.1 and ReLU, which BriVL's
    ``nn.TransformerEncoderLayer(d_model, nhead)`` leaves in place).

    Args:
        dim: Token width (the backbone's).
        out_dim: Embedding size of the joint space.
        hidden_dim: Width of the MLP's hidden layer (None: ``out_dim``, as BriVL's
            ``FakeTransformer(in, out, out)``).
        num_layers: Transformer encoder layers of the SA block (WavBriVL §2.3: 4).
        num_heads: Attention heads per layer.
        feedforward_dim: Width of each layer's feed-forward network.
        dropout: Dropout inside the encoder layers.
        normalize_tokens: L2-normalise the tokens before the SA block, as BriVL does
            (``F.normalize`` before ``imgAtt``/``textAtt`` in its ``models/vl_model.py``).
    """

    def __init__(
        self,
        dim: int,
        out_dim: int,
        hidden_dim: int | None = None,
        num_layers: int = 4,
        num_heads: int = 4,
        feedforward_dim: int = 2048,
        dropout: float = 0.1,
        normalize_tokens: bool = True,
    ) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            dim, num_heads, feedforward_dim, dropout, activation="relu", batch_first=True
        )
        self.attention = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.mlp = MLPProjector(dim, hidden_dim or out_dim, out_dim, activation="relu")
        self.normalize_tokens = normalize_tokens

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """Embed a token sequence; ``mask`` ``(B, N)`` is True for real tokens (None: all real)."""
        if self.normalize_tokens:
            tokens = F.normalize(tokens, dim=-1)
        padding = None if mask is None else ~mask
        states = self.attention(tokens, src_key_padding_mask=padding)
        if mask is None:
            pooled = states.mean(dim=1)
        else:
            weights = mask.to(states.dtype)[..., None]
            pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return self.mlp(pooled)
