"""Downstream metrics: MRR by hand, probes on separable embeddings, folds held out (issue 15)."""

import pytest
import torch
from torchmetrics.retrieval import RetrievalMRR

from a2i.metrics.downstream import (
    CrossModalMRR,
    ProbeAccuracy,
    ZeroShotClassification,
    reciprocal_ranks,
)


def test_mrr_matches_a_hand_computation():
    audio = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    image = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    # audio 0: its image 0 ranks first; audio 1 (0, 1): image 2 beats image 1 → rank 2;
    # audio 2 (1, 1)/√2: cos with images 0, 1, 2 = .707, .774, .707 → its image 2 ties image 0
    # behind image 1: rank 2 or 3 → (1/2 + 1/3) / 2
    expected = torch.tensor([1.0, 1 / 2, (1 / 2 + 1 / 3) / 2], dtype=torch.float64)
    assert torch.allclose(reciprocal_ranks(audio, image), expected)
    metric = CrossModalMRR()
    metric.update(audio[:2], image[:2])
    metric.update(audio[2:], image[2:])
    result = metric.compute()
    assert result["a2i"] == pytest.approx(float(expected.mean()))
    # image 0 (1, 0): cos with audio 0, 1, 2 = 1, 0, .707 → rank 1; image 1: 0.995, .0995, .774
    # → its audio 1 ranks 3; image 2 (0, 1): 0, 1, .707 → its audio 2 ranks 2
    assert result["i2a"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)
    assert int(result["count"]) == 3


def test_collapsed_embeddings_score_chance_not_perfect():
    same = torch.ones(4, 8)
    assert reciprocal_ranks(same, same).mean() == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)


def test_mrr_agrees_with_torchmetrics_without_ties():
    generator = torch.Generator().manual_seed(0)
    audio, image = torch.randn(2, 30, 16, generator=generator)
    similarity = (
        torch.nn.functional.normalize(audio, dim=-1)
        @ torch.nn.functional.normalize(image, dim=-1).T
    )
    reference = RetrievalMRR()(
        similarity.flatten() + 1,  # torchmetrics counts a score <= 0 as never retrieved
        torch.eye(30, dtype=torch.bool).flatten(),
        indexes=torch.arange(30).repeat_interleave(30),
    )
    assert float(reciprocal_ranks(audio, image).mean()) == pytest.approx(float(reference))


def clusters(classes: int, per_class: int, dim: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat(per_class)
    centres = 4 * torch.randn(classes, dim, generator=generator)
    return centres[labels] + torch.randn(len(labels), dim, generator=generator), labels


@pytest.mark.parametrize("probe", ["mlp", "linear"])
def test_probe_separates_separable_embeddings_in_every_fold(probe):
    features, labels = clusters(classes=5, per_class=10, dim=16)
    folds = torch.arange(len(labels)) // 5 % 5 + 1  # every fold holds every class
    metric = ProbeAccuracy(5, [1, 2, 3, 4, 5], probe=probe, hidden_size=32, steps=100)
    metric.update(features[:25], labels[:25], folds[:25])
    metric.update(features[25:], labels[25:], folds[25:])
    result = metric.compute()
    assert result["fold_accuracy"].tolist() == [1.0] * 5
    assert float(result["accuracy"]) == 1.0 and float(result["map"]) == 1.0
    assert int(result["count"]) == 50


def test_probe_on_random_labels_stays_near_chance():
    features, _ = clusters(classes=4, per_class=30, dim=16)
    labels = torch.randint(4, (120,), generator=torch.Generator().manual_seed(1))
    folds = torch.arange(120) % 4 + 1
    metric = ProbeAccuracy(4, [1, 2, 3, 4], hidden_size=32, steps=100)
    metric.update(features, labels, folds)
    assert float(metric.compute()["accuracy"]) < 0.5


def test_probe_never_trains_on_the_fold_it_scores():
    # Fold 1 repeats the other folds' clips three times with every label shifted by one: a probe
    # that saw fold 1 would learn its labels (the majority); one trained on folds 2-3 scores 0.
    features, labels = clusters(classes=3, per_class=4, dim=8)
    folds = torch.arange(12) % 2 + 2
    metric = ProbeAccuracy(3, [1], hidden_size=16, steps=100)
    metric.update(features, labels, folds)
    metric.update(
        features.repeat(3, 1), (labels.repeat(3) + 1) % 3, torch.ones(36, dtype=torch.long)
    )
    assert float(metric.compute()["accuracy"]) == 0.0


def test_probe_result_does_not_depend_on_the_order_of_the_data():
    features, labels = clusters(classes=3, per_class=8, dim=8)
    labels[::5] = (labels[::5] + 1) % 3  # some noise, so a probe is not trivially perfect
    folds = torch.arange(24) % 3 + 1
    order = torch.randperm(24, generator=torch.Generator().manual_seed(2))
    results = []
    for index in (torch.arange(24), order):
        metric = ProbeAccuracy(3, [1, 2, 3], hidden_size=16, steps=50)
        metric.update(features[index], labels[index], folds[index])
        results.append(metric.compute()["fold_accuracy"])
    assert torch.equal(results[0], results[1])


def test_zero_shot_reports_accuracy_and_the_map_of_table_2():
    """Two clips of class 0 ranked below one of class 1 on class 0's prompt: mAP sees the order."""
    prompts = torch.eye(2)
    audio = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    metric = ZeroShotClassification(prompts)
    metric.update(audio[:2], labels[:2])
    metric.update(audio[2:], labels[2:])
    result = metric.compute()
    assert result["accuracy"] == pytest.approx(0.5)  # clips 1 and 2 sit closer to the other prompt
    ap_class0 = (1 / 1 + 2 / 3) / 2  # class-0 clips ranked 1st and 3rd by the class-0 score
    ap_class1 = (1 / 1 + 2 / 3) / 2  # class-1 clips ranked 1st and 3rd by the class-1 score
    assert result["map"] == pytest.approx((ap_class0 + ap_class1) / 2)
    assert int(result["count"]) == 4
