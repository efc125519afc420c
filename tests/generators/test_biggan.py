from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from a2i.errors import CheckpointNotFoundError, ConfigError
from a2i.generators.biggan import BigGANGenerator, convert_biggan_pytorch_state_dict
from a2i.pretrained import save_module

SN_SUFFIX = ".parametrizations.weight.original"


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def gan() -> BigGANGenerator:
    torch.manual_seed(0)
    return BigGANGenerator(preset="tiny")


def to_biggan_pytorch(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Write an a2i generator network state dict in BigGAN-PyTorch's layout (IC-GAN's G_ema)."""
    exported = {"shared.weight": torch.zeros(1000, 128)}
    for key, value in state.items():
        if key.endswith(SN_SUFFIX):
            module = key.removesuffix(SN_SUFFIX)
            exported[f"{module}.weight"] = value
            exported[f"{module}.u0"] = state[f"{module}.parametrizations.weight.0._u"][None]
            exported[f"{module}.sv0"] = torch.ones(1)
        elif "parametrizations" in key or key.endswith("num_batches_tracked"):
            continue
        elif key.startswith("output_layer.0."):
            renamed = {"weight": "gain", "running_mean": "stored_mean", "running_var": "stored_var"}
            name = key.removeprefix("output_layer.0.")
            exported[f"output_layer.0.{renamed.get(name, name)}"] = value
        else:
            exported[
                key.replace(".norm.running_mean", ".stored_mean").replace(
                    ".norm.running_var", ".stored_var"
                )
            ] = value
    return exported


def test_generate_shape_range_and_seeding(gan, conditions):
    gan.eval()
    first = gan.generate(conditions, seeded(0))
    assert first.shape == (8, 3, 32, 32)
    assert first.min() >= 0 and first.max() <= 1
    assert torch.equal(first, gan.generate(conditions, seeded(0)))
    assert not torch.equal(first, gan.generate(conditions, seeded(1)))


def test_a_row_drawn_with_its_own_generator_does_not_depend_on_its_batch(gan, conditions):
    gan.eval()
    seeds = [3, 1, 4, 1]
    batch = gan.generate(conditions[:4], [seeded(s) for s in seeds])
    for row, seed in enumerate(seeds):
        alone = gan.generate(conditions[row : row + 1], [seeded(seed)])
        assert torch.allclose(batch[row : row + 1], alone, atol=1e-6)
    with pytest.raises(ValueError, match="3 generators given for a batch of 4 rows"):
        gan.generate(conditions[:4], [seeded(s) for s in seeds[:3]])


@pytest.mark.parametrize("training", [True, False])
def test_generate_never_touches_the_discriminator(gan, conditions, training):
    def forbid(module, inputs):
        raise AssertionError("generate() ran the discriminator")

    gan.train(training)
    gan.discriminator.register_forward_pre_hook(forbid)
    gan.generate(conditions, seeded(0))
    with pytest.raises(AssertionError, match="ran the discriminator"):
        gan.discriminator_loss(torch.rand(8, 3, 32, 32), conditions)


def test_hinge_loss_parts(gan, scenes, conditions):
    gan.eval()  # fixed spectral-norm vectors and batch-norm statistics: D is deterministic
    torch.manual_seed(0)
    parts = gan.discriminator_loss(scenes, conditions)
    assert set(parts) == {"loss", "real", "fake", "real_score", "fake_score"}
    assert torch.allclose(parts["loss"], parts["real"] + parts["fake"])
    real_scores = gan.discriminator(scenes * 2 - 1, conditions)
    assert real_scores.shape == (8,)
    assert torch.allclose(parts["real"], F.relu(1 - real_scores).mean(), atol=1e-5)
    torch.manual_seed(0)
    fake = gan.network(torch.randn(8, gan.noise_dim), conditions)
    assert torch.allclose(
        parts["fake"], F.relu(1 + gan.discriminator(fake, conditions)).mean(), atol=1e-5
    )

    gan.adversarial_weight, gan.reconstruction_weight = 0.5, 2.0
    parts = gan.generator_loss(scenes, conditions)
    expected = 0.5 * parts["adversarial"] + 2.0 * parts["reconstruction"]
    assert torch.allclose(parts["loss"], expected)
    assert parts["loss"].requires_grad
    gan.reconstruction_weight = 0.0
    assert set(gan.generator_loss(scenes, conditions)) == {"loss", "adversarial"}
    gan.adversarial_weight, gan.reconstruction_weight = 0.0, 1.0
    gan.discriminator.register_forward_pre_hook(lambda module, inputs: pytest.fail("D ran"))
    assert set(gan.generator_loss(scenes, conditions)) == {"loss", "reconstruction"}


def test_generator_steps_reduce_the_reconstruction_term(gan, scenes, conditions, train):
    gan.adversarial_weight = 0.0  # an untrained D's scores would dominate the first steps

    def reconstruction() -> float:
        torch.manual_seed(11)
        return float(gan.generator_loss(scenes, conditions)["reconstruction"])

    before = reconstruction()
    adam = {"lr": 2e-3, "betas": (0.0, 0.999)}
    train(lambda: gan.generator_loss(scenes, conditions), gan.generator_parameters(), **adam)
    assert reconstruction() < 0.8 * before


def test_adversarial_interface(gan, scenes, conditions):
    generator_ids = {id(p) for p in gan.generator_parameters()}
    assert generator_ids.isdisjoint(id(p) for p in gan.discriminator.parameters())
    assert generator_ids == {id(p) for p in gan.network.parameters()}
    with pytest.raises(TypeError, match="adversarial"):
        gan.training_losses(scenes, conditions)


def test_paper_preset_has_icgan_shapes_and_names():
    with torch.device("meta"):
        gan = BigGANGenerator(preset="paper")
    assert sum(p.numel() for p in gan.network.parameters()) == 77_032_132
    assert sum(p.numel() for p in gan.discriminator.parameters()) == 89_593_634
    exported = to_biggan_pytorch(gan.network.state_dict())
    # Shapes that follow from facebookresearch/ic_gan BigGAN_PyTorch/BigGAN.py with
    # icgan_res128.json: G_ch 96, dim_z 120 over 6 slots, shared_dim_feat 512, attention at 64.
    expected = {
        "shared_feat.weight": (512, 2048),
        "shared_feat.u0": (1, 512),
        "linear.weight": (16 * 96 * 4 * 4, 20),
        "blocks.0.0.bn1.gain.weight": (16 * 96, 512 + 20),
        "blocks.0.0.bn1.stored_mean": (16 * 96,),
        "blocks.0.0.conv_sc.weight": (16 * 96, 16 * 96, 1, 1),
        "blocks.3.1.theta.weight": (2 * 96 // 8, 2 * 96, 1, 1),
        "blocks.3.1.gamma": (),
        "output_layer.0.gain": (96,),
        "output_layer.2.weight": (3, 96, 3, 3),
    }
    assert {key: tuple(exported[key].shape) for key in expected} == expected
    assert len(gan.network.blocks) == 5 and len(gan.discriminator.blocks) == 6
    assert len(gan.discriminator.blocks[0]) == 2  # attention after the 64 px block


def test_spectral_norm_conversion_matches_biggan_pytorch_at_eval():
    torch.manual_seed(0)
    for out_features, in_features in [(5, 7), (7, 5)]:
        weight = torch.randn(out_features, in_features)
        u0 = torch.randn(1, out_features)
        # BigGAN-PyTorch layers.SN.W_ in eval: one power step from u0, no update.
        v = F.normalize(u0 @ weight)
        u = F.normalize(v @ weight.t())
        sigma = ((v @ weight.t()) @ u.t()).squeeze()
        layer = spectral_norm(nn.Linear(in_features, out_features, bias=False)).eval()
        converted = convert_biggan_pytorch_state_dict({"layer.weight": weight, "layer.u0": u0})
        layer.load_state_dict({key.removeprefix("layer."): v for key, v in converted.items()})
        assert torch.allclose(layer.weight, weight / sigma, atol=1e-6)


def test_icgan_state_dict_loads_and_reproduces_the_network(tmp_path, gan, conditions):
    for module in gan.network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    for stage in gan.network.blocks:
        for layer in stage:
            if hasattr(layer, "gamma"):
                layer.gamma.data.fill_(0.3)
    path = tmp_path / "G_ema_best0.pth"
    torch.save(to_biggan_pytorch(gan.network.state_dict()), path)
    loaded = BigGANGenerator(preset="tiny", pretrained=str(path)).eval()
    assert torch.allclose(
        loaded.generate(conditions, seeded(3)),
        gan.eval().generate(conditions, seeded(3)),
        atol=1e-5,
    )


def test_class_conditional_icgan_state_dict_is_refused(tmp_path, gan):
    state = to_biggan_pytorch(gan.network.state_dict())
    weight = state["blocks.0.0.bn1.gain.weight"]
    state["blocks.0.0.bn1.gain.weight"] = torch.cat([weight, torch.zeros(weight.shape[0], 128)], 1)
    path = tmp_path / "cc_G_ema.pth"
    torch.save(state, path)
    with pytest.raises(ConfigError, match="cc_IC-GAN"):
        BigGANGenerator(preset="tiny", pretrained=str(path))


def test_safetensors_round_trip_gives_identical_images(tmp_path, gan, conditions):
    path = tmp_path / "biggan.safetensors"
    save_module(gan, path)
    loaded = BigGANGenerator(preset="tiny", pretrained=str(path), freeze=True)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert torch.equal(
        loaded.generate(conditions, seeded(9)), gan.eval().generate(conditions, seeded(9))
    )


def test_missing_checkpoint_names_field_and_download(tmp_path):
    with pytest.raises(CheckpointNotFoundError) as error:
        BigGANGenerator(preset="tiny", pretrained=str(tmp_path / "G_ema_best0.pth"))
    message = str(error.value)
    assert "G_ema_best0.pth" in message and "'BigGANGenerator.pretrained'" in message
    assert "dl.fbaipublicfiles.com/ic_gan" in message


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"image_size": 48}, "image_size"),
        ({"noise_dim": 30}, "noise_dim"),
        ({"adversarial_weight": 0.0, "reconstruction_weight": 0.0}, "reconstruction_weight"),
    ],
)
def test_invalid_configurations_name_the_field(arguments, field):
    with pytest.raises(ConfigError, match=field):
        BigGANGenerator(preset="tiny", **arguments)


def test_rejects_conditions_of_the_wrong_size(gan):
    with pytest.raises(ConfigError, match=r"\(B, 64\)"):
        gan.generate(torch.zeros(2, 32))


def test_weights_of_another_preset_are_refused_with_the_field(tmp_path):
    path = tmp_path / "narrow.safetensors"
    save_module(BigGANGenerator(preset="tiny", channels=4), path)
    with pytest.raises(ConfigError, match=r"field 'BigGANGenerator\.pretrained'.*a2i BigGAN"):
        BigGANGenerator(preset="tiny", pretrained=str(path))
