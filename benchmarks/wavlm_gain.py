"""How much WavBriVL's audio tower hears loudness: one clip at 0, −20 and +10 dB, embedded.

WavBriVL §4.2 reads "louder → more salient" off its generations; that needs a tower whose
embedding changes with gain. Two things decide it: whether each clip is standardised before WavLM
(``normalize_waveform``; the published ``wavlm-base-plus`` preprocessor does not, a2i's tiny world
towers do) and WavLM's own group norm after its first convolution, itself nearly gain-invariant.
For each tower and setting, the world's first ``--clips`` test clips are embedded at every gain
and compared with the 0 dB embedding (cosine similarity and relative L2, the worst over clips):

- ``tiny world``: the tower of ``configs/tiny/wavbrivl.yaml`` (tiny WavLM cut to 2 layers);
- ``paper size``: the tower of ``configs/wavbrivl.yaml`` with random weights (WavLM Base shapes).

Weights are random (seed 0): the figures measure what the architecture lets through, before any
training::

    python benchmarks/wavlm_gain.py --clips 4
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from a2i.encoders.audio.wavlm_tower import WavLMTower
from a2i.synth.world import SyntheticWorld

GAINS_DB = (-20.0, 10.0)
TOWERS = {
    "tiny world": {
        "preset": "tiny",
        "wavlm_layers": 2,
        "embed_dim": 64,
        "clip_seconds": 4.0,
        "num_layers": 4,
        "feedforward_dim": 256,
    },
    "paper size": {"preset": "paper", "embed_dim": 512, "clip_seconds": 10.0},
}


@torch.no_grad()
def gain_sensitivity(tower: WavLMTower, clips: torch.Tensor) -> dict[float, tuple[float, float]]:
    """Gain in dB → (lowest cosine, largest relative L2) of embeddings against 0 dB's."""
    reference = tower(clips).pooled
    result = {}
    for gain in GAINS_DB:
        moved = tower(clips * 10 ** (gain / 20)).pooled
        cosine = F.cosine_similarity(moved, reference, dim=1).min()
        relative = ((moved - reference).norm(dim=1) / reference.norm(dim=1)).max()
        result[gain] = (float(cosine), float(relative))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=4, help="world test clips (first n)")
    args = parser.parse_args()
    world = SyntheticWorld()
    clips = torch.stack(
        [world.render(world.sample_spec("test", index)).audio for index in range(args.clips)]
    )
    header = "| tower | normalize_waveform | " + " | ".join(
        f"{gain:+.0f} dB cosine | {gain:+.0f} dB rel. L2" for gain in GAINS_DB
    )
    print(header + " |\n" + "|---" * (2 + 2 * len(GAINS_DB)) + "|")
    for name, init in TOWERS.items():
        for normalize in (True, False):
            torch.manual_seed(0)
            tower = WavLMTower(**init, normalize_waveform=normalize).eval()
            found = gain_sensitivity(tower, clips)
            cells = " | ".join(f"{cos:.7f} | {rel:.2e}" for cos, rel in found.values())
            print(f"| {name} | {str(normalize).lower()} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
