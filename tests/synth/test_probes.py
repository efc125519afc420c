"""make demo's check of a prediction folder: the labelled object, and one of the scene's own."""

from pathlib import Path

import pytest

from a2i.pipelines.writer import ImageFolderWriter
from a2i.synth.judge import WorldJudge
from a2i.synth.probes import score_prediction_folder
from a2i.synth.world import SceneSpec, SyntheticWorld


def test_a_mix_drawing_its_quieter_source_counts_as_its_own_object_not_the_label(tmp_path: Path):
    world = SyntheticWorld(image_size=32)
    # Two single-source scenes drawn right; a mix of classes 1 (louder) and 2 drawn as class 2.
    drawn = {
        "a.wav": SceneSpec(sources=(3,), gains_db=(0.0,), reverb=False, seed=1),
        "b.wav": SceneSpec(sources=(5,), gains_db=(0.0,), reverb=False, seed=2),
        "mix.wav": SceneSpec(sources=(2,), gains_db=(0.0,), reverb=False, seed=3),
    }
    sources = {"a.wav": [3], "b.wav": [5], "mix.wav": [1, 2]}
    labels = {key: classes[0] for key, classes in sources.items()}
    with ImageFolderWriter(tmp_path / "images", {"seeds": [0]}) as writer:
        keys = list(drawn)
        images = [world.render_image(drawn[key]).unsqueeze(0) for key in keys]
        writer.write(keys, images, [""] * len(keys))

    scores = score_prediction_folder(str(tmp_path / "images"), labels, WorldJudge.load(), sources)

    assert scores["images"] == 3
    assert scores["class_accuracy"] == pytest.approx(2 / 3)
    assert scores["source_accuracy"] == 1.0
    assert scores["single_source_accuracy"] == 1.0
    assert (scores["mixture_louder_accuracy"], scores["mixture_either_accuracy"]) == (0.0, 1.0)
    assert scores["chance"] == pytest.approx((1 + 1 + 2) / (3 * 10))
