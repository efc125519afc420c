"""The evaluation flags a backbone the scored method steers with (issue 26 item 3)."""

import logging
from pathlib import Path

import yaml
from torch import nn

from a2i.callbacks.evaluation import Evaluation
from a2i.encoders.audio.resnet_spectrogram import SpectrogramResNet
from a2i.encoders.image.scorers import CLIPScorer
from a2i.encoders.image.vision_language import OpenCLIPVisionLanguage
from a2i.metrics.report import markdown_report
from a2i.metrics.steering import shared_weight_fraction
from a2i.synth.eval_backbones import AUDIO_TOWER

ROOT = Path(__file__).resolve().parents[2]


def _config(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text())


def steering_model() -> dict:
    """The frozen image tower tiny WavBriVL reranks and guides with."""
    return _config("configs/tiny/wavbrivl.yaml")["model"]["init_args"]["image_encoder"]["init_args"]


def world_clip() -> dict:
    """The CLIP of the world evaluation (R@k, IIS, AIS)."""
    evaluation = _config("configs/eval/world.yaml")["trainer"]["callbacks"][0]
    return evaluation["init_args"]["clip"]["init_args"]


def wavbrivl_like(steering: dict) -> nn.Module:
    """A method holding the steering tower and an unrelated audio encoder."""
    return nn.ModuleDict(
        {
            "image_encoder": OpenCLIPVisionLanguage(**steering),
            "audio": SpectrogramResNet(**AUDIO_TOWER),
        }
    )


def test_the_report_flags_an_evaluation_clip_the_method_steers_with(caplog):
    method = wavbrivl_like(steering_model())
    shared = CLIPScorer(preset="tiny", pretrained=steering_model()["pretrained"])
    evaluation = Evaluation(clip=shared)
    with caplog.at_level(logging.WARNING, logger="a2i.callbacks.evaluation"):
        overlap = evaluation._steering_overlap(method)
    assert overlap["clip"]["shared_weights"] == 1.0
    assert "clip_r@k" in overlap["clip"]["metrics"] and "iis" in overlap["clip"]["metrics"]
    assert "Evaluation.clip shares 100% of its weights with the ModuleDict" in caplog.text
    report = markdown_report({"run": {}, "metrics": {}, "steering_model_overlap": overlap})
    assert "- clip: 100% of its weights; suspect: clip_r@k, iis" in report


def test_the_world_evaluation_clip_is_not_the_tiny_towers_steering_model():
    steering, evaluating = steering_model(), world_clip()
    assert steering["pretrained"] != evaluating["pretrained"]
    method = wavbrivl_like(steering)
    assert shared_weight_fraction(CLIPScorer(**evaluating), method) == 0.0
    assert Evaluation(clip=CLIPScorer(**evaluating))._steering_overlap(method) == {}


def test_small_and_constant_tensors_never_count_as_shared():
    first, second = nn.Linear(4, 4), nn.LayerNorm(512)
    assert shared_weight_fraction(second, nn.LayerNorm(512)) == 0.0  # ones and zeros only
    assert shared_weight_fraction(first, nn.Linear(4, 4)) == 0.0  # 16 weights: below the floor
