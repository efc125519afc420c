"""Process settings that fit a CPU machine: the allocator's thresholds and torch's thread count.

Both are measured in ``benchmarks/fit_threads.py`` (a tiny Sound2Vision fit on 2 cores): without
them ~30% of the process's CPU time was system time (page faults) and the training loop's threads
competed with the data loader's worker for the same cores.
"""

from __future__ import annotations

import ctypes
import os
import platform

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
