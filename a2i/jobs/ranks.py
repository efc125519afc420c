"""The dataset builders (``a2i prepare``, ``a2i sonify``) on ranks launched by Lightning Fabric.

``devices=N, num_nodes=M`` run a builder as N × M ranks, as ``--trainer.devices/num_nodes`` run
``a2i fit``: Fabric's launcher starts the local ranks by rerunning the command line, and under
torchrun or SLURM it reads the ranks the cluster started from the environment (give the same
counts the cluster runs). Each rank takes its share of the work (:class:`~a2i.runtime.Ranks`);
rank 0 writes the final index and reports.
"""

from __future__ import annotations

from typing import Any

from a2i.data.shard_datamodule import ShardDataModule
from a2i.runtime import ONE_PROCESS, Ranks


def launch_ranks(devices: int, num_nodes: int, accelerator: str) -> tuple[Ranks, str | None]:
    """Launch the ranks asked for; this process's ranks and device (None: one process on the CPU).

    One process on the CPU starts nothing. Otherwise Fabric (strategy ``ddp``) starts or finds
    the ranks, sets up their process group and gives each its device.
    """
    if devices * num_nodes == 1 and accelerator == "cpu":
        return ONE_PROCESS, None
    from lightning.fabric import Fabric

    fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy="ddp")
    fabric.launch()
    return Ranks.current(), str(fabric.device)


def prepare_on_ranks(
    datamodule: ShardDataModule, devices: int = 1, num_nodes: int = 1, accelerator: str = "cpu"
) -> tuple[Any, Ranks]:
    """``datamodule.prepare_data`` run on the ranks asked for: its report and this process's ranks.

    The report is the builder's (None when the shards were already complete). Each rank on an
    accelerator builds its features on its own device (``prepare_device``).
    """
    ranks, device = launch_ranks(devices, num_nodes, accelerator)
    if device is not None and accelerator != "cpu":
        datamodule.prepare_device = device
    return datamodule.prepare_data(ranks=ranks), ranks
