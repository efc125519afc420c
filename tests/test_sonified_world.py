"""benchmarks/sonified_world.py: the world's concepts are the tiny CLAP's texts; one set of shards."""

import argparse
import json

import yaml

from a2i.build.sonify.concepts import CaptionConcepts
from a2i.build.sonify.images import ImageItem
from a2i.synth.world import SceneSpec, SyntheticWorld
from a2i.synth.world_clap import world_texts


def test_each_object_becomes_one_concept_worded_as_the_clap_learned_it(load_benchmark, tmp_path):
    benchmark = load_benchmark("sonified_world")
    world = SyntheticWorld(seed=0)
    specs = [world.sample_spec("train", index) for index in range(200)]
    specs.append(SceneSpec((3, 7), (0.0, -5.0), True, 1))
    captions = {f"k{i}": benchmark.concepts_of(spec) for i, spec in enumerate(specs)}
    (tmp_path / "captions.json").write_text(json.dumps(captions))
    source = CaptionConcepts(str(tmp_path / "captions.json"), rule="phrases", max_concepts=2)
    found = source.describe([ImageItem(key, "", f"{key}.png") for key in captions])
    texts = world_texts()
    assert {len(spec.sources) for spec in specs} == {1, 2}
    for spec, concepts in zip(specs, found, strict=True):
        wanted = [texts[s + len(texts) // 2 * spec.reverb] for s in spec.sources]
        assert [c.text for c in concepts.concepts] == wanted


def test_every_method_reads_the_same_shards(load_benchmark, tmp_path):
    benchmark = load_benchmark("sonified_world")
    args = argparse.Namespace(top_k=50, lufs_range=[-52.0, -22.0], workers=0)
    sections = [
        yaml.safe_load(benchmark.data_config(tmp_path, tmp_path / "world", m, args).read_text())
        for m in benchmark.METHODS
    ]
    served = ("clip_seconds", "batch_size", "num_workers")
    recipes = [
        {k: v for k, v in s["data"]["init_args"].items() if k not in served} for s in sections
    ]
    assert recipes[0] == recipes[1]
    assert [s["data"]["init_args"]["clip_seconds"] for s in sections] == [4.0, 2.0]
