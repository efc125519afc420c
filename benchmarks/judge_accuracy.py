"""Accuracy of the shipped world judge on held-out test renders, clean and degraded.

Usage: python benchmarks/judge_accuracy.py [--count 1000] [--weights PATH] [--seed 0]

Scenes are the first ``count`` of the world's *test* split (default world: 20% two-source
mixtures, 30% reverberant), which the judge never saw (it trains on the train split). Images
are rendered at 64×64, then degraded; every judge reading is scored by
``a2i.synth.judge.score_report``:

- main class: the judged main class is the label (loudest source; either source of a mixture
  whose two sizes are within the size tolerance),
- all sources: the set of present classes is exactly the true set,
- size: every true source's judged size is within ±0.05 of the image side (1.6 px at 32×32,
  about ±3.75 dB of gain: an eighth of the 30 dB range),
- background: judged indoor exactly when the scene is reverberant.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from a2i.synth.judge import SIZE_TOLERANCE, WorldJudge, score_report
from a2i.synth.world import SyntheticWorld


def blur(sigma: float):
    kernel = 2 * round(3 * sigma) + 1
    return lambda images, _: TF.gaussian_blur(images, [kernel, kernel], [sigma, sigma])


def noise(sigma: float):
    def apply(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return (images + sigma * torch.randn(images.shape, generator=generator)).clamp(0, 1)

    return apply


def down_up(images: torch.Tensor, _: torch.Generator) -> torch.Tensor:
    small = F.interpolate(images, scale_factor=0.5, mode="area")
    return F.interpolate(small, size=images.shape[-2:], mode="bilinear")


def downsample(images: torch.Tensor, _: torch.Generator) -> torch.Tensor:
    return F.interpolate(images, scale_factor=0.5, mode="area")


CONDITIONS = {
    "clean 64×64": lambda images, _: images,
    "clean 32×32 (area)": downsample,
    "blur σ=1 px": blur(1.0),
    "blur σ=2 px": blur(2.0),
    "noise σ=0.05": noise(0.05),
    "noise σ=0.1": noise(0.1),
    "32→64 down-up": down_up,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--weights", default=None, help="judge weights (default: shipped)")
    parser.add_argument("--seed", type=int, default=0, help="world seed")
    args = parser.parse_args()

    judge = WorldJudge.load(args.weights)
    world = SyntheticWorld(image_size=64, seed=args.seed)
    specs = [world.sample_spec("test", i) for i in range(args.count)]
    images = torch.stack([world.render_image(s) for s in specs])
    mixtures = sum(len(s.sources) == 2 for s in specs)
    indoor = sum(s.reverb for s in specs)
    print(
        f"{args.count} test-split renders (seed {args.seed}): {mixtures} two-source mixtures, "
        f"{indoor} reverberant; size tolerance ±{SIZE_TOLERANCE} of the image side\n"
    )
    true_sizes = [world.layout(s).sizes for s in specs]
    print("| condition | main class | all sources | size | background | size MAE | time |")
    print("|---|---|---|---|---|---|---|")
    for name, degrade in CONDITIONS.items():
        generator = torch.Generator().manual_seed(0)
        started = time.perf_counter()
        report = judge.judge(degrade(images, generator))
        elapsed = time.perf_counter() - started
        scores = score_report(report, world, specs)
        cells = " | ".join(f"{100 * scores[k].float().mean():.1f}%" for k in scores)
        errors = [
            abs(float(report.sizes[b, c]) - size)
            for b, spec in enumerate(specs)
            for c, size in zip(spec.sources, true_sizes[b], strict=True)
        ]
        print(f"| {name} | {cells} | {sum(errors) / len(errors):.4f} | {elapsed:.1f} s |")


if __name__ == "__main__":
    main()
