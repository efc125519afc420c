"""Seeing Sound's hypothesis in the synthetic world: trained on sonified images vs on true pairs.

Seeing Sound (§3, §4.5) trains on images that never had a sound: each image's sounding concepts
retrieve clips from an audio pool by CLAP, mixed at random loudness. Here the same model is
trained twice on the same world images, once with their true sounds and once with sounds
retrieved for them, and both are scored on the world's *true* test sounds by the harness. Six
steps, each with the real CLI, each skipped when its output exists (a rerun resumes):

1. the world's training and validation images (images only, SyntheticWorld API), their
   concepts (what a VLM asked for the sounding things would say: each object's caption,
   "<caption> in a room" on an indoor background, the texts of the world's tiny CLAP) and the
   audio pool: single-source world sounds at random gains and reverb drawn from *another* world
   seed (never an image's own sound), plus white/pink/brown distractor noise;
2. ``a2i sonify`` with the shipped tiny world CLAP (``a2i/assets/tiny/clap/world.safetensors``)
   into shards, caching Seeing Sound's AST tokens and VAE latents (§4.3);
3. tiny Sound2Vision-LDM (``configs/tiny/sound2vision_ldm.yaml``) trained on the sonified shards
   and on the true pairs of the same images (the config's world datamodule), same steps;
4. the same for tiny Seeing Sound (``configs/tiny/seeing_sound.yaml``), reading the cached tokens;
5. ``a2i test`` of every run on the world's true test sounds with ``configs/eval/world.yaml``
   (judge, CLIP R@k, FID, control sweeps: gain → size, mixtures, reverb → indoor);
6. the comparison table (``benchmarks/compare.py``) and how often retrieval found the right
   class and room; for Seeing Sound, §4.5's one-source loudness sweep and separated vs mixed
   sources on both arms (``benchmarks/seeing_sound_ablations.py``, ``--control_scenes`` scenes
   per point), since the paper ties the abrupt loudness transition to its sonified data.

Two choices differ from a2i's paper defaults, for the world's sake. Loudness targets span the
world's own loudness (−52…−22 LUFS: gains −20…+10 dB around −32 LUFS) rather than −25…−21
LUFS, so the sonified arm hears test sounds at levels it was trained on (``--lufs_range -25 -21``
gives the paper's recipe). ``--top_k`` is 50, not 10: the world has only 20 concept texts, so
with k = 10 every image of a class would share the same ~10 clips; in the paper every image's
concepts are worded differently.

Usage (about an hour on a shared 2-core machine: world and sonification ~3 minutes, measured at
~100 images/s mixing and ~90 pool files/s embedding; each LDM arm ~10-15 and each Seeing Sound
arm ~14-20 minutes of training, as their own benchmarks; each evaluation 1-2)::

    OMP_NUM_THREADS=1 python benchmarks/sonified_world.py --out runs/sonified_world \\
        --table docs/results/sonified_world.md [--images 8192] [--steps N] [--methods ldm]

A smoke run (~2 minutes): ``--images 64 --val_images 16 --pool 60 --noise 6 --top_k 5 --steps 5
--test_clips 16 --control_scenes 2``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from compare import compare_runs  # benchmarks/compare.py, beside this script
from seeing_sound_ablations import loudness_sweep, markdown, separated_vs_mixed
from sound2vision_world import EVAL_CONFIG, evaluate, train

from a2i.audio.io import write_audio
from a2i.build.sonify.images import folder_key
from a2i.cli import main as a2i
from a2i.image import write_png
from a2i.pipelines import AudioToImagePipeline
from a2i.synth.world import REFERENCE_RMS, WORLD_CLASSES, SceneSpec, SyntheticWorld
from a2i.synth.world_clap import CLIP_SECONDS, text_of

ROOT = Path(__file__).resolve().parents[1]
METHODS = {
    "ldm": ("configs/tiny/sound2vision_ldm.yaml", "Sound2Vision LDM"),
    "seeing_sound": ("configs/tiny/seeing_sound.yaml", "Seeing Sound"),
}
ARMS = {"true": "true pairs", "sonified": "sonified images"}
CLAP = "tiny/clap/world.safetensors"
IMAGE_SIZE = 32
IMAGE_SEED = 0
"""The tiny configs' world: the true-pair arm trains on scenes 0…N-1 of its train split."""
POOL_SEED = 1
"""The pool's sounds come from another world, so no image is ever paired with its own sound."""
ROOM = " in a room"


def concepts_of(spec: SceneSpec) -> str:
    """The caption an image's sounding concepts are cut from: one phrase per visible object.

    The object's world caption, indoors followed by "in a room" (the background shows it): the
    tiny CLAP's texts (:func:`a2i.synth.world_clap.world_texts`), joined by "and", which
    :class:`~a2i.build.sonify.concepts.CaptionConcepts`'s ``phrases`` rule splits at.
    """
    room = ROOM if spec.reverb else ""
    return " and ".join(f"{WORLD_CLASSES[s].caption}{room}" for s in spec.sources)


def distractor(rng: np.random.Generator, samples: int) -> tuple[np.ndarray, str, float]:
    """White, pink or brown noise at a loudness drawn from the world's gain range."""
    kind, slope = [("white", 0.0), ("pink", 1.0), ("brown", 2.0)][rng.integers(3)]
    spectrum = rng.standard_normal(samples // 2 + 1) + 1j * rng.standard_normal(samples // 2 + 1)
    frequencies = np.fft.rfftfreq(samples)
    frequencies[0] = frequencies[1]
    wave = np.fft.irfft(spectrum / frequencies ** (slope / 2), n=samples)
    gain_db = float(rng.uniform(-20.0, 10.0))
    wave *= REFERENCE_RMS * 10 ** (gain_db / 20) / wave.std()
    return np.clip(wave, -1.0, 1.0).astype(np.float32), kind, gain_db


def write_world(folder: Path, args: argparse.Namespace) -> None:
    """Step 1: images, their splits and concept captions, the pool and its ground truth."""
    recipe = {
        "images": args.images,
        "val_images": args.val_images,
        "pool": args.pool,
        "noise": args.noise,
        "image_seed": IMAGE_SEED,
        "pool_seed": POOL_SEED,
        "image_size": IMAGE_SIZE,
    }
    marker = folder / "world.json"
    if marker.is_file():
        found = json.loads(marker.read_text())
        if found != recipe:
            raise SystemExit(
                f"{folder} holds another world ({found}, asked for {recipe}): use another --out"
            )
        return
    world = SyntheticWorld(image_size=IMAGE_SIZE, seed=IMAGE_SEED)
    captions, splits = {}, ["key,split"]
    for split, count in (("train", args.images), ("val", args.val_images)):
        for index in range(count):
            spec = world.sample_spec(split, index)
            relative = f"{split}/{index:06d}.png"
            write_png(folder / "images" / relative, world.render_image(spec), overwrite=True)
            captions[folder_key(relative)] = concepts_of(spec)
            splits.append(f"{folder_key(relative)},{split}")
    (folder / "captions.json").write_text(json.dumps(captions, indent=0))
    (folder / "splits.csv").write_text("\n".join(splits) + "\n")
    pool = SyntheticWorld(clip_seconds=CLIP_SECONDS, seed=POOL_SEED, mixture_prob=0.0)
    truth = [("file", "kind", "text", "gain_db")]
    for index in range(args.pool):
        spec = pool.sample_spec("train", index)
        name = f"sounds/{index:06d}.wav"
        write_audio(folder / "pool" / name, pool.render_audio(spec), 16000, overwrite=True)
        truth.append((name, "world", text_of(spec), spec.gains_db[0]))
    rng = np.random.default_rng(POOL_SEED)
    for index in range(args.noise):
        wave, kind, gain_db = distractor(rng, pool.num_samples)
        name = f"noise/{index:06d}.wav"
        write_audio(folder / "pool" / name, torch.from_numpy(wave), 16000, overwrite=True)
        truth.append((name, f"{kind} noise", "", gain_db))
    with (folder / "pool.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(truth)
    marker.write_text(json.dumps(recipe))


def method_config(method: str) -> dict[str, Any]:
    """A tiny method config as a dict."""
    return yaml.safe_load((ROOT / METHODS[method][0]).read_text())


def data_config(out: Path, world: Path, method: str, args: argparse.Namespace) -> Path:
    """A data section that sonifies the world's images and serves them to ``method``.

    Every method's section writes the same shards (same images, pool, CLAP, recipe and cached
    features: Seeing Sound's AST tokens and VAE latents, §4.3); only what a batch delivers
    (clip length, batch size, workers) follows the method's own config.
    """
    seeing = method_config("seeing_sound")["model"]["init_args"]
    served = method_config(method)["data"]["init_args"]
    init_args = {
        "images": str(world / "images"),
        "layout": "folder",
        "split_file": str(world / "splits.csv"),
        "prepared": str(out / "sonified"),
        "pools": [{"class_path": "a2i.build.sonify.pool.AudioFolderPool",
                   "init_args": {"root": str(world / "pool")}}],
        "concepts": [{"class_path": "a2i.build.sonify.concepts.CaptionConcepts",
                      "init_args": {"captions": str(world / "captions.json"), "rule": "phrases",
                                    "max_concepts": 2}}],
        "clap": {"class_path": "a2i.encoders.audio.clap.ClapEncoder",
                 "init_args": {"preset": "tiny", "pretrained": CLAP}},
        "features": [
            {"class_path": "a2i.build.sonify.features.AudioTokensFeature",
             "init_args": {"encoder": seeing["audio_encoder"],
                           "clip_seconds": seeing["clip_seconds"]}},
            {"class_path": "a2i.build.prepare.LatentFeature",
             "init_args": {"autoencoder": {
                 "class_path": "a2i.generators.autoencoder.KLAutoencoder",
                 "init_args": {"preset": "tiny", "freeze": True,
                               "pretrained": seeing["generator"]["init_args"]["vae_pretrained"]}},
                 "image_size": IMAGE_SIZE}},
        ],
        "top_k": args.top_k,
        "lufs_range": list(args.lufs_range),
        "seed": 0,
        "chunk_seconds": CLIP_SECONDS,
        "frame_size": IMAGE_SIZE,
        "shard_size": 256,
        "prepare_workers": args.workers,
        "image_size": IMAGE_SIZE,
        "clip_seconds": served["clip_seconds"],
        "batch_size": served["batch_size"],
        "num_workers": served.get("num_workers", 0),
    }  # fmt: skip
    path = out / f"sonified_{method}.yaml"
    section = {"class_path": "a2i.data.sonify.datamodule.SonifiedImagesDataModule"}
    path.write_text(yaml.safe_dump({"data": {**section, "init_args": init_args}}))
    return path


def sonify(config: Path) -> None:
    """Step 2: ``a2i sonify`` (returns at once when the shards are complete)."""
    try:
        a2i(["sonify", "--config", str(config)])
    except SystemExit as stop:
        if stop.code:
            raise SystemExit(
                f"a2i sonify failed (status {stop.code}); see its problems.log"
            ) from None


def retrieval_report(out: Path, world: Path) -> str:
    """How often the retrieved clip is of the concept's class and room, and how often noise."""
    with (world / "pool.csv").open(newline="") as handle:
        truth = {row["file"]: row for row in csv.DictReader(handle)}
    counts: Counter[str] = Counter()
    for line in (out / "sonified" / "recipes.jsonl").read_text().splitlines():
        for source in json.loads(line)["recipe"]["sources"]:
            clip = truth[source["audio"].split("/", 1)[1]]
            wanted, found = source["concept"], clip["text"]
            counts["sources"] += 1
            counts["noise"] += clip["kind"] != "world"
            counts["class"] += found.removesuffix(ROOM) == wanted.removesuffix(ROOM)
            same_room = found.endswith(ROOM) == wanted.endswith(ROOM)
            counts["room"] += clip["kind"] == "world" and same_room
    total = max(counts["sources"], 1)
    return (
        f"Sonification: {counts['sources']} retrieved sources; right class "
        f"{counts['class'] / total:.3f}, right room {counts['room'] / total:.3f}, distractor "
        f"noise {counts['noise'] / total:.3f}.\n"
    )


def eval_config(out: Path, test_clips: int, control_scenes: int) -> str:
    """``configs/eval/world.yaml``, or a copy with fewer test clips or control scenes."""
    config = yaml.safe_load((ROOT / EVAL_CONFIG).read_text())
    evaluation = config["trainer"]["callbacks"][0]["init_args"]
    plugin = evaluation["plugins"][0]["init_args"]
    if (config["data"]["init_args"]["test_size"], plugin["control_scenes"]) == (
        test_clips,
        control_scenes,
    ):
        return EVAL_CONFIG
    config["data"]["init_args"]["test_size"] = test_clips
    plugin["control_scenes"] = control_scenes
    evaluation["diversity_inputs"] = min(evaluation["diversity_inputs"], test_clips)
    path = out / "eval_world.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def seeing_sound_ablations(ckpt: Path, title: str, scenes: int) -> str:
    """§4.5's loudness sweep and separated vs mixed sources of one Seeing Sound run, as Markdown."""
    pipeline = AudioToImagePipeline.from_run(ckpt)
    return markdown(title, loudness_sweep(pipeline, scenes), separated_vs_mixed(pipeline, scenes))


def step_args(method: str, steps: int | None) -> list[str]:
    """Same number of steps for both arms (validation at least once, at the end at the latest)."""
    if steps is None:
        return []
    interval = min(steps, method_config(method)["trainer"]["val_check_interval"])
    return ["--trainer.max_steps", str(steps), "--trainer.val_check_interval", str(interval)]


def main() -> None:
    """Write the world, sonify it, train both arms of each method, evaluate, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/sonified_world")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--images", type=int, default=8192, help="training images (both arms)")
    parser.add_argument("--val_images", type=int, default=256)
    parser.add_argument("--pool", type=int, default=2000, help="single-source world sounds")
    parser.add_argument("--noise", type=int, default=200, help="distractor noise clips")
    parser.add_argument("--top_k", type=int, default=50, help="k of the dynamic threshold")
    parser.add_argument("--lufs_range", type=float, nargs=2, default=[-52.0, -22.0])
    parser.add_argument("--workers", type=int, default=0, help="a2i sonify's mixing processes")
    parser.add_argument("--steps", type=int, help="training steps of every run (default: configs')")
    parser.add_argument("--test_clips", type=int, default=200, help="world test sounds scored")
    parser.add_argument("--control_scenes", type=int, default=40, help="scenes per sweep point")
    parser.add_argument("--table", help="also write the table to this Markdown file")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    world = out / "world"
    seconds: dict[str, tuple[float, float]] = {}

    def timed(name: str, run: Any) -> Any:
        wall, cpu = time.time(), time.process_time()
        result = run()
        seconds[name] = (time.time() - wall, time.process_time() - cpu)
        return result

    timed("world", lambda: write_world(world, args))
    configs = {method: data_config(out, world, method, args) for method in args.methods}
    timed("sonify", lambda: sonify(configs[args.methods[0]]))
    evaluation = eval_config(out, args.test_clips, args.control_scenes)
    rows, ablations = [], []
    for method in args.methods:
        config, title = METHODS[method]
        arm_args = {
            "true": ["--data.init_args.train_size", str(args.images)],
            "sonified": ["--config", str(configs[method])],
        }
        for arm, extra in arm_args.items():
            name = f"{method}_{arm}"
            fit = [*extra, *step_args(method, args.steps)]
            ckpt = timed(f"{name} fit", lambda n=name, c=config, f=fit: train(out, n, c, f))
            report = timed(
                f"{name} test",
                lambda n=name, c=config, k=ckpt: evaluate(out, n, c, [], k, evaluation),
            )
            rows.append((f"{title}, {ARMS[arm]}", report))
            if method == "seeing_sound":
                ablations.append(
                    timed(
                        f"{name} §4.5",
                        lambda k=ckpt, t=f"{title}, {ARMS[arm]}": seeing_sound_ablations(
                            k, t, args.control_scenes
                        ),
                    )
                )
    for name, (wall, cpu) in seconds.items():
        print(f"{name}: {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    compare_runs(rows, out=args.table)
    note = retrieval_report(out, world)
    if ablations:
        note += "\n### Seeing Sound §4.5 in the world, both arms\n\n" + "\n".join(ablations)
    print("\n" + note, end="")
    if args.table:
        with Path(args.table).open("a", encoding="utf-8") as handle:
            handle.write("\n" + note)


if __name__ == "__main__":
    main()
