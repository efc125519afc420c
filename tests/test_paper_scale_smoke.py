"""The cheapest paper config at full size (random weights): one training step and one image."""

import math

import pytest


def test_configs_switch_to_random_paper_presets_without_downloads(load_benchmark):
    smoke = load_benchmark("paper_scale_smoke")
    model = smoke.random_paper_weights(
        {
            "class_path": "a2i.methods.sound2vision.Sound2Vision",
            "init_args": {
                "image_encoder": {
                    "class_path": "a2i.encoders.image.resnet.ResNetImageEncoder",
                    "init_args": {"pretrained": "swav_800ep_pretrain.pth.tar", "freeze": True},
                },
                "loss": "nce_l2",
            },
        }
    )
    encoder = model["init_args"]["image_encoder"]["init_args"]
    assert encoder == {"freeze": True, "preset": "paper"}
    assert "preset" not in model["init_args"]  # the method itself has no presets


@pytest.mark.slow
def test_sound2vision_gan_at_paper_scale_trains_a_step_and_draws_an_image(load_benchmark):
    row = load_benchmark("paper_scale_smoke").run_one("configs/sound2vision_gan.yaml", steps=2)
    assert row["image_shape"] == [1, 1, 3, 128, 128]  # IC-GAN's 128 px
    assert math.isfinite(row["loss"])
    assert row["parameters_M"] > 100  # ResNet-18 + ResNet-50 + BigGAN, not a tiny preset
