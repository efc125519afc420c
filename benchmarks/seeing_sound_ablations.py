"""Seeing Sound §4.5 in the synthetic world: the one-source loudness sweep, separated vs mixed.

Two of the paper's ablations as numbers, on any trained tiny Seeing Sound run, each scene a world
test source paired with a source of another class and judged by the world judge:

- **Semantic Interpolation** (Fig. 5): the loudness of one source varies while the other stays
  fixed. The first source goes from −20 to +10 dB (the world's gain range), the second stays at
  −5 dB, its middle, so the difference spans −15…+15 dB. The paper finds the transition abrupt
  and blames the narrow loudness range of its sonified training mixes; how abrupt is the steepest
  5 dB step's share of the whole change.
- **Separated vs. Mixed** (Fig. 6): the two sources at 0 dB given as one mix (superposed in
  time, how the model is trained), one after the other (the first half of each source's own clip,
  concatenated in time: the paper's "individually presented one after the other"), or each
  encoded by AST on its own with the two token sequences concatenated (each source its own
  tokens, a padding mask for each). A separated source is rendered solo, so its sound is another
  draw of the same class than in the mix.

``benchmarks/seeing_sound_world.py`` (true pairs) and ``benchmarks/sonified_world.py`` (true pairs
and sonified images) run both on their Seeing Sound runs and write :func:`markdown`'s tables.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor

from a2i.audio.io import fit_length
from a2i.interfaces import Condition, GenerationRequest
from a2i.pipelines import AudioToImagePipeline
from a2i.synth.controllability import ControlSweeps, pair_rates, solo_specs
from a2i.synth.datamodule import SyntheticWorldDataModule
from a2i.synth.judge import WorldJudge
from a2i.synth.world import SceneSpec, SyntheticWorld

FIRST_GAINS_DB = (-20.0, -15.0, -10.0, -5.0, 0.0, 5.0, 10.0)
SECOND_GAIN_DB = -5.0
SCENES = 40
PRESENTATIONS = ("mixed", "one after the other", "own tokens")
BATCH = 50


def world_of(pipeline: AudioToImagePipeline) -> SyntheticWorld:
    """The tiny configs' world at the model's clip length."""
    return SyntheticWorldDataModule(image_size=32, clip_seconds=pipeline.model.clip_seconds).world


@torch.no_grad()
def loudness_sweep(pipeline: AudioToImagePipeline, scenes: int = SCENES) -> dict[str, object]:
    """P(each source drawn) per gain of the first source, and the steepest 5 dB step."""
    world = world_of(pipeline)
    sweeps = ControlSweeps(world, WorldJudge.load(), scenes=scenes)
    bases = solo_specs(world, scenes)
    rows = sweeps.loudness(pipeline, bases, lambda t: t, FIRST_GAINS_DB, SECOND_GAIN_DB)
    first = [row["first_present"] for row in rows]
    steps = [after - before for before, after in itertools.pairwise(first)]
    steepest = max(range(len(steps)), key=lambda i: abs(steps[i]))
    change = first[-1] - first[0]
    return {
        "rows": rows,
        "first_present_change": change,
        "steepest_5db_step": steps[steepest],
        "steepest_step_at_db": FIRST_GAINS_DB[steepest],
        "steepest_share": abs(steps[steepest]) / max(sum(abs(s) for s in steps), 1e-9),
    }


@torch.no_grad()
def separated_vs_mixed(
    pipeline: AudioToImagePipeline, scenes: int = SCENES
) -> list[dict[str, object]]:
    """P(first), P(second), P(both) drawn for two 0 dB sources, per presentation."""
    world = world_of(pipeline)
    judge = WorldJudge.load()
    specs = ControlSweeps(world, judge, scenes=scenes).pairs(solo_specs(world, scenes), 0.0, 0.0)
    samples = pipeline.num_samples
    mixed = torch.stack(
        [fit_length(world.render_audio(s), samples, random_crop=False) for s in specs]
    )
    solos = [
        torch.stack(
            [fit_length(world.render_audio(solo(s, k)), samples, random_crop=False) for s in specs]
        )
        for k in (0, 1)
    ]
    half = samples // 2
    in_turn = torch.cat([solos[0][:, :half], solos[1][:, : samples - half]], dim=1)
    rows = []
    for presentation in PRESENTATIONS:
        images = []
        for start in range(0, len(specs), BATCH):
            rows_of = slice(start, start + BATCH)
            if presentation == "own tokens":
                images.append(draw_own_tokens(pipeline, [solo[rows_of] for solo in solos]))
            else:
                audio = mixed if presentation == "mixed" else in_turn
                images.append(draw(pipeline, audio[rows_of]))
        present = judge.judge(torch.cat(images)).present.cpu()
        rows.append({"presentation": presentation, **pair_rates(present, specs, lambda t: t)})
    return rows


def solo(spec: SceneSpec, k: int) -> SceneSpec:
    """Source ``k`` of a two-source scene alone, at its gain."""
    return replace(spec, sources=(spec.sources[k],), gains_db=(spec.gains_db[k],))


def draw(pipeline: AudioToImagePipeline, audio: Tensor) -> Tensor:
    """One image per clip through the pipeline (the path ``a2i predict`` takes)."""
    request = pipeline.prepare_request(GenerationRequest(seeds=(0,)))
    return pipeline.generate(audio, request)[:, 0]


def draw_own_tokens(pipeline: AudioToImagePipeline, sources: Sequence[Tensor]) -> Tensor:
    """One image per row from the sources' AST token sequences, concatenated (and their nulls)."""
    model = pipeline.model
    request = pipeline.prepare_request(GenerationRequest(seeds=(0,)))
    parts = [model.condition(source.to(pipeline.device)) for source in sources]
    nulls = [model.null(part) for part in parts]

    def joined(conditions: list[Condition]) -> Condition:
        return Condition(
            torch.cat([c.tokens for c in conditions], dim=1),
            torch.cat([c.mask for c in conditions], dim=1),
        )

    return model.generate(
        joined(parts),
        request.seeds,
        unconditional=joined(nulls),
        guidance_scale=request.guidance_scale,
        num_inference_steps=request.num_inference_steps,
    )[:, 0]


def markdown(title: str, sweep: dict[str, object], separation: list[dict[str, object]]) -> str:
    """Both ablations of one model as Markdown tables."""
    lines = [
        f"**{title}: one source's loudness varied, the other fixed at {SECOND_GAIN_DB:+.0f} dB**",
        "",
        "| first source (dB) | first − second (dB) | first drawn | second drawn | both drawn |",
        "|---|---|---|---|---|",
    ]
    for row in sweep["rows"]:
        gain = row["first_gain_db"]
        lines.append(
            f"| {gain:+.0f} | {gain - SECOND_GAIN_DB:+.0f} | {row['first_present']:.2f} | "
            f"{row['second_present']:.2f} | {row['both_present']:.2f} |"
        )
    span = FIRST_GAINS_DB[-1] - FIRST_GAINS_DB[0]
    at = sweep["steepest_step_at_db"]
    lines += [
        "",
        f"P(first drawn) changes by {sweep['first_present_change']:+.2f} over {span:.0f} dB; the "
        f"steepest 5 dB step ({at:+.0f} → {at + 5:+.0f} dB) changes it by "
        f"{sweep['steepest_5db_step']:+.2f}, {sweep['steepest_share']:.0%} of all the steps' "
        "movement.",
        "",
        f"**{title}: two 0 dB sources, separated vs mixed**",
        "",
        "| sources given | first drawn | second drawn | both drawn |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {row['presentation']} | {row['first_present']:.2f} | {row['second_present']:.2f} | "
        f"{row['both_present']:.2f} |"
        for row in separation
    ]
    return "\n".join(lines) + "\n"
