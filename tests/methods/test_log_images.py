"""Every trainer's ``log_images`` (the TensorBoard grids) on a world batch, built from its config.

The methods are those of tests/conf/ (as :mod:`tests.methods.test_contract`), the stage-1
trainers those of configs/tiny/ whose model is a pre-training.
"""

from pathlib import Path

import pytest
import torch
import yaml
from jsonargparse import ArgumentParser

from a2i.data.base import AudioVisualDataModule
from a2i.methods.base import A2IMethod, AudioToImageMethod

ROOT = Path(__file__).resolve().parents[2]


def model_class(path: Path) -> str:
    return (yaml.safe_load(path.read_text()) or {}).get("model", {}).get("class_path", "")


CONFIGS = [
    str(path.relative_to(ROOT))
    for path in sorted((ROOT / "tests" / "conf").glob("*.yaml"))
    + sorted((ROOT / "configs" / "tiny").glob("*.yaml"))
    if model_class(path) and (path.parent.name == "conf" or ".pretraining." in model_class(path))
]


def build(config: str) -> tuple[A2IMethod, dict]:
    sections = yaml.safe_load((ROOT / config).read_text())
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(A2IMethod, "model")
    parser.add_subclass_arguments(AudioVisualDataModule, "data")
    data = sections["data"]
    data["init_args"] = {**data["init_args"], "batch_size": 2, "train_size": 2}
    for key in ("val_size", "test_size"):
        data["init_args"][key] = 2
    init = parser.instantiate_classes(
        parser.parse_object({"model": sections["model"], "data": data})
    )
    init.data.setup("fit")
    return init.model.eval(), next(iter(init.data.train_dataloader()))


@pytest.mark.parametrize("config", CONFIGS)
def test_log_images_returns_image_stacks(config):
    torch.manual_seed(0)
    model, batch = build(config)
    if type(model).log_images is A2IMethod.log_images:
        pytest.skip(f"{type(model).__name__} draws no images")
    if isinstance(model, AudioToImageMethod):
        model.step(batch, "train")  # seen the batch once (the retrieval baseline's bank fills)
    with torch.no_grad():
        grids = model.log_images(batch)
    assert grids, f"{config}: no grids"
    for name, images in grids.items():
        assert images.dim() == 4 and images.shape[1] == 3, name
        assert images.shape[0] == 2, name
        assert 0.0 <= images.min() and images.max() <= 1.0, name
