"""The processes of the data tools (``a2i prepare``, ``a2i sonify``), launched by Lightning Fabric.

``--devices N --num_nodes M`` run a tool as N × M ranks, as ``--trainer.devices/num_nodes`` run
``a2i fit``: Fabric's launcher starts the local ranks by rerunning the command line, and under
torchrun or SLURM it reads the ranks the cluster started from the environment (give the same
counts the cluster runs). Each rank takes its share of the work (:class:`~a2i.runtime.Ranks`);
rank 0 writes the final index and reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from a2i.commands.console import quiet_expected_messages
from a2i.runtime import ONE_PROCESS, Ranks

if TYPE_CHECKING:
    from jsonargparse import ArgumentParser, Namespace


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


def launch_ranks(config: Namespace, command: str) -> tuple[Ranks, str | None]:
    """Launch the ranks ``config`` asks for; this process's ranks and device (None: one process).

    One process on the CPU starts nothing. Otherwise Fabric (strategy ``ddp``) starts or finds
    the ranks, sets up their process group and gives each its device.
    """
    if config.devices * config.num_nodes == 1 and config.accelerator == "cpu":
        return ONE_PROCESS, None
    from lightning.fabric import Fabric

    quiet_expected_messages(command)
    fabric = Fabric(
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy="ddp",
    )
    fabric.launch()
    return Ranks.current(), str(fabric.device)


def prepare_on_ranks(datamodule: Any, config: Namespace, command: str) -> tuple[Any, Ranks]:
    """``datamodule.prepare_data`` run on the ranks ``config`` asks for: its report and the ranks.

    Each rank on an accelerator builds its features on its own device (``prepare_device``).
    """
    ranks, device = launch_ranks(config, command)
    if device is not None and config.accelerator != "cpu":
        datamodule.prepare_device = device
    return datamodule.prepare_data(ranks=ranks), ranks
