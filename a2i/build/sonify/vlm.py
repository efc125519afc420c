"""Sounding concepts from a vision-language model (Seeing Sound §3.2, A.2).

The paper asks LLaVA-1.5 and CogVLM, found the two best among the VLMs it tried, for the
sounding concepts of each image with an engineered prompt whose key clause is "visible and
present in the image" (VLMs otherwise list off-camera sources). The prompt of its Figure 2 is
not in the paper's text; a2i ships a prompt written from §3.2's description
(``a2i/assets/seeing_sound/sounding_concepts_prompt.txt``: that clause, one
``name: sound of ...`` line per concept as in §3.3's example, "none" for silent images), and
a caption prompt whose answers feed the A.2 filter (the paper's captions were LLaVA's too).
Both are files, so a user with the authors' prompt swaps it in without code.

LLaVA-1.5 runs through transformers' ``LlavaForConditionalGeneration`` (``llava-hf/*``
checkpoints); CogVLM is not in transformers and runs through its checkpoint's own code
(``THUDM/cogvlm-chat-hf`` with ``trust_remote_code``, tokenizer ``lmsys/vicuna-7b-v1.5``), only
when the user allows it for the run (``--data.init_args.trust_remote_code true``): a shipped
config never does. Decoding is greedy, so the concepts
of an image never change between runs. The checkpoint is looked for when the source is built
(a missing one stops the configuration with one clear error) but loaded only when concepts are
first needed, so training on an already sonified dataset never loads a 7B model.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch
from huggingface_hub import try_to_load_from_cache

from a2i.build.sonify.concepts import (
    ConceptSource,
    ImageConcepts,
    parse_vlm_answer,
    sha1_text,
)
from a2i.build.sonify.images import ImageItem
from a2i.errors import CheckpointNotFoundError, ConfigError, ImageDecodeError
from a2i.image import open_rgb
from a2i.pretrained import Weights, resolve_weights

VLMFamily = Literal["llava", "cogvlm"]
PAPER_VLMS: dict[str, str] = {
    "llava": "llava-hf/llava-1.5-7b-hf",
    "cogvlm": "THUDM/cogvlm-chat-hf",
}
"""The paper's two VLMs (§3.2) as published checkpoints."""
COGVLM_TOKENIZER = "lmsys/vicuna-7b-v1.5"
CONCEPT_PROMPT = "seeing_sound/sounding_concepts_prompt.txt"
CAPTION_PROMPT = "seeing_sound/caption_prompt.txt"


def read_prompt(name: str) -> str:
    """A prompt from a file, or from a2i's shipped assets when ``name`` is not a file."""
    path = Path(name)
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    shipped = resources.files("a2i").joinpath("assets", name)
    if shipped.is_file():
        return shipped.read_text(encoding="utf-8").strip()
    raise ConfigError(f"prompt file '{name}' does not exist (nor as a2i/assets/{name})")


def llava_conversation(prompt: str) -> list[dict[str, Any]]:
    """The one-turn chat that LLaVA-1.5's template renders as ``USER: <image> <prompt> ASSISTANT:``."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def find_checkpoint(spec: str, field: str, download: str) -> Weights:
    """Where a VLM checkpoint is, without loading it; missing → :class:`CheckpointNotFoundError`."""
    weights = resolve_weights(spec, field, download=download)
    if weights.path is None and not isinstance(try_to_load_from_cache(spec, "config.json"), str):
        raise CheckpointNotFoundError(spec, field, library="transformers", download=download)
    return weights


class VLMConceptSource(ConceptSource):
    """Sounding concepts (and captions) by prompting LLaVA-1.5 or CogVLM.

    Args:
        model: Checkpoint: hub id (in the local cache) or directory; default LLaVA-1.5 7B.
        family: ``llava`` (transformers' LLaVA classes) or ``cogvlm`` (the checkpoint's code).
        prompt: Sounding-concept prompt file (default: a2i's, see the module docstring).
        caption_prompt: Caption prompt file for the A.2 filter; None: no caption (another
            source's caption still drops the image for this one too).
        tokenizer: CogVLM's tokenizer checkpoint (its repository has none).
        trust_remote_code: Allow running the checkpoint's own Python code (needed by CogVLM;
            :meth:`~a2i.build.sonify.concepts.ConceptSource.check_remote_code`).
        max_new_tokens: Longest answer.
        max_concepts: Most concepts kept per image (the first lines).
        batch_size: Images per generation call (LLaVA).
        dtype: Weights' precision (float16 on a GPU, as the checkpoints are published).
        name: Source name (default: the family).
    """

    def __init__(
        self,
        model: str = PAPER_VLMS["llava"],
        family: VLMFamily = "llava",
        prompt: str = CONCEPT_PROMPT,
        caption_prompt: str | None = CAPTION_PROMPT,
        tokenizer: str | None = None,
        trust_remote_code: bool = False,
        max_new_tokens: int = 128,
        max_concepts: int = 5,
        batch_size: int = 8,
        dtype: Literal["float32", "float16", "bfloat16"] = "float16",
        name: str | None = None,
    ) -> None:
        super().__init__(name or family)
        self.model_spec = model
        self.remote_code = model if family == "cogvlm" else None
        self.family = family
        self.prompt = read_prompt(prompt)
        self.caption_prompt = read_prompt(caption_prompt) if caption_prompt else None
        self.tokenizer_spec = tokenizer or (COGVLM_TOKENIZER if family == "cogvlm" else None)
        self.trust_remote_code = trust_remote_code
        self.max_new_tokens = max_new_tokens
        self.max_concepts = max_concepts
        self.batch_size = batch_size
        self.dtype = getattr(torch, dtype)
        field = f"{type(self).__name__}.model"
        self.weights = find_checkpoint(model, field, f"hf download {model}")
        self.tokenizer_weights = None
        if self.tokenizer_spec is not None:
            self.tokenizer_weights = find_checkpoint(
                self.tokenizer_spec,
                f"{type(self).__name__}.tokenizer",
                f"hf download {self.tokenizer_spec}",
            )
        self.device = torch.device("cpu")
        self._model: Any = None
        self._processor: Any = None

    def recipe(self) -> dict[str, Any]:
        """Model, prompts and decoding settings."""
        return {
            "class": type(self).__name__,
            "model": self.model_spec,
            "family": self.family,
            "prompt_sha1": sha1_text(self.prompt),
            "caption_prompt_sha1": sha1_text(self.caption_prompt) if self.caption_prompt else None,
            "max_new_tokens": self.max_new_tokens,
            "max_concepts": self.max_concepts,
        }

    def setup(self, device: str) -> None:
        """Load the checkpoint onto ``device`` (once)."""
        self.device = torch.device(device)
        if self._model is not None:
            return
        library = "transformers" if self.family == "llava" else "transformers (remote code)"
        if self.family == "llava":
            from transformers import AutoProcessor, LlavaForConditionalGeneration

            self._model, self._processor = self.weights.load(
                lambda where: (
                    LlavaForConditionalGeneration.from_pretrained(where, dtype=self.dtype),
                    AutoProcessor.from_pretrained(where),
                ),
                library=library,
                download=f"hf download {self.model_spec}",
            )
            self._processor.tokenizer.padding_side = "left"
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.check_remote_code()
            self._model = self.weights.load(
                lambda where: AutoModelForCausalLM.from_pretrained(
                    where, dtype=self.dtype, trust_remote_code=True
                ),
                library=library,
                download=f"hf download {self.model_spec}",
            )
            self._processor = self.tokenizer_weights.load(
                AutoTokenizer.from_pretrained,
                library="transformers",
                download=f"hf download {self.tokenizer_spec}",
            )
        self._model.to(self.device).eval()

    def describe(self, images: Sequence[ImageItem]) -> list[ImageConcepts]:
        """Ask the VLM for each image's concepts (and caption).

        An image that cannot be read (damaged, a decompression bomb) is a failed image; the
        batch's others are still described.
        """
        self.setup(str(self.device))
        found: dict[int, ImageConcepts] = {}
        pictures = {}
        for number, image in enumerate(images):
            try:
                pictures[number] = open_rgb(image.path)  # upright, as the viewer shows it
            except ImageDecodeError as error:
                found[number] = ImageConcepts(problem=error.reason, failed=True)
        readable = list(pictures.values())
        answers = self.ask(readable, self.prompt) if readable else []
        captions = (
            self.ask(readable, self.caption_prompt) if readable and self.caption_prompt else None
        )
        for index, (number, answer) in enumerate(zip(pictures, answers, strict=True)):
            concepts = parse_vlm_answer(answer, self.max_concepts)
            caption = captions[index].strip() if captions else None
            found[number] = ImageConcepts(caption, concepts, "" if concepts else "VLM: none")
        return [found[number] for number in range(len(images))]

    @torch.no_grad()
    def ask(self, pictures: list[Any], prompt: str) -> list[str]:
        """The model's greedy answers to ``prompt`` about each picture."""
        if self.family == "llava":
            text = self._processor.apply_chat_template(
                llava_conversation(prompt), add_generation_prompt=True
            )
            inputs = self._processor(
                images=pictures, text=[text] * len(pictures), return_tensors="pt", padding=True
            ).to(self.device, self.dtype)
            output = self._model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=False
            )
            new = output[:, inputs["input_ids"].shape[1] :]
            return self._processor.batch_decode(new, skip_special_tokens=True)
        answers = []
        for picture in pictures:  # CogVLM's own API builds one conversation per image
            built = self._model.build_conversation_input_ids(
                self._processor, query=prompt, history=[], images=[picture]
            )
            inputs = {
                "input_ids": built["input_ids"][None].to(self.device),
                "token_type_ids": built["token_type_ids"][None].to(self.device),
                "attention_mask": built["attention_mask"][None].to(self.device),
                "images": [[built["images"][0].to(self.device, self.dtype)]],
            }
            output = self._model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=False
            )
            new = output[:, inputs["input_ids"].shape[1] :]
            answers.append(self._processor.decode(new[0], skip_special_tokens=True))
        return answers
