"""The scratch folder of a timing benchmark, between the machine's load at its start and end.

Timings taken on a shared machine mean little without how busy it was, so every timing script
prints its CPU count and load average before the work and the load average after it, the same
way, through :func:`timed_run`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def timed_run(prefix: str) -> Iterator[Path]:
    """A temporary folder for the run (deleted after it); the load is printed around it."""
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix=prefix) as work:
        yield Path(work)
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
