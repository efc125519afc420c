"""The CLIP text encoder of a text-to-image model, with a slot for a learned token.

AudioToken (§2.1) feeds "A photo of a <audio>" to Stable Diffusion's frozen CLIP text encoder,
where ``<audio>`` is not a word but an embedding ``e_audio`` computed from sound. transformers'
``CLIPTextModel`` takes no ``inputs_embeds``, so the placeholder is a token added to the
tokenizer, and a forward hook on the token-embedding layer replaces its row by the injected
embedding (one per prompt). Nothing else changes: positions before the placeholder see exactly the
text encoder's usual output; positions after it attend to it (CLIP's attention is causal).

Seeing Sound and WavBriVL condition on text encoders the same way, so this lives with the shared
encoders, not in a method.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import open_clip.tokenizer
import torch
from torch import Tensor, nn
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from a2i.encoders.published import published_or_preset
from a2i.errors import ConfigError
from a2i.interfaces import TextEncoder
from a2i.io_utils import atomic_write
from a2i.pretrained import cache_dir, resolve_weights

CLIP_TEXT_PRESETS = {
    # Stable Diffusion v1.x's text encoder: OpenAI CLIP ViT-L/14's text tower (123,060,480).
    "paper": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
        "projection_dim": 768,
    },
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 16,
        "hidden_act": "quick_gelu",
        "projection_dim": 64,
    },
}
"""Both use CLIP's 49,408-token BPE vocabulary (the tokenizer is shared)."""

TOKEN_IDS_SUFFIX = ".ids"
TOKEN_ROWS_SUFFIX = ".rows"
"""An a2i file may store the token table as ``<table key>.ids`` and ``.rows`` (kept rows only)."""

CLIP_VOCAB_SIZE = 49408
_MERGES = 49152 - 256 - 2


def offline_clip_tokenizer(max_length: int) -> CLIPTokenizer:
    """OpenAI CLIP's tokenizer built from the BPE table open_clip ships (no hub needed).

    The vocabulary is CLIP's: byte tokens, their word-final forms, one token per merge, then
    ``<|startoftext|>`` and ``<|endoftext|>`` (ids 49406, 49407); ids equal open_clip's and the
    hub's ``openai/clip-vit-large-patch14`` tokenizer's. The two files are written once to
    ``$A2I_CACHE/clip_tokenizer``.
    """
    folder = cache_dir() / "clip_tokenizer"
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    if not (vocab_file.exists() and merges_file.exists()):
        bpe = gzip.open(open_clip.tokenizer.default_bpe()).read().decode("utf-8")
        merges = bpe.split("\n")[1 : _MERGES + 1]
        symbols = list(open_clip.tokenizer.bytes_to_unicode().values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(vocab_file, json.dumps({token: i for i, token in enumerate(vocab)}))
        _write_atomic(merges_file, "#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=max_length)


class CLIPTextEncoder(TextEncoder):
    """Tokenizer + ``CLIPTextModel`` → per-token hidden states, with an injectable placeholder.

    Args:
        pretrained: A diffusers pipeline (repo id or directory with ``tokenizer/`` and
            ``text_encoder/``, e.g. ``CompVis/stable-diffusion-v1-4``) or a CLIP model repo with
            ``subfolder=""``: the published encoder. An a2i ``.safetensors`` file of this module
            is loaded into ``preset`` instead.
        subfolder: Subfolder of the text encoder in ``pretrained`` (the tokenizer's is
            ``tokenizer`` beside it, or the same folder when this is empty).
        preset: ``paper`` = SD v1.x's CLIP ViT-L/14 text tower with random weights; ``tiny`` = 2
            layers, 64 wide, 16 tokens.
        placeholder: The token that marks where an injected embedding goes.
        freeze: Freeze the encoder (no gradients, eval mode kept).
    """

    def __init__(
        self,
        pretrained: str | None = None,
        subfolder: str = "text_encoder",
        preset: Literal["tiny", "paper"] = "paper",
        placeholder: str = "<audio>",
        freeze: bool = False,
    ) -> None:
        super().__init__()
        weights = resolve_weights(pretrained, f"{type(self).__name__}.pretrained")
        tokenizer_folder = "tokenizer" if subfolder else ""

        def preset_tower() -> tuple[CLIPTokenizer, CLIPTextModel]:
            config = CLIPTextConfig(
                **CLIP_TEXT_PRESETS[preset],
                vocab_size=CLIP_VOCAB_SIZE,
                bos_token_id=49406,
                eos_token_id=49407,
                pad_token_id=49407,
            )
            model = CLIPTextModel(config)
            return offline_clip_tokenizer(config.max_position_embeddings), model

        self.tokenizer, self.model = published_or_preset(
            weights,
            lambda where: (
                CLIPTokenizer.from_pretrained(where, subfolder=tokenizer_folder),
                CLIPTextModel.from_pretrained(where, subfolder=subfolder),
            ),
            preset_tower,
            subfolder,
        )
        if placeholder in self.tokenizer.get_vocab():
            raise ConfigError(f"{type(self).__name__}.placeholder '{placeholder}' is a known token")
        self.tokenizer.add_tokens([placeholder])
        self.placeholder = placeholder
        self.placeholder_id = self.tokenizer.convert_tokens_to_ids(placeholder)
        # One more embedding row so the placeholder id is a valid index; the hook overwrites it.
        self.model.resize_token_embeddings(len(self.tokenizer), mean_resizing=False)
        self.max_length = int(self.model.config.max_position_embeddings)
        self.width = int(self.model.config.hidden_size)
        self._injected: Tensor | None = None
        self.model.get_input_embeddings().register_forward_hook(self._inject)
        if weights is not None and weights.is_a2i_file:
            self.load_state_dict(self._expand_token_table(weights.state_dict()))
        if freeze:
            self.freeze()

    def tokenize(self, prompts: Sequence[str]) -> Tensor:
        """Token ids ``(B, max_length)``, padded and truncated the way Stable Diffusion does."""
        return self.tokenizer(
            list(prompts),
            padding="max_length",
            max_length=self.max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.model.device)

    def forward(self, prompts: Sequence[str], injected: Tensor | None = None) -> Tensor:
        """Hidden states ``(B, max_length, width)`` (``last_hidden_state``, what SD reads).

        Args:
            prompts: One prompt per row; with ``injected``, each holds :attr:`placeholder` once.
            injected: ``(B, width)`` embeddings to put at the placeholders (``e_audio``).
        """
        ids = self.tokenize(prompts)
        if injected is not None:
            slots = (ids == self.placeholder_id).sum(dim=1)
            if not torch.all(slots == 1):
                raise ConfigError(
                    f"every prompt needs the placeholder '{self.placeholder}' exactly once "
                    f"(and within {self.max_length} tokens): {list(prompts)}"
                )
        with self._injecting(injected):
            return self.model(input_ids=ids).last_hidden_state

    def compact_state_dict(self, token_ids: Tensor) -> dict[str, Tensor]:
        """The state dict with the token table cut to the rows of ``token_ids``.

        A text encoder trained on a small caption vocabulary (the synthetic world's) moves only
        those rows of CLIP's 49,408; the others are noise that would make up 97% of the file.
        Loading an a2i file gives every row not stored a zero embedding.
        """
        state = dict(self.state_dict())
        key = self._token_table_key
        ids = token_ids.detach().to(torch.long).cpu().unique()
        state[key + TOKEN_IDS_SUFFIX] = ids
        state[key + TOKEN_ROWS_SUFFIX] = state.pop(key)[ids]
        return state

    def _expand_token_table(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Undo :meth:`compact_state_dict` (a full table passes through unchanged)."""
        key = self._token_table_key
        if key + TOKEN_IDS_SUFFIX not in state:
            return state
        ids, rows = state.pop(key + TOKEN_IDS_SUFFIX), state.pop(key + TOKEN_ROWS_SUFFIX)
        table = torch.zeros_like(self.model.get_input_embeddings().weight, dtype=rows.dtype)
        table[ids] = rows
        return {**state, key: table}

    @property
    def _token_table_key(self) -> str:
        return next(
            name
            for name, tensor in self.state_dict(keep_vars=True).items()
            if tensor is self.model.get_input_embeddings().weight
        )

    def pooled_label(self, labels: Sequence[str]) -> Tensor:
        """AudioToken eq. 7's ``l̂``: mean of the label tokens' input word embeddings ``(B, width)``.

        The rows of the token-embedding table (the space ``e_audio`` is injected into), not the
        encoder's output states: the official code averages ``get_input_embeddings().weight`` over
        the label's tokens without ``<|startoftext|>``/``<|endoftext|>`` (guyyariv/AudioToken
        ab7d280, train.py:311, 366-368). Output states of one prompt template barely differ between
        labels (mutual cosine 0.956 over the synthetic world's ten classes), so L_CL taught little.
        """
        ids = self.tokenize(labels)
        # The label's tokens: everything between <|startoftext|> and the first <|endoftext|>
        # (its position, not a count of other ids: SD-2's tokenizer pads with "!", not the end).
        position = torch.arange(ids.shape[1], device=ids.device)
        is_end = ids == self.tokenizer.eos_token_id
        first_end = torch.where(is_end, position, ids.shape[1]).min(dim=1, keepdim=True).values
        words = (position >= 1) & (position < first_end)
        rows = self.model.get_input_embeddings().weight[ids]
        return (rows * words[..., None]).sum(dim=1) / words.sum(dim=1, keepdim=True).clamp(min=1)

    @contextmanager
    def _injecting(self, injected: Tensor | None):
        self._injected = injected
        try:
            yield
        finally:
            self._injected = None

    def _inject(self, module: nn.Module, inputs: tuple[Tensor], output: Tensor) -> Tensor | None:
        """Forward hook: the placeholder's embedding row becomes the injected embedding."""
        if self._injected is None:
            return None
        mask = (inputs[0] == self.placeholder_id)[..., None]
        return torch.where(mask, self._injected[:, None, :].to(output.dtype), output)


def _write_atomic(path: Path, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
