"""WavBriVL in the synthetic world: MoCo vs in-batch InfoNCE, rerank vs score guidance, by ``a2i test``.

Trains the tiny audio tower into the frozen world CLIP's space once with BriVL's cross-modal MoCo
(``configs/tiny/wavbrivl.yaml``, WavBriVL §2.4) and once with Wav2CLIP's in-batch InfoNCE
(``configs/tiny/wavbrivl_infonce.yaml``), with the real CLI (a finished run is reused). Each tower
is scored on the test split's 512 clips — zero-shot class accuracy through the CLIP text tower
(Table 2's ZS rows) and audio→image top-1 among the 512 frames — and by WavBriVL Table 2's
downstream tasks (the ``Downstream`` callback of ``configs/eval/downstream.yaml``: MLP probe,
zero-shot, MRR A→I / I→A). Generations (§5) are scored by the evaluation harness (``a2i test``
with ``configs/eval/world.yaml``): rerank of the tiny text-to-image LDM's draws for both towers,
score guidance for the MoCo tower. Report folders of other runs given with ``--with`` join the
table::

    python benchmarks/wavbrivl_world.py --out runs/wavbrivl \\
        --with runs/loss_ablation/ldm_nce_l2 runs/audiotoken/audiotoken
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from compare import compare_runs  # benchmarks/compare.py, beside this script
from sound2vision_world import evaluate, train

from a2i.interfaces import AUDIO, IMAGE, LABEL
from a2i.methods.wavbrivl import WavBriVL
from a2i.metrics.report import flatten
from a2i.synth.datamodule import SyntheticWorldDataModule

CONFIGS = {
    "wavbrivl": "configs/tiny/wavbrivl.yaml",
    "wavbrivl_infonce": "configs/tiny/wavbrivl_infonce.yaml",
}
EVALUATIONS = {
    # title: (trained run, report name, extra `a2i test` arguments)
    "WavBriVL MoCo, rerank": ("wavbrivl", "wavbrivl", []),
    "WavBriVL InfoNCE, rerank": ("wavbrivl_infonce", "wavbrivl_infonce", []),
    "WavBriVL MoCo, guidance": (
        "wavbrivl",
        "wavbrivl_guidance",
        ["--model.init_args.generation", "guidance"],
    ),
}


DOWNSTREAM_CONFIG = "configs/eval/downstream.yaml"
DOWNSTREAM_COLUMNS = {
    "run/probe_accuracy": "MLP probe acc.",
    "run/zero_shot_accuracy": "zero-shot acc.",
    "cmr/mrr_a2i": "MRR A→I",
    "cmr/mrr_i2a": "MRR I→A",
}


def downstream(out: Path, name: str, config: str, ckpt: Path) -> dict[str, float]:
    """WavBriVL Table 2's tasks in the world (``a2i test`` with ``configs/eval/downstream.yaml``)."""
    report = evaluate(out, name, config, [], ckpt, DOWNSTREAM_CONFIG, "downstream", "downstream")
    metrics = flatten(json.loads((report / "metrics.json").read_text())["metrics"])
    return {title: metrics[key] for key, title in DOWNSTREAM_COLUMNS.items()}


@torch.no_grad()
def embedding_scores(ckpt: Path, test_size: int = 512) -> dict[str, float]:
    """Zero-shot accuracy and audio→image top-1 (among all test frames) of a trained tower."""
    model = WavBriVL.load_from_checkpoint(ckpt, map_location="cpu").eval()
    data = SyntheticWorldDataModule(
        image_size=32, clip_seconds=model.clip_seconds, batch_size=64, test_size=test_size
    )
    data.setup("test")
    audio, image, labels = [], [], []
    for batch in data.test_dataloader():
        audio.append(model.audio_features(batch[AUDIO]))
        image.append(model.image_features(batch[IMAGE]))
        labels.append(batch[LABEL])
    audio, image, labels = torch.cat(audio), torch.cat(image), torch.cat(labels)
    zero_shot = (audio @ model.class_embeddings().T).argmax(dim=1) == labels
    own = (audio @ image.T).argmax(dim=1) == torch.arange(len(audio))
    return {
        "zero-shot acc.": float(zero_shot.float().mean()),
        "A→I top-1": float(own.float().mean()),
        "cos(audio, own frame)": float(F.cosine_similarity(audio, image).mean()),
    }


def main() -> None:
    """Train both towers, score them, evaluate their generations and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/wavbrivl")
    parser.add_argument("--with", dest="others", nargs="*", default=[], help="more report folders")
    parser.add_argument("--table", help="also write the comparison table to this Markdown file")
    parser.add_argument(
        "--fit_args", nargs=argparse.REMAINDER, default=[], help="extra 'a2i fit' arguments"
    )
    args = parser.parse_args()
    out = Path(args.out)
    checkpoints = {}
    for name, config in CONFIGS.items():
        start = time.time()
        checkpoints[name] = train(out, name, config, args.fit_args)
        seconds = time.time() - start
        scores = embedding_scores(checkpoints[name])
        print(
            f"{name}: trained in {seconds:.0f} s (0 if reused); "
            + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()),
            flush=True,
        )
    print(f"\n| tower | {' | '.join(DOWNSTREAM_COLUMNS.values())} |")
    print("|---" * (len(DOWNSTREAM_COLUMNS) + 1) + "|")
    for name, config in CONFIGS.items():
        scores = downstream(out, name, config, checkpoints[name])
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in scores.values()) + " |", flush=True)
    rows = []
    for title, (run, report, test_args) in EVALUATIONS.items():
        start = time.time()
        rows.append((title, evaluate(out, report, CONFIGS[run], test_args, checkpoints[run])))
        print(f"{title}: evaluated in {time.time() - start:.0f} s", flush=True)
    compare_runs(rows, args.others, args.table)


if __name__ == "__main__":
    main()
