"""FID / KID / IS against hand computations on a fixed feature network; Inception's missing file."""

import numpy as np
import pytest
import torch
from scipy import linalg

from a2i.errors import CheckpointNotFoundError
from a2i.metrics.image_quality import INCEPTION_WEIGHTS, ImageQuality, InceptionFeatures


class PixelMeans(torch.nn.Module):
    """Features = fixed projection of per-channel means; logits = given per-image class scores."""

    num_features = 3

    def __init__(self) -> None:
        super().__init__()
        self.projection = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.5], [0.5, 0.0, 1.0]])

    def features(self, images):
        return images.mean(dim=(2, 3)) @ self.projection

    def logits(self, images):
        # Class = the channel that is brightest: a confident 3-class "classifier".
        return 50.0 * images.mean(dim=(2, 3))


def images_from(generator, count, scale=1.0, shift=0.0):
    return (0.5 + shift + 0.1 * scale * torch.randn(count, 3, 4, 4, generator=generator)).clamp(
        0, 1
    )


def frechet(a, b):
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_fid_of_a_set_against_itself_is_zero_and_matches_the_closed_form():
    generator = torch.Generator().manual_seed(0)
    real, fake = images_from(generator, 64), images_from(generator, 64, scale=2.0, shift=0.1)
    backbone = PixelMeans()
    same = ImageQuality(backbone, kid_subset_size=32)
    same.update_real(real)
    same.update_fake(real)
    result = same.compute()
    assert abs(result["fid"]) < 1e-3 and abs(result["kid"]) < 1e-3
    other = ImageQuality(backbone, kid_subset_size=32)
    other.update_real(real)
    other.update_fake(fake)
    expected = frechet(
        backbone.features(real).double().numpy(), backbone.features(fake).double().numpy()
    )
    assert other.compute()["fid"] == pytest.approx(expected, rel=1e-3)


def test_inception_score_of_confident_uniform_and_of_identical_predictions():
    eye = torch.eye(3)[:, :, None, None].expand(3, 3, 4, 4)  # image c is pure channel c
    uniform = ImageQuality(PixelMeans(), is_splits=1)
    uniform.update_fake(eye.repeat(4, 1, 1, 1))
    assert uniform.compute()["is"] == pytest.approx(3.0, rel=1e-3)
    single = ImageQuality(PixelMeans(), is_splits=1)
    single.update_fake(eye[:1].repeat(6, 1, 1, 1))
    assert single.compute()["is"] == pytest.approx(1.0, rel=1e-3)


def test_small_sets_do_not_crash():
    generator = torch.Generator().manual_seed(1)
    metric = ImageQuality(PixelMeans())  # KID subset 1000, IS 10 splits: clamped
    metric.update_real(images_from(generator, 5))
    metric.update_fake(images_from(generator, 3))
    result = metric.compute()
    assert np.isfinite([result["fid"], result["kid"], result["is"]]).all()
    lonely = ImageQuality(PixelMeans())
    lonely.update_fake(images_from(generator, 1))
    with pytest.warns(UserWarning, match="at least 2"):
        result = lonely.compute()
    assert np.isnan(result["fid"]) and np.isnan(result["kid"]) and result["is"] == pytest.approx(1)


def test_missing_inception_weights_name_the_file_and_url(tmp_path, monkeypatch):
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(fidelity, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setenv("A2I_CACHE", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # the bare name must not resolve to a file in the cwd either
    with pytest.raises(CheckpointNotFoundError) as info:
        InceptionFeatures()
    message = str(info.value)
    assert INCEPTION_WEIGHTS in message and "github.com/toshas/torch-fidelity" in message


def test_inception_features_load_a_tensors_only_file_and_give_fid_shapes(tmp_path, monkeypatch):
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity

    # Build torch-fidelity's network once with random weights (no download) to write a file.
    monkeypatch.setattr(fidelity, "load_state_dict_from_url", lambda *a, **k: None)
    monkeypatch.setattr(fidelity.FeatureExtractorInceptionV3, "load_state_dict", lambda *a: None)
    random = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    monkeypatch.undo()
    path = tmp_path / INCEPTION_WEIGHTS
    torch.save(torch.nn.Module.state_dict(random), path)
    network = InceptionFeatures(str(path))
    network.train()
    assert not network.network.training and not any(p.requires_grad for p in network.parameters())
    images = torch.rand(2, 3, 64, 64)
    assert network.features(images).shape == (2, 2048)
    assert network.logits(images).shape == (2, 1008)
