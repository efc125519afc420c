"""The method contract (:mod:`a2i.methods.base`), checked on every method config in tests/conf/.

Each method is trained for two steps through the real CLI, then read back from its run: images do
not depend on the batch, seeds decide them, an export round-trips, ``log_images`` draws valid
images, and a control the method does not support is refused by name. A new method is covered by
adding its tiny config to tests/conf/.
"""

from pathlib import Path

import pytest
import torch
import yaml

from a2i.cli import main
from a2i.errors import ConfigError
from a2i.interfaces import AUDIO, IMAGE, KEY, GenerationRequest
from a2i.pipelines import AudioToImagePipeline

ROOT = Path(__file__).resolve().parents[2]
METHOD_CONFIGS = sorted(
    path
    for path in (ROOT / "tests" / "conf").glob("*.yaml")
    if "model" in (yaml.safe_load(path.read_text()) or {})
)
CONTROL_ARGUMENTS = {
    "gain": {"gain_db": 6.0},
    "mix": {"mix_with": [torch.zeros(8000)]},
    "image_blend": {"image": torch.rand(3, 32, 32)},
    "prompt": {"prompt": "a drawing of <audio>"},
    "guidance_scale": {"guidance_scale": 2.0},
    "num_inference_steps": {"num_inference_steps": 2},
}
"""Pipeline arguments that ask for each :data:`~a2i.interfaces.Control`."""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=METHOD_CONFIGS, ids=lambda path: path.stem)
def run(request, tmp_path_factory) -> Path:
    """The run folder of a two-step ``a2i fit`` of the config."""
    logs = tmp_path_factory.mktemp(request.param.stem)
    main(["fit", "--config", str(request.param), "--trainer.logger.init_args.save_dir", str(logs)])
    (config,) = logs.rglob("config.yaml")
    return config.parent


@pytest.fixture(scope="module")
def pipeline(run) -> AudioToImagePipeline:
    return AudioToImagePipeline.from_run(run)


def seeds(*values: int) -> GenerationRequest:
    return GenerationRequest(seeds=values)


def clips(pipeline: AudioToImagePipeline, count: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(7)
    return 0.1 * torch.randn(count, pipeline.num_samples, generator=generator)


def test_images_depend_on_their_row_and_seed_only(pipeline):
    model, audio = pipeline.model, clips(pipeline)
    together = model.generate_from_audio(audio, seeds(0, 1))
    assert together.shape == (3, 2, 3, model.image_size, model.image_size)
    assert 0.0 <= together.min() and together.max() <= 1.0
    for row in range(3):
        alone = model.generate_from_audio(audio[row : row + 1], seeds(1, 0))
        torch.testing.assert_close(alone[0, 1], together[row, 0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(alone[0, 0], together[row, 1], atol=1e-5, rtol=1e-4)


def test_seeds_decide_the_images(pipeline):
    model, audio = pipeline.model, clips(pipeline)
    first = model.generate_from_audio(audio, seeds(0, 1, 2, 3))
    assert torch.equal(first, model.generate_from_audio(audio, seeds(0, 1, 2, 3)))
    assert any(not torch.equal(first[:, 0], first[:, seed]) for seed in (1, 2, 3))


def test_run_export_round_trip_draws_identical_images(pipeline, tmp_path):
    saved = pipeline.save_pretrained(tmp_path / "export")
    again = AudioToImagePipeline.from_pretrained(saved)
    audio = clips(pipeline)
    assert torch.equal(
        pipeline.model.generate_from_audio(audio, seeds(4)),
        again.model.generate_from_audio(audio, seeds(4)),
    )


def test_log_images_are_image_stacks_in_the_unit_range(pipeline):
    model, audio = pipeline.model, clips(pipeline, 2)
    batch = {AUDIO: audio, IMAGE: torch.rand(2, 3, 32, 32), KEY: ["a", "b"]}
    grids = model.log_images(batch)
    assert grids, "no grids"
    for name, images in grids.items():
        assert images.dim() == 4 and images.shape[:2] == (2, 3), name
        assert 0.0 <= images.min() and images.max() <= 1.0, name


def test_unsupported_controls_are_refused_by_name(pipeline):
    """By the pipeline before decoding, and by the model itself when called directly."""
    audio = clips(pipeline, 1)
    refused = sorted(set(CONTROL_ARGUMENTS) - set(pipeline.model.supports))
    for control in refused:
        with pytest.raises(ConfigError, match=control):
            pipeline(audio, **CONTROL_ARGUMENTS[control])
        request = GenerationRequest(**CONTROL_ARGUMENTS[control])
        with pytest.raises(ConfigError, match=control):
            pipeline.model.generate_from_audio(audio, request)
