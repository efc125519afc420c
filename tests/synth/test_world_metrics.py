"""Judge metrics, seed diversity and the modality gap on hand-built inputs."""

import pytest
import torch

from a2i.metrics.diversity import SeedDiversity
from a2i.metrics.modality_gap import ModalityGap
from a2i.synth.judge import JudgeReport
from a2i.synth.metrics import JudgeMetrics, layout_codes


def report(main, present, sizes, indoor):
    present = torch.tensor(present)
    return JudgeReport(
        present=present,
        sizes=torch.tensor(sizes),
        main_class=torch.tensor(main),
        indoor=torch.tensor(indoor),
        confidence=present.float(),
    )


def test_judge_metrics_against_a_hand_count():
    # Three classes, four scenes: two solo (one right, one wrong), two mixtures (one complete).
    judged = report(
        main=[0, 2, 1, 2],
        present=[[1, 0, 0], [0, 0, 1], [1, 1, 0], [0, 0, 1]],
        sizes=[[0.3, 0, 0], [0, 0, 0.5], [0.2, 0.4, 0], [0, 0, 0.4]],
        indoor=[True, False, False, False],
    )
    metric = JudgeMetrics(num_classes=3)
    metric.update(
        judged,
        labels=torch.tensor([0, 1, 1, 0]),
        second_sources=torch.tensor([-1, -1, 0, 2]),
        gains_db=torch.tensor([-10.0, 5.0, 0.0, 0.0]),
        reverb=torch.tensor([True, True, False, False]),
    )
    result = metric.compute()
    assert float(result["class_accuracy"]) == pytest.approx(2 / 4)
    assert result["confusion"].tolist() == [[1, 0, 1], [0, 1, 1], [0, 0, 0]]
    assert float(result["all_sources_present"]) == pytest.approx(1 / 2)
    assert float(result["background_accuracy"]) == pytest.approx(3 / 4)
    # Solo scenes: gains -10, 5 with judged sizes of their label 0.3 and 0 → ρ undefined (2 pts).
    assert torch.isnan(result["size_gain_spearman"])


def test_judge_size_gain_spearman_is_one_for_monotone_sizes():
    gains = torch.tensor([-20.0, -10.0, 0.0, 10.0])
    sizes = [[s, 0.0] for s in (0.2, 0.3, 0.45, 0.6)]
    judged = report([0] * 4, [[1, 0]] * 4, sizes, [False] * 4)
    metric = JudgeMetrics(num_classes=2)
    metric.update(
        judged,
        torch.zeros(4, dtype=torch.long),
        torch.full((4,), -1),
        gains,
        torch.zeros(4, dtype=torch.bool),
    )
    assert float(metric.compute()["size_gain_spearman"]) == pytest.approx(1.0)


def test_layout_codes_separate_classes_sizes_and_backgrounds():
    base = dict(main=[0, 0, 0, 0, 0], indoor=[False, False, False, True, False])
    judged = report(
        present=[[1, 0], [1, 0], [1, 0], [1, 0], [1, 1]],
        sizes=[[0.30, 0], [0.32, 0], [0.55, 0], [0.30, 0], [0.30, 0.2]],
        **base,
    )
    codes = layout_codes(judged).tolist()
    assert codes[0] == codes[1]  # within one size bin
    assert len(set(codes)) == 4  # bigger, indoor, and an extra object all differ


def test_seed_diversity_by_hand():
    features = torch.tensor([[[0.0, 0.0], [3.0, 4.0]], [[1.0, 1.0], [1.0, 1.0]]])
    codes = torch.tensor([[7, 8], [5, 5]])
    metric = SeedDiversity()
    metric.update(features, codes)
    result = metric.compute()
    assert float(result["pairwise_distance"]) == pytest.approx((5.0 + 0.0) / 2)
    assert float(result["distinct_layouts"]) == pytest.approx((1.0 + 0.5) / 2)
    with pytest.raises(ValueError):
        metric.update(torch.zeros(1, 1, 2))


def test_modality_gap_of_a_constant_shift():
    # Audio = image features shifted by a constant vector orthogonal to their span.
    image = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    audio = torch.nn.functional.normalize(image + torch.tensor([0.0, 0.0, 1.0]), dim=-1)
    metric = ModalityGap()
    metric.update(image, audio)
    result = metric.compute()
    expected = float((image - audio).norm(dim=-1)[0])
    assert float(result["magnitude_mean"]) == pytest.approx(expected)
    assert float(result["magnitude_std"]) == pytest.approx(0.0, abs=1e-6)
    assert float(result["orthogonality_image_abs_mean"]) == pytest.approx(0.0, abs=1e-6)
    assert float(result["center_abs_max"]) == pytest.approx(0.0, abs=1e-6)
    assert float(result["alignment"]) == pytest.approx(float((image * audio).sum(-1).mean()))
    assert float(result["gap_distance"]) == pytest.approx(1 / 2**0.5, rel=1e-5)


def test_modality_gap_is_zero_for_identical_features():
    features = torch.randn(6, 4)
    metric = ModalityGap()
    metric.update(features, features * 3.0)  # scale is normalised away
    result = metric.compute()
    assert float(result["magnitude_mean"]) == pytest.approx(0.0, abs=1e-6)
    assert float(result["alignment"]) == pytest.approx(1.0)
