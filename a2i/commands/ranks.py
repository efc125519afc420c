"""``--devices``, ``--num_nodes`` and ``--accelerator`` of the data tools (``a2i prepare``, ``a2i sonify``).

The tools pass them to :func:`a2i.jobs.ranks.prepare_on_ranks`, which has Lightning Fabric launch
the ranks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jsonargparse import ArgumentParser


def add_rank_arguments(parser: ArgumentParser) -> None:
    """``--devices``, ``--num_nodes`` and ``--accelerator``."""
    parser.add_argument(
        "--devices",
        type=int,
        default=1,
        help="processes per node (one per GPU with --accelerator gpu)",
    )
    parser.add_argument("--num_nodes", type=int, default=1, help="nodes of the job")
    parser.add_argument(
        "--accelerator",
        default="cpu",
        help="where each rank's models run: cpu, gpu (rank r of a node uses its r-th GPU) or auto",
    )
