"""WavBriVL's towers: the WavLM audio tower (§2.3) and BriVL's image tower with its released layout."""

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from a2i.encoders.audio.wavlm_tower import WavLMTower
from a2i.encoders.image.brivl import BriVLImageEncoder
from a2i.errors import CheckpointNotFoundError, ConfigError
from a2i.modules.layer_weights import SoftmaxLayerWeights
from a2i.pretrained import save_module


def tiny_tower(**kwargs):
    args = {
        "preset": "tiny",
        "wavlm_layers": 2,
        "embed_dim": 16,
        "clip_seconds": 0.25,
        "num_layers": 1,
        "feedforward_dim": 32,
    }
    return WavLMTower(**{**args, **kwargs})


def test_learned_layer_weights_sum_to_one_and_average_by_them():
    weights = SoftmaxLayerWeights(3)
    assert torch.allclose(weights.weights, torch.full((3,), 1 / 3))  # starts as the plain mean
    with torch.no_grad():
        weights.logits.copy_(torch.tensor([0.0, 1.0, -2.0]))
    w = weights.weights
    assert float(w.sum()) == pytest.approx(1.0)
    assert (w > 0).all()
    states = [torch.full((1, 2, 4), float(value)) for value in (1.0, 2.0, 3.0)]
    expected = float(w[0] * 1 + w[1] * 2 + w[2] * 3)
    assert torch.allclose(weights(states), torch.full((1, 2, 4), expected))


def test_tower_averages_every_hidden_state_of_the_kept_wavlm_layers():
    tower = tiny_tower()
    assert len(tower.wavlm.model.encoder.layers) == 2
    assert tower.layer_weights.logits.shape == (3,)  # CNN projection + 2 layers
    tower.train()  # LayerDrop off: every layer's state exists at every step
    assert len(tower.wavlm.hidden_states(torch.randn(2, 4000))) == 3
    assert tower(torch.randn(2, 4000)).pooled.shape == (2, 16)


def test_frozen_wavlm_leaves_only_the_layer_weights_and_head_to_train():
    tower = tiny_tower(freeze_wavlm=True)
    tower(0.1 * torch.randn(2, 4000)).pooled.sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in tower.wavlm.parameters())
    assert tower.layer_weights.logits.grad is not None
    assert all(p.grad is not None for p in tower.head.parameters())


def test_exported_tower_reloads_to_the_same_embeddings(tmp_path):
    torch.manual_seed(0)
    tower = tiny_tower().eval()
    save_module(tower, tmp_path / "tower.safetensors")
    reloaded = tiny_tower(pretrained=str(tmp_path / "tower.safetensors")).eval()
    audio = 0.1 * torch.randn(2, 4000)
    assert torch.allclose(tower(audio).pooled, reloaded(audio).pooled)
    with pytest.raises(ConfigError, match=r"a2i \.safetensors"):
        tiny_tower(pretrained=str(tmp_path))


def test_tower_settings_are_checked():
    with pytest.raises(ConfigError, match="wavlm_layers"):
        tiny_tower(wavlm_layers=13)
    with pytest.raises(ConfigError, match="num_heads"):
        tiny_tower(num_heads=3)
    with pytest.raises(CheckpointNotFoundError, match=r"WavLMTower\.wavlm_pretrained"):
        tiny_tower(wavlm_pretrained="microsoft/wavlm-base-plus")


# --- BriVL's released image tower ---------------------------------------------------------------


class FakeTransformer(nn.Module):
    """BriVL's ``models/fakeTransformer.py``: fc1 → ReLU → fc2."""

    def __init__(self, dim):
        super().__init__()
        self.fc1, self.relu, self.fc2 = nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


class ReleasedImageEncoder(nn.Module):
    """The modules of BriVL's released ``ImgLearnableEncoder`` (BAAI-WuDao/BriVL vl_model.py)."""

    def __init__(self, dim=256, heads=4, layers=1, feedforward=128, grid=2):
        super().__init__()
        self.backbone = timm.create_model("test_efficientnet")  # with its classifier, as released
        layer = nn.TransformerEncoderLayer(d_model=dim, nhead=heads, dim_feedforward=feedforward)
        self.learnable = nn.ModuleDict(
            {
                "imgFC": FakeTransformer(dim),
                "imgAtt": nn.TransformerEncoder(layer, num_layers=layers),
                "max_pool": nn.Sequential(nn.Conv2d(dim, dim, 1), nn.AvgPool2d(grid, stride=1)),
            }
        )
        self.grid = grid

    def forward(self, images, boxes, image_size):
        """The released forward: roi_grid_pool per image and box, SA over boxes, mean, MLP."""
        feature_map = self.backbone.forward_features(images)
        height, width = feature_map.shape[2:]
        ratio = image_size / height
        pooled_all = []
        for b in range(len(images)):
            x1, y1, x2, y2 = (boxes[b, :, i] / ratio for i in range(4))
            theta = torch.stack(
                (
                    (x2 - x1) / (width - 1),
                    (x2 - x1) / (width - 1) * 0.0,
                    (x1 + x2 - width + 1) / (width - 1),
                    (y2 - y1) / (height - 1) * 0.0,
                    (y2 - y1) / (height - 1),
                    (y1 + y2 - height + 1) / (height - 1),
                ),
                dim=1,
            ).view(-1, 2, 3)
            size = torch.Size((boxes.size(1), feature_map.size(1), self.grid, self.grid))
            grid = F.affine_grid(theta, size, align_corners=False)
            sampled = F.grid_sample(
                feature_map[b].unsqueeze(0).expand(boxes.size(1), -1, height, width),
                grid,
                align_corners=False,
            )
            pooled_all.append(self.learnable["max_pool"](sampled).squeeze())
        features = F.normalize(torch.stack(pooled_all), p=2, dim=-1)
        features = self.learnable["imgAtt"](features.transpose(0, 1)).transpose(0, 1)
        return F.normalize(self.learnable["imgFC"](features.mean(dim=1)), dim=-1)


def released_boxes(size, box_grid):
    """The released ImageData's boxes: the grid cells, then the whole image."""
    step = size / box_grid
    cells = [
        [i * step, j * step, (i + 1) * step, (j + 1) * step]
        for i in range(box_grid)
        for j in range(box_grid)
    ]
    return torch.tensor([*cells, [0.0, 0.0, size, size]])


def test_released_brivl_checkpoint_layout_loads_into_the_right_modules(tmp_path):
    torch.manual_seed(0)
    released = ReleasedImageEncoder().eval()
    learnable = {f"imgencoder.{k}": v for k, v in released.state_dict().items()}
    learnable["textencoder.learnable.textFC.fc1.weight"] = torch.zeros(2, 2)  # other towers
    learnable["imgencoder_mom.learnable.imgFC.fc1.weight"] = torch.zeros(2, 2)
    path = tmp_path / "BriVL-1.0-5500w.pth"
    torch.save({"learnable": learnable, "epoch": 3}, path)

    encoder = BriVLImageEncoder(preset="tiny", pretrained=str(path))
    assert encoder.embed_dim == 256 and encoder.frozen
    images = torch.rand(2, 3, 64, 64)
    normalized = (images - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor(
        [0.229, 0.224, 0.225]
    )[:, None, None]
    boxes = released_boxes(64, 2).expand(2, -1, -1)
    with torch.no_grad():
        expected = released(normalized, boxes, 64)
        got = encoder(images)
    assert torch.allclose(got, expected, atol=1e-5)


def test_wrong_released_tensors_are_named(tmp_path):
    released = ReleasedImageEncoder(dim=256, feedforward=64)  # not the tiny preset's 128
    learnable = {f"imgencoder.{k}": v for k, v in released.state_dict().items()}
    del learnable["imgencoder.learnable.imgFC.fc2.bias"]
    path = tmp_path / "brivl.pth"
    torch.save({"learnable": learnable}, path)
    with pytest.raises(ConfigError) as info:
        BriVLImageEncoder(preset="tiny", pretrained=str(path))
    message = str(info.value)
    assert "released BriVL" in message and "head.mlp.2.bias" in message
    assert "head.attention.layers.0.linear1.weight (64, 256)" in message
    with pytest.raises(CheckpointNotFoundError, match=r"model\.baai\.ac\.cn"):
        BriVLImageEncoder(preset="tiny", pretrained="BriVL-1.0-5500w.pth")


def test_brivl_presets_at_full_size_and_no_text_tower():
    with torch.device("meta"):
        released = BriVLImageEncoder(preset="released")
        paper = BriVLImageEncoder(preset="paper")
    assert (released.embed_dim, released.image_size, len(released.boxes)) == (2048, 456, 37)
    assert (paper.embed_dim, paper.image_size) == (2560, 360)
    with pytest.raises(ConfigError, match="no text tower"):
        released.embed_texts(["a dog"])
