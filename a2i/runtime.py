"""Process settings: the allocator's thresholds, torch's thread count, this process's rank.

The first two are measured in ``benchmarks/fit_threads.py`` (a tiny Sound2Vision fit on 2 cores):
without them ~30% of the process's CPU time was system time (page faults) and the training loop's
threads competed with the data loader's worker for the same cores. :class:`Ranks` is what a job
spread over several processes (``--trainer.devices 2``, torchrun, SLURM) needs to know.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from a2i.errors import A2IError, RankFailedError, RankStopped

T = TypeVar("T")

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter numbers (``malloc.h``)."""
ALLOCATOR_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
KEEP_DEFAULTS_ENV = "A2I_KEEP_DEFAULTS"
"""``A2I_KEEP_DEFAULTS=1`` leaves glibc's and torch's own settings (the benchmark's plain arm)."""

_allocator_tuned = False


def tune_allocator(mmap_threshold: int = 256 << 20, trim_threshold: int = 512 << 20) -> bool:
    """Let glibc keep freed tensor memory for reuse instead of handing it back to the kernel.

    glibc serves a block above its mmap threshold (adaptive, at most 32 MiB) with fresh pages and
    returns the heap's top to the kernel above its trim threshold, so a training step that frees
    and reallocates activations of a few MiB each page-faults them all in again, every step. The
    same as ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` in the environment, set once per
    process (``fork``-ed loader workers inherit it); a user's own ``MALLOC_*`` variables (or
    ``A2I_KEEP_DEFAULTS=1``) win, and nothing is done outside glibc. Returns whether the thresholds were set.
    """
    global _allocator_tuned
    if _allocator_tuned or keep_defaults() or any(name in os.environ for name in ALLOCATOR_ENV):
        return _allocator_tuned
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    _allocator_tuned = bool(
        libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)
        and libc.mallopt(M_TRIM_THRESHOLD, trim_threshold)
        and libc.mallopt(M_TOP_PAD, 64 << 20)
    )
    return _allocator_tuned


def keep_defaults() -> bool:
    """Whether the user asked for glibc's and torch's defaults (``A2I_KEEP_DEFAULTS=1``)."""
    return os.environ.get(KEEP_DEFAULTS_ENV, "") not in ("", "0")


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. a container's or ``taskset``'s)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def fit_cpu_threads(processes: int = 1, loader_workers: int = 0) -> int | None:
    """Give torch's intra-op pool the cores left by the other processes of this job.

    ``processes`` ranks (DDP on CPU) and ``loader_workers`` data-loader workers per rank share the
    machine's cores; torch would start one thread per core in every rank, so on a small machine the
    loop's threads and the workers' rendering preempt each other. Left alone when the user set
    ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` or ``A2I_KEEP_DEFAULTS``. Returns the thread count set, or None.
    """
    if keep_defaults() or any(name in os.environ for name in THREAD_ENV):
        return None
    import torch  # here: `a2i --help` sets the allocator without importing torch

    threads = max(1, available_cores() // max(1, processes) - loader_workers)
    torch.set_num_threads(threads)
    return threads


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ``world_size`` processes of a job, and the collectives it needs.

    Lightning launches the processes and sets up their process group (the Trainer's strategy for
    ``predict``/``embed``, Fabric for ``prepare``/``sonify``); a job only needs its share of the
    work and to wait for the others at a few points. ``Ranks()`` is one process (every collective
    is then a no-op). Passed explicitly, never read from a process group that happens to exist:
    Lightning runs ``prepare_data`` on one rank of a job whose group is set up.
    """

    rank: int = 0
    world_size: int = 1

    @classmethod
    def current(cls) -> Ranks:
        """The ranks of the process group Lightning set up (one rank when there is none)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that merges the ranks' results and reports."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether other processes share the work."""
        return self.world_size > 1

    def share(self, items: Iterable[T]) -> list[T]:
        """Every ``world_size``-th item of ``items`` in sorted order, starting at ``rank``.

        Each rank sorts the same items, so the shares are disjoint, cover them all, differ in
        size by one at most, and do not depend on how the items were listed.
        """
        return sorted(items)[self.rank :: self.world_size]  # type: ignore[type-var]

    def block(self, count: int) -> slice:
        """This rank's contiguous share of ``count`` ordered items (sizes differ by one at most)."""
        return slice(
            count * self.rank // self.world_size, count * (self.rank + 1) // self.world_size
        )

    def barrier(self) -> None:
        """Wait until every rank is here."""
        if self.distributed:
            import torch
            import torch.distributed as dist

            if dist.get_backend() == "nccl":
                dist.barrier(device_ids=[torch.cuda.current_device()])
            else:
                dist.barrier()

    def gather(self, value: T) -> list[T]:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def agree(self, error: A2IError | None) -> None:
        """Stop every rank when any rank met an error (every rank calls it, ``None`` if fine).

        Rank 0 raises its own error, else the first failed rank's as :class:`RankFailedError`,
        and reports it; the other ranks raise :class:`RankStopped` and end quietly.
        """
        reasons = self.gather(None if error is None else str(error))
        failed = [(rank, reason) for rank, reason in enumerate(reasons) if reason is not None]
        if not failed:
            return
        if not self.is_main:
            raise RankStopped()
        if error is not None:
            raise error
        raise RankFailedError(*failed[0])


ONE_PROCESS = Ranks()
"""A job of one process (its only rank)."""
