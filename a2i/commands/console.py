"""Keep the console for the user: drop the messages a2i knows to be expected, keep the rest.

Each entry below is a message that says nothing about the user's run, with the reason a2i can
vouch for that; every other warning and log line still shows. Filters match the start of one
message only (never a whole category or module).
"""

from __future__ import annotations

import logging
import re
import warnings

EXPECTED_WARNINGS = {
    r"`isinstance\(treespec, LeafSpec\)` is deprecated": (
        "Lightning 2.6's own use of a torch 2.14 pytree API; nothing a user can change"
    ),
    r"Found \d+ module\(s\) in eval mode at the start of training": (
        "frozen parts stay in eval mode by design; a2i.callbacks.progress.UnfrozenEvalModeCheck "
        "names any module in eval mode outside a frozen part instead"
    ),
    r"The dirpath has changed from": (
        "test/predict with --ckpt_path log to a new folder; a2i never resumes a ModelCheckpoint "
        "state from another run's folder"
    ),
    r"LightningCLI's args parameter is intended to run from within Python": (
        "a2i.cli.main(args) runs a command in-process for make demo and the benchmarks; the "
        "calling program's own command line is not meant for Lightning"
    ),
    r"Metric `(Kernel Inception Distance|InceptionScore)` will save all extracted features": (
        "a2i's evaluation sets are a few thousand images at most"
    ),
}
"""Warning message (regex of its start) → why a2i can drop it."""

EXPECTED_LOG_LINES = {
    r"💡 Tip: For seamless cloud logging": "an advertisement for litlogger",
    r"(\[rank: \d+\] )?Seed set to ": "the seed is in the run's saved config.yaml",
    r"(GPU|TPU) available: ": (
        "the accelerator is in the saved config.yaml; Lightning still warns when a GPU is "
        "available but not used"
    ),
}
"""Lightning info line (regex of its start) → why a2i can drop it."""

EXPECTED_WHEN_INFERRING = {
    r"`Trainer\((limit_\w+_batches|val_check_interval)=1(\.0)?\)` was configured so": (
        "predict and embed run a2i's pipeline, no Lightning loop: the run config's loop limits "
        "(which Lightning restates when they are 1 or 1.0) do not apply"
    ),
}
"""Lightning info lines dropped under the commands of :data:`INFERRING` only."""

INFERRING = ("predict", "embed")

EXPECTED_WHEN_SHARDING = {
    r"Initializing distributed: GLOBAL_RANK": (
        "these commands split their work over the processes the user asked for; rank 0 reports "
        "for all of them"
    ),
    r"-+\ndistributed_backend=": "the same: the processes' start, not the work's result",
}
"""Lightning info lines dropped under the commands of :data:`SHARDING` only."""

SHARDING = ("predict", "embed", "prepare", "sonify")

LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.fabric.utilities.seed",
    "lightning.fabric.utilities.distributed",
)
"""Where Lightning logs the lines of :data:`EXPECTED_LOG_LINES`."""


class ExpectedLineFilter(logging.Filter):
    """Drops the log records whose message starts like one of ``patterns``."""

    def __init__(self, patterns: list[str]) -> None:
        super().__init__()
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but the expected ones."""
        return self.pattern.match(record.getMessage()) is None


def quiet_expected_messages(command: str | None = None) -> None:
    """Install the filters for ``command`` (replacing earlier ones: one process may run several)."""
    for message in EXPECTED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    patterns = list(EXPECTED_LOG_LINES)
    if command in INFERRING:
        patterns += list(EXPECTED_WHEN_INFERRING)
    if command in SHARDING:
        patterns += list(EXPECTED_WHEN_SHARDING)
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for installed in [f for f in logger.filters if isinstance(f, ExpectedLineFilter)]:
            logger.removeFilter(installed)
        logger.addFilter(ExpectedLineFilter(patterns))
