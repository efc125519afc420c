"""Cross-modal MoCo: the queue, the momentum update and the loss against hand computations."""

import math

import pytest
import torch
from torch import nn

from a2i.errors import ConfigError
from a2i.losses.moco import (
    CrossModalMoCo,
    KeyQueue,
    in_batch_infonce,
    momentum_copy,
    momentum_update,
)


def test_queue_overwrites_its_oldest_keys_and_wraps_around():
    queue = KeyQueue(size=4, dim=2)
    first = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    queue.enqueue(first)
    assert int(queue.pointer) == 3
    assert torch.equal(queue.keys[:3], first)
    untouched = queue.keys[3].clone()  # still one of the random initial keys
    second = torch.tensor([[0.0, -1.0], [0.6, 0.8]])
    queue.enqueue(second)
    # slot 3, then slot 0 (the oldest) are replaced; the pointer wraps to 1
    assert int(queue.pointer) == 1
    expected = torch.stack([second[1], first[1], first[2], second[0]])
    assert torch.equal(queue.keys, expected)
    assert not torch.equal(untouched, second[0])


def test_more_keys_than_slots_keep_the_newest():
    queue = KeyQueue(size=2, dim=1)
    queue.enqueue(torch.tensor([[1.0], [2.0], [3.0]]))
    assert sorted(queue.keys.flatten().tolist()) == [2.0, 3.0]


def test_queue_is_in_the_state_dict_so_checkpoints_keep_it():
    loss = CrossModalMoCo(dim=2, queue_size=4)
    loss.enqueue(torch.ones(3, 2), torch.ones(3, 2))
    restored = CrossModalMoCo(dim=2, queue_size=4)
    restored.load_state_dict(loss.state_dict())
    assert torch.equal(restored.audio_queue.keys, loss.audio_queue.keys)
    assert int(restored.image_queue.pointer) == 3
    assert set(loss.state_dict()) == {
        "audio_queue.keys",
        "audio_queue.pointer",
        "image_queue.keys",
        "image_queue.pointer",
    }


class Tower(nn.Module):
    """A trained layer after a frozen one (a frozen backbone inside a trained tower)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(2, 2).requires_grad_(False)
        self.head = nn.Linear(2, 1)


def test_momentum_update_by_hand_and_frozen_weights_are_shared_not_copied():
    online = Tower()
    with torch.no_grad():
        online.head.weight.copy_(torch.tensor([[1.0, 2.0]]))
        online.head.bias.fill_(0.5)
    key = momentum_copy(online)
    assert key.backbone.weight is online.backbone.weight  # frozen: one tensor for both
    assert key.head.weight is not online.head.weight
    assert not any(p.requires_grad for p in key.parameters())
    with torch.no_grad():
        online.head.weight.copy_(torch.tensor([[3.0, -2.0]]))
        online.head.bias.fill_(1.5)
    momentum_update(online, key, momentum=0.9)
    # θ_k = 0.9 θ_k + 0.1 θ_q
    assert torch.allclose(key.head.weight, torch.tensor([[0.9 * 1 + 0.1 * 3, 0.9 * 2 - 0.1 * 2]]))
    assert torch.allclose(key.head.bias, torch.tensor([0.9 * 0.5 + 0.1 * 1.5]))
    assert key.backbone.weight is online.backbone.weight


def cross_entropy_first(logits):
    """−log softmax(logits)[0], in plain Python."""
    return -(logits[0] - math.log(sum(math.exp(v) for v in logits)))


def test_moco_loss_matches_a_hand_computation_on_three_pairs():
    tau = 0.5
    audio = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])  # not unit: normalised inside
    image = torch.tensor([[0.6, 0.8], [0.0, 1.0], [1.0, 0.0]])
    audio_queue = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    image_queue = torch.tensor([[0.0, 1.0], [-0.6, 0.8]])
    loss = CrossModalMoCo(dim=2, queue_size=2, temperature=tau)
    loss.audio_queue.keys.copy_(audio_queue)
    loss.image_queue.keys.copy_(image_queue)
    out = loss(audio, image)

    unit_audio = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]
    unit_image = image.tolist()

    def dot(a, b):
        return a[0] * b[0] + a[1] * b[1]

    a2i = [
        cross_entropy_first([dot(a, v) / tau] + [dot(a, q) / tau for q in image_queue.tolist()])
        for a, v in zip(unit_audio, unit_image, strict=True)
    ]
    i2a = [
        cross_entropy_first([dot(v, a) / tau] + [dot(v, q) / tau for q in audio_queue.tolist()])
        for a, v in zip(unit_audio, unit_image, strict=True)
    ]
    assert float(out["audio_to_image"]) == pytest.approx(sum(a2i) / 3, rel=1e-5)
    assert float(out["image_to_audio"]) == pytest.approx(sum(i2a) / 3, rel=1e-5)
    assert float(out["loss"]) == pytest.approx((sum(a2i) + sum(i2a)) / 3, rel=1e-5)

    one_way = CrossModalMoCo(dim=2, queue_size=2, temperature=tau, symmetric=False)
    one_way.load_state_dict(loss.state_dict())
    assert float(one_way(audio, image)["loss"]) == pytest.approx(sum(a2i) / 3, rel=1e-5)


def test_only_the_audio_side_gets_gradients():
    loss = CrossModalMoCo(dim=2, queue_size=4)
    audio = torch.randn(3, 2, requires_grad=True)
    image = torch.randn(3, 2, requires_grad=True)
    loss(audio, image)["loss"].backward()
    assert audio.grad.abs().sum() > 0
    # the image side is frozen in WavBriVL but the loss itself must not block its gradient
    assert image.grad is not None
    assert loss.audio_queue.keys.grad is None


def test_in_batch_infonce_matches_a_hand_computation():
    tau = 0.1
    audio = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    image = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    sims = [[0.8, 0.0], [0.6, 1.0]]  # audio j · image k
    a2i = [cross_entropy_first([sims[j][j] / tau, sims[j][1 - j] / tau]) for j in range(2)]
    i2a = [cross_entropy_first([sims[k][k] / tau, sims[1 - k][k] / tau]) for k in range(2)]
    expected = 0.5 * (sum(a2i) / 2 + sum(i2a) / 2)
    assert float(in_batch_infonce(audio, image, tau)) == pytest.approx(expected, rel=1e-5)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="temperature"):
        CrossModalMoCo(dim=2, temperature=0.0)
    with pytest.raises(ConfigError, match="size"):
        KeyQueue(size=0, dim=2)
