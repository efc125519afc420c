"""The model card written beside exported weights (what a Hugging Face model page shows).

A user who receives an exported folder should learn, without the training run, which method and
paper it implements, what data it saw and how it scored.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any


@dataclass
class ModelCard:
    """What is known about a trained method.

    Attributes:
        method: The method's class path.
        paper: First line of the method module's docstring (paper, authors, venue).
        data: The training run's ``data`` section (class path and arguments), if known.
        metrics: Scalars of the newest ``a2i test`` reports of these weights and settings
            recorded in the run (:mod:`a2i.pipelines.run_reports`), if any.
        source: Run folder or checkpoint it came from.
        seed: The run's ``seed_everything`` (rebuilds randomly initialised frozen parts).
    """

    method: str = ""
    paper: str = ""
    data: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    source: str = ""
    seed: int | None = None

    @classmethod
    def describe(cls, model: object, **known: Any) -> ModelCard:
        """A card for ``model`` with its class path and its module's paper line."""
        kind = type(model)
        doc = inspect.getdoc(inspect.getmodule(kind)) or ""
        return cls(
            method=f"{kind.__module__}.{kind.__qualname__}",
            paper=doc.splitlines()[0] if doc else "",
            **known,
        )

    def render(self) -> str:
        """The card as Markdown (``README.md`` of an exported folder)."""
        lines = [
            f"# {self.method.rsplit('.', 1)[-1]} (a2i)",
            "",
            f"- method: `{self.method}`",
            f"- paper: {self.paper or 'unknown'}",
            f"- trained from: `{self.source or 'unknown'}`",
        ]
        if self.data:
            args = self.data.get("init_args", {}) or {}
            shown = ", ".join(f"{k}={v}" for k, v in args.items() if not isinstance(v, dict))
            lines.append(f"- data: `{self.data.get('class_path', '?')}` ({shown})")
        lines += [
            "",
            "Load it with:",
            "",
            "```python",
            "from a2i.pipelines import AudioToImagePipeline",
            "pipe = AudioToImagePipeline.from_pretrained('<this folder>')",
            "images = pipe(['sound.wav'], num_images_per_input=2).images",
            "```",
            "",
            "`config.yaml` holds the method's full configuration (frozen components are rebuilt "
            "from it); `model.safetensors` the trained weights only.",
        ]
        if self.metrics:
            lines += ["", "## Last evaluation", "", "| metric | value |", "|---|---|"]
            lines += [
                f"| {name} | {value:.4g} |"
                for name, value in self.metrics.items()
                if isinstance(value, int | float)
            ]
        return "\n".join(lines) + "\n"
