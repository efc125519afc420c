"""Paper-scale wiring without published weights: one training step and one image per paper config.

Tiny presets hide full-size shape errors, so each paper config (``configs/sound2vision_gan.yaml``,
``configs/sound2vision_ldm.yaml``, ``configs/audiotoken.yaml``, ``configs/seeing_sound.yaml``) is
built with its ``model:`` section as written, except that every ``pretrained`` field is dropped and
every component that has presets is set to ``preset: paper`` (the published architectures, random
weights, no download). On CPU at batch 1 and fp32 it runs one optimiser step on an in-memory clip of the
config's sample rate, clip length and image size, then draws one image from its audio
(diffusion samplers with ``--steps`` steps: wiring, not quality). Each config runs in its own
process, so the peak RSS printed is that config's own::

    OMP_NUM_THREADS=2 python benchmarks/paper_scale_smoke.py [--configs configs/audiotoken.yaml]
"""

from __future__ import annotations

import argparse
import copy
import importlib
import inspect
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [
    "configs/sound2vision_gan.yaml",
    "configs/sound2vision_ldm.yaml",
    "configs/audiotoken.yaml",
    "configs/seeing_sound.yaml",
    "configs/wavbrivl.yaml",
]


def random_paper_weights(node: Any) -> Any:
    """The config with ``pretrained`` removed and ``preset: paper`` on every preset component."""
    if isinstance(node, list):
        return [random_paper_weights(item) for item in node]
    if not isinstance(node, dict):
        return node
    # ``pretrained`` and ``<part>_pretrained`` (WavLMTower.wavlm_pretrained) alike
    node = {k: random_paper_weights(v) for k, v in node.items() if not k.endswith("pretrained")}
    if "class_path" in node:
        module, _, name = node["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        if "preset" in inspect.signature(cls).parameters:
            node["init_args"] = {**(node.get("init_args") or {}), "preset": "paper"}
    return node


def peak_rss_gb() -> float:
    """This process's peak resident memory (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def run_one(config: str, steps: int) -> dict[str, Any]:
    """Build, train one step and draw one image; times and peak RSS of this process."""
    import torch

    from a2i.interfaces import AUDIO, CAPTION, IMAGE, KEY, LABEL, GenerationRequest
    from a2i.pipelines.loading import build_method

    sections = yaml.safe_load((ROOT / config).read_text())
    data = sections["data"]["init_args"]
    started = time.perf_counter()
    model = build_method(random_paper_weights(copy.deepcopy(sections["model"])), seed=0)
    built = time.perf_counter()
    torch.manual_seed(0)
    size = data["image_size"]
    batch = {
        AUDIO: torch.randn(1, round(data["clip_seconds"] * data["sample_rate"])) * 0.1,
        IMAGE: torch.rand(1, 3, size, size),
        LABEL: torch.zeros(1, dtype=torch.long),
        CAPTION: ["dog barking"],
        KEY: ["clip0"],
    }
    model.train()
    optimizer = model.configure_optimizers()
    loss = model.training_step(batch, 0)
    loss.backward()
    optimizer.step()
    trained = time.perf_counter()
    model.eval()
    sampling = {"num_inference_steps": steps} if "num_inference_steps" in model.supports else {}
    image = model.generate_from_audio(batch[AUDIO], GenerationRequest(seeds=(0,), **sampling))
    drawn = time.perf_counter()
    params = sum(p.numel() for p in model.parameters())
    return {
        "config": config,
        "parameters_M": round(params / 1e6, 1),
        "build_s": round(built - started, 1),
        "train_step_s": round(trained - built, 1),
        "image_s": round(drawn - trained, 1),
        "image_shape": list(image.shape),
        "loss": round(float(loss), 4),
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=CONFIGS)
    parser.add_argument("--steps", type=int, default=2, help="sampler steps of diffusion models")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.steps)))
        return
    rows = []
    for config in args.configs:
        command = [sys.executable, __file__, "--child", config, "--steps", str(args.steps)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            sys.exit(f"{config} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print("| config | parameters | build | training step | one image | peak RSS |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| `{row['config']}` | {row['parameters_M']} M | {row['build_s']} s | "
            f"{row['train_step_s']} s | {row['image_s']} s {tuple(row['image_shape'][-2:])} | "
            f"{row['peak_rss_gb']} GB |"
        )


if __name__ == "__main__":
    main()
