"""Compute every harness metric on one process and on two gloo DDP processes; print both as JSON.

Run by ``test_metrics_ddp.py`` in a subprocess (``torch.multiprocessing.spawn`` needs an
importable script). Rank ``r`` of 2 takes items ``r::2``: a different order than the single
process, so the comparison also checks that no metric depends on the order of its data.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from a2i.metrics.diversity import SeedDiversity
from a2i.metrics.downstream import CrossModalMRR, ProbeAccuracy
from a2i.metrics.image_quality import ImageQuality
from a2i.metrics.modality_gap import ModalityGap
from a2i.metrics.retrieval import ClassAgreement, ClassRetrieval, RelativeSimilarity
from a2i.synth.judge import JudgeReport
from a2i.synth.metrics import JudgeMetrics

ITEMS, CLASSES, DIM = 24, 5, 8


def data() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=generator)

    def randint(high, *shape):
        return torch.randint(high, shape, generator=generator)

    sizes = torch.rand(ITEMS, CLASSES, generator=generator)
    return {
        "embeddings": randn(ITEMS, DIM),
        "references": randn(ITEMS, DIM),
        "labels": randint(CLASSES, ITEMS),
        "predicted": randint(CLASSES, ITEMS),
        "present": sizes > 0.4,
        "sizes": sizes,
        "main": randint(CLASSES, ITEMS),
        "indoor": randint(2, ITEMS).bool(),
        "second": torch.where(randint(2, ITEMS).bool(), randint(CLASSES, ITEMS), -1),
        "gains": randn(ITEMS) * 10,
        "features": randn(ITEMS, 3, DIM),
        "codes": randint(3, ITEMS, 3),
        "real": torch.rand(ITEMS, 3, 4, 4, generator=generator),
        "fake": torch.rand(ITEMS, 3, 4, 4, generator=generator) ** 2,
        "folds": randint(3, ITEMS) + 1,
    }


class ChannelStatistics(torch.nn.Module):
    """A fixed feature network: per-channel means and standard deviations; logits = means."""

    num_features = 6

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([images.mean(dim=(2, 3)), images.std(dim=(2, 3))], dim=1)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return 10.0 * images.mean(dim=(2, 3))


def evaluate(items: dict[str, torch.Tensor], class_embeddings: torch.Tensor) -> dict[str, float]:
    metrics = {
        "retrieval": ClassRetrieval(class_embeddings, (1, 3)),
        "relative": RelativeSimilarity(),
        "agreement": ClassAgreement(
            torch.eye(CLASSES, dtype=torch.bool) | torch.eye(CLASSES).roll(1, 0).bool()
        ),
        "judge": JudgeMetrics(CLASSES),
        "diversity": SeedDiversity(),
        "gap": ModalityGap(),
        "mrr": CrossModalMRR(),
        "probe": ProbeAccuracy(CLASSES, [1, 2, 3], hidden_size=8, steps=30),
        # KID over one subset of every image and IS over one split: both independent of order.
        "quality": ImageQuality(
            ChannelStatistics(), kid_subset_size=ITEMS, kid_subsets=1, is_splits=1
        ),
    }
    for start in range(0, len(items["labels"]), 5):  # several updates per process
        part = {k: v[start : start + 5] for k, v in items.items()}
        metrics["retrieval"].update(part["embeddings"], part["labels"])
        metrics["relative"].update(part["embeddings"], part["references"])
        metrics["agreement"].update(part["predicted"], part["labels"])
        report = JudgeReport(
            part["present"], part["sizes"], part["main"], part["indoor"], part["sizes"]
        )
        metrics["judge"].update(
            report, part["labels"], part["second"], part["gains"], part["indoor"]
        )
        metrics["diversity"].update(part["features"], part["codes"])
        metrics["gap"].update(part["embeddings"], part["references"])
        metrics["mrr"].update(part["embeddings"], part["references"])
        metrics["probe"].update(part["embeddings"], part["labels"], part["folds"])
        metrics["quality"].update_real(part["real"])
        metrics["quality"].update_fake(part["fake"])
    flat = {}
    for name, metric in metrics.items():
        value = metric.compute()
        values = value if isinstance(value, dict) else {"value": value}
        for key, number in values.items():
            flat[f"{name}/{key}"] = number if isinstance(number, float) else number.tolist()
    return flat


def rank_main(rank: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    items = {k: v[rank::2] for k, v in data().items()}
    result = evaluate(items, torch.eye(CLASSES, DIM))
    if rank == 0:
        with open(out, "w") as handle:
            json.dump(result, handle)
    dist.destroy_process_group()


def main() -> None:
    torch.set_num_threads(1)
    single = evaluate(data(), torch.eye(CLASSES, DIM))
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "ddp.json")
        mp.spawn(rank_main, args=(os.path.join(folder, "init"), out), nprocs=2)
        with open(out) as handle:
            distributed = json.load(handle)
    json.dump({"single": single, "ddp": distributed}, sys.stdout)


if __name__ == "__main__":
    main()
