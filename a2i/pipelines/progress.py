"""Progress of long work where the user sees it: a bar in a terminal, plain lines elsewhere.

A bar redraws one line; written to a file or a pipe (``make demo > log``, CI, ``tee``) it shows
nothing until it ends, so off a terminal a2i prints a line at every tenth of the work and at
least once a minute (:class:`ProgressLines`). ``a2i fit`` does so through
:class:`a2i.callbacks.progress.PlainProgressBar`; ``a2i predict`` and ``a2i embed`` through
:class:`FolderProgress`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

from a2i.runtime import ONE_PROCESS, Ranks

EVERY_SECONDS = 60.0
EVERY_PERCENT = 10.0


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default stdout) is a terminal, where a bar can redraw itself."""
    stream = sys.stdout if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def format_duration(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``, as a bar shows elapsed and remaining time."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressLines:
    """``<label> N/M (p%), <details>, <rate>, eta h:mm:ss`` lines, printed when due.

    A line is due at every ``every_percent`` of the work, ``every_seconds`` after the last one,
    and at the end. The rate counts the work done since this object was made (``initial`` is
    what was already done, as in a resumed run).
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        unit: str = "it",
        initial: int = 0,
        every_seconds: float = EVERY_SECONDS,
        every_percent: float = EVERY_PERCENT,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.initial = self.last_done = initial
        self.every_seconds, self.every_percent = every_seconds, every_percent
        self.stream = stream
        self.clock = clock
        self.start = self.last_time = clock()

    def _share(self, done: int) -> int:
        """How many ``every_percent`` steps of the work ``done`` covers."""
        if self.total <= 0 or self.every_percent <= 0:
            return 0
        return int(100 * done / self.total // self.every_percent)

    def update(self, done: int, details: str = "") -> None:
        """Record that ``done`` units are done; print a line if one is due."""
        now = self.clock()
        if done == self.last_done:
            return
        due = (
            0 < self.total <= done
            or now - self.last_time >= self.every_seconds
            or self._share(done) > self._share(self.last_done)
        )
        if due:
            print(self.line(done, details, now), file=self.stream or sys.stdout, flush=True)
            self.last_done, self.last_time = done, now

    def line(self, done: int, details: str, now: float) -> str:
        """The line for ``done`` units at time ``now``."""
        known = self.total > 0
        count = f"{done}/{self.total} ({100 * done / self.total:.0f}%)" if known else f"{done}"
        parts = [f"{self.label} {count}"]
        if details:
            parts.append(details)
        rate = (done - self.initial) / max(now - self.start, 1e-9)
        if rate > 0:
            parts.append(
                f"{rate:.3g} {self.unit}/s" if rate >= 1 else f"{1 / rate:.3g} s/{self.unit}"
            )
            if known:
                parts.append(f"eta {format_duration(max(self.total - done, 0) / rate)}")
        return ", ".join(parts)


class FolderProgress:
    """Progress over a folder's inputs: a tqdm bar on a terminal, :class:`ProgressLines` off it.

    Nothing is shown when there is nothing to do (every input done by an earlier run), or when
    not ``shown``. In a job of several ``ranks`` only rank 0 shows its own share, and says so: a
    bar ending at "4/4" over a folder of 8 inputs would otherwise look like half the folder was
    left out.
    """

    def __init__(
        self,
        command: str,
        total: int,
        unit: str = "input",
        ranks: Ranks = ONE_PROCESS,
        shown: bool = True,
    ) -> None:
        self.done = 0
        self.bar = self.lines = None
        if total <= 0 or not ranks.is_main or not shown:
            return
        share = f" (rank 0's share of {ranks.world_size})" if ranks.distributed else ""
        label = f"a2i {command}{share}"
        if is_terminal():
            self.bar = tqdm(total=total, desc=label, unit=f" {unit}", file=sys.stdout)
        else:
            self.lines = ProgressLines(f"{label}:", total, unit=unit)

    def advance(self, count: int) -> None:
        """``count`` more inputs are done."""
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
        elif self.lines is not None:
            self.lines.update(self.done)

    def close(self) -> None:
        """End the bar (a finished bar stays on screen above the report)."""
        if self.bar is not None:
            self.bar.close()
