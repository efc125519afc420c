"""The world judge: reads a synthetic-world image back into its factors (classes, sizes, room).

Generated images are scored by asking what the judge sees in them: which sources are present,
how big each object is (same unit as :attr:`~a2i.synth.world.SceneLayout.sizes`), whether the
background is indoor, and the main (largest) object. It is a small fully-convolutional network
that labels every pixel of a 32×32 grid as sky, grass, wall, floor or one of the classes; the
factors are then read off those maps: an object's size is the longest side of the box its pixels
span, with a per-class linear correction fitted on clean renders, so it holds for any size,
position or pair of objects.

It is trained on world renders degraded the way a generator's output is (blur, noise, colour
shifts, 32→64 up-sampling) against the *clean* layers, so it sees through those degradations.
The shipped weights ``a2i/assets/judge.safetensors`` (float16, 136 kB) are regenerated, seeded,
in about two minutes on an idle two-core CPU (1,000 steps of 48 renders) with::

    python -m a2i.synth.judge --train --out a2i/assets/judge.safetensors --overwrite

Multi-threaded CPU kernels do not promise bitwise-identical sums, so a regenerated file may
differ in its last bits while scoring the same.

``benchmarks/judge_accuracy.py`` reports its accuracy on held-out test renders.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from safetensors.torch import save_file
from torch import Tensor, nn

from a2i.errors import ConfigError
from a2i.io_utils import atomic_write
from a2i.pretrained import resolve_weights
from a2i.synth.world import WORLD_CLASSES, SceneSpec, SyntheticWorld

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "judge.safetensors"
REGENERATE_COMMAND = (
    "python -m a2i.synth.judge --train --out a2i/assets/judge.safetensors --overwrite"
)
INPUT_SIZE = 64
"""Images are resized to this side before the network (32×32 inputs are up-sampled)."""
MAP_SIZE = 32
"""Side of the per-pixel label maps the factors are read from."""
BACKGROUND_REGIONS = ("sky", "grass", "wall", "floor")
MIN_OBJECT_PIXELS = 3.0
"""Probability mass (in 32×32 pixels) a class needs to count as present. The smallest object
(a star at the smallest mixture size) covers about 9 such pixels."""
SIZE_TOLERANCE = 0.05
"""A size estimate is right within ±0.05 of the image side: 1.6 pixels at 32×32, and ±3.75 dB
of gain on the solo size map (an eighth of the 30 dB range)."""


@dataclass
class JudgeReport:
    """What the judge sees in a batch of images (B images, C world classes).

    Attributes:
        present: ``(B, C)`` bool, whether each class's object is in the image.
        sizes: ``(B, C)`` object size (bounding-square side / image side); 0 where absent.
        main_class: ``(B,)`` int64, the largest present object (most probable if none is).
        indoor: ``(B,)`` bool, wall-and-floor background rather than sky-and-grass.
        confidence: ``(B, C)`` highest per-pixel probability of each class, in ``[0, 1]``.
    """

    present: Tensor
    sizes: Tensor
    main_class: Tensor
    indoor: Tensor
    confidence: Tensor


def _conv(inputs: int, outputs: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class WorldJudge(nn.Module):
    """Per-pixel labeller of world images, and the factor read-out on top of it.

    Args:
        num_classes: Number of world classes.
        width: Channels at 32×32 (twice as many at 16×16).
    """

    def __init__(self, num_classes: int = len(WORLD_CLASSES), width: int = 24) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.width = width
        self.stem = nn.Sequential(_conv(3, width, stride=2), _conv(width, width))
        self.context = nn.Sequential(
            _conv(width, 2 * width, stride=2),
            _conv(2 * width, 2 * width, dilation=2),
            _conv(2 * width, 2 * width, dilation=4),
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(3 * width, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            _conv(width, width),
            nn.Conv2d(width, len(BACKGROUND_REGIONS) + num_classes, 1),
        )
        # Per-class linear correction of the measured box side: sharp tips (star, diamond,
        # triangle) cover too little of their last pixel to be counted fully.
        self.register_buffer("size_gain", torch.ones(num_classes))
        self.register_buffer("size_bias", torch.zeros(num_classes))

    def forward(self, images: Tensor) -> Tensor:
        """Label logits ``(B, 4 + C, 32, 32)`` for images ``(B, 3, H, W)`` in ``[0, 1]``."""
        x = _to_input_size(images) - 0.5
        local = self.stem(x)
        context = F.interpolate(self.context(local), size=local.shape[-2:], mode="bilinear")
        return self.fuse(torch.cat([local, context], dim=1))

    @torch.no_grad()
    def judge(self, images: Tensor) -> JudgeReport:
        """Read classes, sizes, background and main class from images ``(B, 3, H, W)``."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ConfigError(f"judge expects images (B, 3, H, W); got shape {tuple(images.shape)}")
        was_training = self.training
        self.eval()
        probs = self(images.to(self.size_gain.device, torch.float32)).softmax(dim=1)
        self.train(was_training)
        return read_factors(probs, self.size_gain, self.size_bias)

    @torch.no_grad()
    def calibrate_sizes(
        self, specs: Sequence[SceneSpec], image_sizes: Sequence[int] = (INPUT_SIZE, MAP_SIZE)
    ) -> None:
        """Fit :attr:`size_gain` and :attr:`size_bias` per class by least squares.

        Uses clean renders of ``specs`` at each of ``image_sizes``, so one correction serves
        both working resolutions.
        """
        self.size_gain.fill_(1.0)
        self.size_bias.fill_(0.0)
        measured: list[list[float]] = [[] for _ in range(self.num_classes)]
        truth: list[list[float]] = [[] for _ in range(self.num_classes)]
        for image_size in image_sizes:
            world = SyntheticWorld(image_size=image_size)
            report = self.judge(torch.stack([world.render_image(s) for s in specs]))
            for b, spec in enumerate(specs):
                for source, size in zip(spec.sources, world.layout(spec).sizes, strict=True):
                    if report.present[b, source]:
                        measured[source].append(float(report.sizes[b, source]))
                        truth[source].append(size)
        for c in range(self.num_classes):
            if len(measured[c]) < 2:
                raise ConfigError(
                    f"size calibration saw class {c} fewer than twice; use more scenes"
                )
            design = torch.stack([torch.tensor(measured[c]), torch.ones(len(measured[c]))], dim=1)
            solution = torch.linalg.lstsq(design, torch.tensor(truth[c])[:, None]).solution
            self.size_gain[c], self.size_bias[c] = solution[0, 0], solution[1, 0]

    @classmethod
    def load(cls, path: str | Path | None = None) -> WorldJudge:
        """Load judge weights (default: the shipped ``a2i/assets/judge.safetensors``)."""
        regenerate = f"regenerate it offline with `{REGENERATE_COMMAND}`"
        weights = resolve_weights(
            str(path or DEFAULT_WEIGHTS), "WorldJudge.load(path)", download=regenerate
        )
        state, metadata = weights.state_dict(download=regenerate), weights.metadata()
        classes = json.loads(metadata.get("classes", "[]"))
        if classes != [c.caption for c in WORLD_CLASSES]:
            raise ConfigError(
                f"judge weights '{weights.path}' were trained for classes {classes}, not this world's; "
                f"regenerate them with `{REGENERATE_COMMAND}`"
            )
        judge = cls(num_classes=len(classes), width=int(metadata["width"]))
        judge.load_state_dict({k: v.float() for k, v in state.items()})
        return judge.eval()

    def save(self, path: str | Path, *, overwrite: bool = False) -> None:
        """Write the weights (float16) and the class list as safetensors, atomically."""
        state = {}
        for name, value in self.state_dict().items():
            value = value.detach().cpu().contiguous()
            state[name] = value.half() if value.is_floating_point() else value
        metadata = {
            "classes": json.dumps([c.caption for c in WORLD_CLASSES]),
            "width": str(self.width),
            "command": REGENERATE_COMMAND,
        }
        remedy = "pass overwrite=True (--overwrite) to replace it"
        with atomic_write(path, overwrite=overwrite, remedy=remedy) as tmp:
            save_file(state, str(tmp), metadata=metadata)


def _to_input_size(images: Tensor) -> Tensor:
    if images.shape[-1] == INPUT_SIZE and images.shape[-2] == INPUT_SIZE:
        return images
    return F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True)


def read_factors(probs: Tensor, size_gain: Tensor, size_bias: Tensor) -> JudgeReport:
    """Turn per-pixel label probabilities ``(B, 4 + C, 32, 32)`` into a :class:`JudgeReport`.

    A class is present when it holds at least :data:`MIN_OBJECT_PIXELS` of probability mass;
    its size is the longer side of the box its pixels span, measured softly (each row and
    column counts with its highest probability) so partially covered edge pixels give
    sub-pixel precision, then corrected per class (``size_gain * side + size_bias``).
    """
    regions = len(BACKGROUND_REGIONS)
    objects = probs[:, regions:]
    # Probabilities below 0.2 are noise-level and would widen the box by fractions of pixels.
    solid = torch.where(objects >= 0.2, objects, torch.zeros_like(objects))
    width = solid.amax(dim=2).sum(dim=-1)
    height = solid.amax(dim=3).sum(dim=-1)
    mass = solid.sum(dim=(2, 3))
    present = mass >= MIN_OBJECT_PIXELS
    side = torch.maximum(width, height) / probs.shape[-1]
    sizes = torch.where(present, side * size_gain + size_bias, 0.0)
    ranking = torch.where(present, sizes, mass - mass.amax(dim=1, keepdim=True) - 1.0)
    wall_floor = probs[:, 2:4].sum(dim=(1, 2, 3))
    sky_grass = probs[:, 0:2].sum(dim=(1, 2, 3))
    return JudgeReport(
        present=present,
        sizes=sizes,
        main_class=ranking.argmax(dim=1),
        indoor=wall_floor > sky_grass,
        confidence=objects.amax(dim=(2, 3)),
    )


def score_report(
    report: JudgeReport, world: SyntheticWorld, specs: Sequence[SceneSpec]
) -> dict[str, Tensor]:
    """Per-image correctness ``(B,)`` bool of a report against the scenes it was made from.

    Keys: ``main_class`` (the label, i.e. the loudest source; in a mixture whose two sizes are
    within :data:`SIZE_TOLERANCE` either source counts), ``sources`` (exactly the true set
    present), ``size`` (every true source's size within :data:`SIZE_TOLERANCE`) and
    ``background`` (indoor exactly when reverberant).
    """
    rows: dict[str, list[bool]] = {"main_class": [], "sources": [], "size": [], "background": []}
    for b, spec in enumerate(specs):
        sizes = world.layout(spec).sizes
        near_tie = len(sizes) == 2 and abs(sizes[0] - sizes[1]) <= SIZE_TOLERANCE
        main = int(report.main_class[b])
        rows["main_class"].append(main in spec.sources if near_tie else main == spec.sources[0])
        found = set(report.present[b].nonzero().flatten().tolist())
        rows["sources"].append(found == set(spec.sources))
        errors = [
            abs(float(report.sizes[b, c]) - s) for c, s in zip(spec.sources, sizes, strict=True)
        ]
        rows["size"].append(max(errors) <= SIZE_TOLERANCE)
        rows["background"].append(bool(report.indoor[b]) == spec.reverb)
    return {name: torch.tensor(values) for name, values in rows.items()}


def label_maps(world: SyntheticWorld, specs: Sequence[SceneSpec]) -> tuple[Tensor, Tensor]:
    """Clean images ``(B, 3, S, S)`` and soft label maps ``(B, 4 + C, 32, 32)`` of scenes.

    Label maps are the renderer's exact coverages (objects, ground) area-averaged to 32×32.
    """
    images, maps = [], []
    regions = len(BACKGROUND_REGIONS)
    for spec in specs:
        layers = world.render_layers(spec)
        images.append(torch.from_numpy(layers.compose()).float())
        target = torch.zeros(regions + len(WORLD_CLASSES), world.image_size, world.image_size)
        objects = torch.from_numpy(layers.objects).float()
        free = 1.0 - objects.sum(dim=0)
        ground = torch.from_numpy(layers.ground).float()
        upper = 2 if spec.reverb else 0
        target[upper] = free * (1.0 - ground)
        target[upper + 1] = free * ground
        for source, coverage in zip(spec.sources, objects, strict=True):
            target[regions + source] = coverage
        maps.append(target)
    stacked = torch.stack(maps)
    if world.image_size != MAP_SIZE:
        stacked = F.interpolate(stacked, size=(MAP_SIZE, MAP_SIZE), mode="area")
    return torch.stack(images), stacked


def degrade(images: Tensor, generator: torch.Generator) -> Tensor:
    """Random degradations a generator's output shows: blur, noise, colour shift, 32→64.

    Each applies to about half of the images (a third for down-up sampling), with random
    strength: blur σ up to 2.5 pixels, noise σ up to 0.12, per-channel gain ±10% and offset
    ±0.05.
    """
    out = images.clone()
    count = images.shape[0]

    def chosen(probability: float) -> Tensor:
        return (torch.rand(count, generator=generator) < probability).nonzero().flatten()

    for i in chosen(1 / 3).tolist():
        small = F.interpolate(out[i : i + 1], scale_factor=0.5, mode="area")
        out[i] = F.interpolate(small, size=out.shape[-2:], mode="bilinear")[0]
    for i in chosen(0.5).tolist():
        sigma = 0.3 + 2.2 * torch.rand(1, generator=generator).item()
        kernel = 2 * round(3 * sigma) + 1
        out[i] = TF.gaussian_blur(out[i], [kernel, kernel], [sigma, sigma])
    colour = chosen(0.5)
    gain = 1.0 + 0.2 * (torch.rand(len(colour), 3, 1, 1, generator=generator) - 0.5)
    offset = 0.1 * (torch.rand(len(colour), 3, 1, 1, generator=generator) - 0.5)
    out[colour] = out[colour] * gain + offset
    noisy = chosen(0.5)
    sigma = 0.12 * torch.rand(len(noisy), 1, 1, 1, generator=generator)
    noise = torch.randn(len(noisy), *out.shape[1:], generator=generator)
    out[noisy] = out[noisy] + sigma * noise
    return out.clamp(0.0, 1.0)


def train_judge(
    out: str | Path,
    *,
    steps: int = 1000,
    batch_size: int = 48,
    learning_rate: float = 3e-3,
    seed: int = 0,
    overwrite: bool = False,
) -> WorldJudge:
    """Train the judge on fresh train-split renders (seeded) and save it to ``out``.

    The training world over-samples mixtures and indoor scenes (both 0.5) so the judge sees
    enough of each; test-split scenes are never rendered here.
    """
    if Path(out).exists() and not overwrite:
        raise FileExistsError(f"'{out}' exists; pass overwrite=True (--overwrite) to replace it")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    world = SyntheticWorld(image_size=INPUT_SIZE, seed=seed, mixture_prob=0.5, reverb_prob=0.5)
    judge = WorldJudge()
    optimizer = torch.optim.AdamW(judge.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, learning_rate, total_steps=steps)
    regions = len(BACKGROUND_REGIONS)
    judge.train()
    started = time.perf_counter()
    for step in range(steps):
        specs = [world.sample_spec("train", step * batch_size + i) for i in range(batch_size)]
        images, target = label_maps(world, specs)
        log_probs = judge(degrade(images, generator)).log_softmax(dim=1)
        # Object pixels are a few percent of an image: weight them up so small objects count.
        weight = 1.0 + 4.0 * target[:, regions:].sum(dim=1)
        loss = (-(target * log_probs).sum(dim=1) * weight).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            elapsed = time.perf_counter() - started
            print(f"step {step:5d}  loss {loss.item():.4f}  {elapsed:6.1f} s", flush=True)
    judge.eval()
    first_unused = steps * batch_size  # calibrate on train scenes the network never saw
    judge.calibrate_sizes([world.sample_spec("train", first_unused + i) for i in range(1000)])
    judge.save(out, overwrite=overwrite)
    return judge


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m a2i.synth.judge --train --out PATH [--overwrite]``."""
    parser = argparse.ArgumentParser(prog="python -m a2i.synth.judge", description=__doc__)
    parser.add_argument("--train", action="store_true", help="train the judge and save it")
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS, help="weights file to write")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    args = parser.parse_args(argv)
    if not args.train:
        parser.error("nothing to do: pass --train")
    train_judge(
        args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        overwrite=args.overwrite,
    )


if __name__ == "__main__":
    main()
