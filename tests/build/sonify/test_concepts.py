"""Concept sources (captions, fixed files, VLM plumbing) and A.2's non-sonic caption filter."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub.constants
import pytest
import yaml

from a2i.build.sonify.build import SonifySettings, build_recipes, gather_concepts
from a2i.build.sonify.concepts import (
    CaptionConcepts,
    FixedConcepts,
    ImageConcepts,
    SoundingConcept,
    non_sonic_keyword,
    parse_vlm_answer,
)
from a2i.build.sonify.images import ImageItem
from a2i.build.sonify.pool import PoolFile, PoolReader
from a2i.build.sonify.vlm import (
    CONCEPT_PROMPT,
    VLMConceptSource,
    llava_conversation,
    read_prompt,
)
from a2i.errors import CheckpointNotFoundError, ConfigError, ManifestError


def image(key: str) -> ImageItem:
    return ImageItem(key, f"/images/{key}.jpg", f"{key}.jpg")


@pytest.mark.parametrize(
    ("caption", "word", "substring"),
    [
        ("A red stop sign on a pole", "sign", "sign"),
        ("The company LOGO printed on a mug", "logo", "logo"),
        ("icons on a phone screen", "icon", "icon"),
        ("a trademark and an emblem", "emblem", "emblem"),  # keyword order decides which is named
        ("a symbol of peace", "symbol", "symbol"),
        ("a designer chair in a signal box", None, "sign"),
        ("a dog barking in the rain", None, None),
        (None, None, None),
    ],
)
def test_the_non_sonic_caption_filter(caption, word, substring):
    assert non_sonic_keyword(caption) == word
    assert non_sonic_keyword(caption, match="substring") == substring


def test_one_flagging_caption_drops_the_image_for_every_source():
    """A.2 removes the image from the training data: a caption-less source (CogVLM without a
    caption prompt) must not sonify an image another source's caption flags."""

    class Named:  # build_recipes needs only each source's name
        def __init__(self, name):
            self.name = name

    sources = [Named("llava"), Named("cogvlm")]
    dog = [SoundingConcept("sound of a dog", audio="dog.wav")]
    concepts = {
        ("llava", "sa_1"): ImageConcepts("a logo of a dog", dog),
        ("cogvlm", "sa_1"): ImageConcepts(None, dog),
        ("llava", "sa_2"): ImageConcepts("a dog in a park", dog),
        ("cogvlm", "sa_2"): ImageConcepts(None, dog),
    }
    reader = PoolReader([PoolFile("pool/dog.wav", "/pool/dog.wav")])
    samples, dropped, _ = build_recipes(
        [image("sa_1"), image("sa_2")], sources, concepts, None, reader, None, SonifySettings()
    )
    assert [s.key for s in samples] == ["sa_2-llava", "sa_2-cogvlm"]
    assert [d["key"] for d in dropped] == ["sa_1-llava", "sa_1-cogvlm"]
    for row in dropped:
        assert row["problem"] == "non-sonic caption ('logo') from llava: a logo of a dog"


def test_caption_rules_cut_captions_into_concepts(tmp_path):
    path = tmp_path / "captions.csv"
    path.write_text('image,caption\nsa_1,"A dog, a car and rain. Birds sing!"\nsa_2,""\n')
    phrases = CaptionConcepts(str(path), template="the sound of {}")
    found = phrases.describe([image("sa_1"), image("sa_2"), image("sa_3")])
    assert [c.text for c in found[0].concepts] == [
        "the sound of A dog",
        "the sound of a car",
        "the sound of rain",
        "the sound of Birds sing",
    ]
    assert found[1].problem and found[2].problem == "no caption in captions.csv"
    assert CaptionConcepts(str(path), rule="whole").split("a b, c") == ["a b, c"]
    assert CaptionConcepts(str(path), rule="sentences").split("A dog. A car!") == ["A dog", "A car"]
    vocabulary = CaptionConcepts(str(path), rule="vocabulary", vocabulary=["dog", "rain", "cat"])
    assert vocabulary.split("A dog, a car and rain.") == ["dog", "rain"]
    with pytest.raises(ConfigError, match="vocabulary"):
        CaptionConcepts(str(path), rule="vocabulary")


def test_fixed_concept_files_in_the_released_format(tmp_path):
    path = tmp_path / "concepts.json"
    path.write_text(
        json.dumps(
            {
                "sa_1": [["dog: sound of a dog barking", "fsd50k/64760", -22.5, 0.41]],
                "sa_2": [{"concept": "rain", "audio": "37199", "lufs": -20.0, "chunk": 2}],
            }
        )
    )
    found = FixedConcepts(str(path)).describe([image("sa_1"), image("sa_2"), image("sa_3")])
    first = found[0].concepts[0]
    assert (first.name, first.audio, first.lufs, first.score) == (
        "dog",
        "fsd50k/64760",
        -22.5,
        0.41,
    )
    assert found[1].concepts[0].chunk == 2
    assert found[2].problem == "not listed in concepts.json"
    lines = tmp_path / "concepts.jsonl"
    lines.write_text(json.dumps({"image": "sa_1", "concepts": [["rain", None, None, None]]}) + "\n")
    assert FixedConcepts(str(lines)).describe([image("sa_1")])[0].concepts[0].audio is None
    path.write_text(json.dumps({"sa_1": [["dog", "x", 3.0, 0.1]]}))
    with pytest.raises(ManifestError, match="LUFS values are <= 0"):
        FixedConcepts(str(path))


def test_vlm_answers_become_concepts():
    answer = '1. dog: sound of a dog barking\n- "river: sound of water flowing"\n\nnone\nwind'
    concepts = parse_vlm_answer(answer, max_concepts=5)
    assert [(c.name, c.text) for c in concepts] == [
        ("dog", "sound of a dog barking"),
        ("river", "sound of water flowing"),
        ("", "wind"),
    ]
    assert len(parse_vlm_answer(answer, max_concepts=1)) == 1


def test_the_vlm_prompt_ships_and_reaches_the_conversation(tmp_path):
    prompt = read_prompt(CONCEPT_PROMPT)
    assert "visible and present in the image" in prompt
    conversation = llava_conversation(prompt)
    assert conversation[0]["content"] == [{"type": "image"}, {"type": "text", "text": prompt}]
    own = tmp_path / "prompt.txt"
    own.write_text("What sounds?\n")
    assert read_prompt(str(own)) == "What sounds?"
    with pytest.raises(ConfigError, match="does not exist"):
        read_prompt("no_such_prompt.txt")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({}, "llava-hf/llava-1.5-7b-hf"),
        ({"model": "THUDM/cogvlm-chat-hf", "family": "cogvlm", "trust_remote_code": True},
         "THUDM/cogvlm-chat-hf"),
    ],
)  # fmt: skip
def test_a_missing_vlm_checkpoint_is_one_clear_error(kwargs, named, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointNotFoundError) as info:
        VLMConceptSource(**kwargs)
    message = str(info.value)
    assert named in message and "VLMConceptSource.model" in message
    assert f"hf download {named}" in message and "not available offline" in message


def remote_code_checkpoint(folder: Path, marker: Path) -> Path:
    """A checkpoint folder whose own model code (``auto_map``) would create ``marker``."""
    folder.mkdir()
    auto_map = {"AutoConfig": "modeling.Config", "AutoModelForCausalLM": "modeling.Model"}
    (folder / "config.json").write_text(json.dumps({"auto_map": auto_map}))
    (folder / "modeling.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    return folder


@pytest.fixture
def cogvlm(tmp_path: Path) -> tuple[VLMConceptSource, Path]:
    """A CogVLM source (nothing allowed) on a crafted checkpoint, and the file its code writes."""
    marker = tmp_path / "remote_code_ran"
    model = remote_code_checkpoint(tmp_path / "cogvlm", marker)
    source = VLMConceptSource(str(model), family="cogvlm", tokenizer=str(model))
    return source, marker


def test_cogvlm_runs_its_checkpoints_code_only_when_the_user_allows_it(cogvlm):
    source, marker = cogvlm  # built without the opt-in: training on finished shards needs none
    with pytest.raises(ConfigError) as refused:
        source.setup("cpu")
    assert "--data.init_args.trust_remote_code true" in str(refused.value)
    assert source.model_spec in str(refused.value)
    assert not marker.exists()


def test_remote_code_is_refused_before_any_source_describes_an_image(cogvlm, tmp_path):
    source, marker = cogvlm
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({"sa_1": "a dog barking"}))
    concepts = tmp_path / "out" / "concepts.jsonl"
    with pytest.raises(ConfigError, match="trust_remote_code"):
        gather_concepts([image("sa_1")], [CaptionConcepts(str(captions)), source], concepts)
    assert not concepts.exists() and not marker.exists()


def allows_remote_code(value: object) -> bool:
    """Whether a parsed config sets ``trust_remote_code: true`` anywhere."""
    if isinstance(value, dict):
        return value.get("trust_remote_code") is True or any(
            map(allows_remote_code, value.values())
        )
    return isinstance(value, list) and any(map(allows_remote_code, value))


def test_no_shipped_config_allows_remote_code():
    configs = Path(__file__).resolve().parents[3] / "configs"
    allowing = [
        p.name for p in configs.rglob("*.yaml") if allows_remote_code(yaml.safe_load(p.read_text()))
    ]
    assert allowing == []


def test_concepts_of_a_killed_run_are_kept_and_its_cut_line_is_redone(tmp_path):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps({f"sa_{i}": f"a dog and rain {i}" for i in range(5)}))
    source = CaptionConcepts(str(path))
    source.batch_size = 2
    images = [image(f"sa_{i}") for i in range(5)]
    whole = gather_concepts(images, [source], tmp_path / "whole.jsonl", progress=False)
    lines = (tmp_path / "whole.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "cut.jsonl").write_text("".join(lines[:3]) + lines[3][:10])
    resumed = gather_concepts(images, [source], tmp_path / "cut.jsonl", progress=False)
    assert resumed == whole
    assert (tmp_path / "cut.jsonl").read_text() == "".join(lines)


def test_an_image_the_vlm_cannot_read_is_a_failure_and_its_batch_goes_on(tmp_path, monkeypatch):
    """A truncated JPEG stopped the whole VLM pass with a traceback (PIL's own error)."""
    from PIL import Image

    model = tmp_path / "llava"
    model.mkdir()
    (model / "config.json").write_text("{}")
    source = VLMConceptSource(str(model), family="llava", caption_prompt=None)
    monkeypatch.setattr(source, "setup", lambda device: None)
    asked = []
    monkeypatch.setattr(source, "ask", lambda pictures, prompt: asked.append(pictures) or ["dog"])
    good, broken = tmp_path / "sa_1.png", tmp_path / "sa_2.jpg"
    Image.new("RGB", (8, 8), "red").save(good)
    Image.new("RGB", (64, 64), "red").save(broken)
    broken.write_bytes(broken.read_bytes()[:200])
    images = [ImageItem("sa_1", str(good), good.name), ImageItem("sa_2", str(broken), broken.name)]
    found = source.describe(images)
    assert [c.text for c in found[0].concepts] == ["dog"] and not found[0].failed
    assert found[1].failed and not found[1].concepts and len(asked[0]) == 1
    assert ImageConcepts.from_dict(found[1].to_dict()) == found[1]  # concepts.jsonl keeps it
    concepts = {("llava", "sa_2"): found[1]}  # (the readable image needs retrieval)
    _, dropped, _ = build_recipes(
        images[1:], [source], concepts, None, PoolReader([]), None, SonifySettings()
    )
    assert dropped == [
        {"key": "sa_2", "image": "sa_2.jpg", "problem": found[1].problem, "failed": True}
    ]
