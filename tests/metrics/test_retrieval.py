"""CLIP R@k, AIS/IIS and AIC on constructed embeddings whose answers are known by hand."""

import pytest
import torch

from a2i.errors import ConfigError
from a2i.metrics.retrieval import (
    ClassAgreement,
    ClassRetrieval,
    MeanCosine,
    RelativeSimilarity,
    class_agreement,
)

EYE = torch.eye(4)


def test_retrieval_ranks_the_true_class_among_class_prompts():
    # Image 0 is its class exactly; image 1 is closest to class 2, then its class 1;
    # image 2 (class 3) ranks its class last; the unknown label is skipped.
    images = torch.tensor(
        [[1.0, 0.0, 0.0, 0.0], [0.0, 0.6, 0.8, 0.0], [0.5, 0.5, 0.5, 0.0], [1.0, 0, 0, 0]]
    )
    labels = torch.tensor([0, 1, 3, -1])
    metric = ClassRetrieval(EYE, top_k=(1, 2, 4))
    metric.update(images, labels)
    result = metric.compute()
    assert result["r@1"] == pytest.approx(1 / 3)
    assert result["r@2"] == pytest.approx(2 / 3)
    assert result["r@4"] == pytest.approx(1.0)


def test_retrieval_tie_with_the_true_class_does_not_count_against_it():
    metric = ClassRetrieval(EYE, top_k=(1,))
    metric.update(torch.tensor([[1.0, 1.0, 0.0, 0.0]]), torch.tensor([1]))
    assert metric.compute()["r@1"] == 1.0


def test_retrieval_rejects_a_bad_class_matrix():
    with pytest.raises(ConfigError):
        ClassRetrieval(torch.zeros(4))


def test_relative_similarity_counts_wins_over_every_other_reference():
    # Query i is closest to reference i for i = 0, 1, 2; query 3 equals reference 0 exactly.
    references = torch.eye(4)
    queries = torch.tensor(
        [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.5]]
    )
    metric = RelativeSimilarity()
    metric.update(queries[:2], references[:2])
    metric.update(queries[2:], references[2:])
    # Queries 0-2 beat all 3 others; query 3 (sim 0.447 to its own, 0.894 to ref 0, 0 to refs
    # 1, 2) beats 2 of 3.
    assert float(metric.compute()) == pytest.approx((3 + 3 + 3 + 2) / 12)


def test_mean_cosine_is_seeing_sounds_raw_similarity_beside_the_win_rate():
    """Seeing Sound §4.2 reports raw cosines (AIS ≈ 0.05), AudioToken a relative win rate: one
    set of pairs gives both, and they differ."""
    references = torch.eye(4)
    queries = torch.tensor(
        [[2.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]]
    )
    cosine, win_rate = MeanCosine(), RelativeSimilarity()
    for metric in (cosine, win_rate):
        metric.update(queries[:3], references[:3])
        metric.update(queries[3:], references[3:])
    half = 0.5**0.5
    assert float(cosine.compute()) == pytest.approx((1 + half + 1 + half) / 4)
    assert float(win_rate.compute()) == pytest.approx((3 + 2.5 + 3 + 2.5) / 12)
    assert MeanCosine().compute().isnan()


def test_relative_similarity_is_one_half_for_identical_references_and_nan_for_one_pair():
    metric = RelativeSimilarity()
    metric.update(torch.randn(5, 3), torch.ones(5, 3))
    assert float(metric.compute()) == pytest.approx(0.5)
    single = RelativeSimilarity()
    single.update(torch.randn(1, 3), torch.randn(1, 3))
    assert torch.isnan(single.compute())


def test_relative_similarity_is_independent_of_the_order_of_the_set():
    generator = torch.Generator().manual_seed(0)
    queries, references = (
        torch.randn(30, 8, generator=generator),
        torch.randn(30, 8, generator=generator),
    )
    forward, shuffled = RelativeSimilarity(), RelativeSimilarity()
    forward.update(queries, references)
    order = torch.randperm(30, generator=generator)
    shuffled.update(queries[order], references[order])
    assert float(forward.compute()) == pytest.approx(float(shuffled.compute()))


def text_table(texts):
    """Fake CLIP text embeddings: 'kitten' is 0.8 similar to 'cat', 'car' unrelated."""
    table = {
        "cat": [1.0, 0.0, 0.0],
        "kitten": [0.8, 0.6, 0.0],
        "tabby": [0.7, 0.0, 0.71414],
        "car": [0.0, 0.0, 1.0],
    }
    return torch.tensor([table[t.lower()] for t in texts])


def test_agreement_matrix_uses_exact_names_and_the_clip_threshold():
    matrix = class_agreement(["Cat", "kitten", "tabby", "car"], ["cat", "car"], text_table).matrix
    # kitten·cat = 0.8 > 0.75 agrees; tabby·cat = 0.7 does not; names match case-insensitively.
    assert matrix.tolist() == [[True, False], [True, False], [False, False], [False, True]]
    strict = class_agreement(["kitten"], ["cat"], text_table, threshold=0.85).matrix
    assert strict.tolist() == [[False]]
    assert class_agreement(["kitten"], ["cat"]).matrix.tolist() == [[False]]


def test_class_agreement_counts_agreeing_predictions():
    matrix = class_agreement(["cat", "kitten", "tabby", "car"], ["cat", "car"], text_table).matrix
    metric = ClassAgreement(matrix)
    metric.update(torch.tensor([0, 1, 2, 3, 3]), torch.tensor([0, 0, 0, 1, -1]))
    assert float(metric.compute()) == pytest.approx(3 / 4)


def test_agreement_summary_counts_the_pairs_the_threshold_admits():
    names, labels = ["Cat", "kitten", "tabby", "car"], ["cat", "car"]
    summary = class_agreement(names, labels, text_table).summary()
    assert summary["pairs_same_name"] == 2  # Cat~cat, car~car
    assert summary["pairs_admitted_by_threshold"] == 1  # kitten~cat (0.8); tabby~cat is 0.7
    assert summary["labels_with_an_agreeing_class"] == 2
    assert summary["mean_agreeing_classes_per_label"] == pytest.approx(1.5)
    assert summary["loosest_admitted"] == ["cat ~ kitten (0.800)"]
    loose = class_agreement(names, labels, text_table, threshold=0.5).summary()
    assert loose["pairs_admitted_by_threshold"] == 3  # + tabby~cat 0.7, tabby~car 0.714
    assert loose["loosest_admitted"][0] == "cat ~ tabby (0.700)"
    by_name = class_agreement(names, labels).summary()
    assert by_name["threshold"] is None and by_name["pairs_admitted_by_threshold"] == 0
