"""``a2i prepare``: decode the videos of a config's ``data`` section into shards.

``--config`` takes any run config (only its ``data`` section is read), so the file that trains a
model also prepares its data; ``--data.init_args.*`` overrides single values. ``--devices`` and
``--num_nodes`` split the shards over ranks (:mod:`a2i.jobs.ranks`), each with its own
``--workers`` pool. Videos that could not be decoded, and listed files that are empty,
unreadable or share another's key, are named and make the command exit with status 1 once
everything else is done (a listed video that is absent, as in a partial VGGSound download, is
only counted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from a2i.commands import exit_naming_failures
from a2i.commands.config_paths import with_data_section
from a2i.commands.ranks import add_rank_arguments
from a2i.io_utils import printable

if TYPE_CHECKING:  # imported when the command runs (`a2i --help` stays fast)
    from jsonargparse import ArgumentParser

HELP = "decode a video dataset into training shards"


def build_parser() -> ArgumentParser:
    """The arguments of ``a2i prepare`` (importing the video datamodule)."""
    from jsonargparse import ArgumentParser

    from a2i.data.video_datamodule import VideoDataModule

    parser = ArgumentParser(prog="a2i prepare", description=HELP, allow_abbrev=False)
    parser.add_argument("--config", help="a run config whose data section names a video dataset")
    parser.add_subclass_arguments(VideoDataModule, "data", required=True)
    parser.add_argument(
        "--workers", type=int, help="decoding processes of each rank (overrides the config)"
    )
    add_rank_arguments(parser)
    return parser


def main(argv: list[str]) -> None:
    """Run ``a2i prepare`` with command-line arguments ``argv`` (without the command's name)."""
    from a2i.build.shards import recorded_failures
    from a2i.data.shard_datamodule import SCAN_LOG
    from a2i.jobs.ranks import prepare_on_ranks

    parser = build_parser()
    config = parser.parse_args(with_data_section(argv))
    datamodule = parser.instantiate_classes(config).data
    if config.workers is not None:
        datamodule.prepare_workers = config.workers
    report, ranks = prepare_on_ranks(
        datamodule, config.devices, config.num_nodes, config.accelerator
    )
    if not ranks.is_main:
        return
    if report is None:
        prepared = printable(datamodule.prepared)
        print(f"a2i prepare: {prepared} is already complete ({datamodule.clip_counts})")
        failed = recorded_failures(datamodule.prepared)
    else:
        print(f"a2i prepare: {report.describe(datamodule.prepared)}")
        failed = report.failed
    unusable = [entry for entry in datamodule.scan_result.unusable if entry[2] != "missing"]
    logs = datamodule.prepared / "problems.log", datamodule.prepared / SCAN_LOG
    if not (unusable or failed):
        return
    exit_naming_failures(
        "prepare",
        [("unusable", f"{video}: {problem}") for _, video, problem in unusable[:10]]
        + [("failed", f"{clip['video']}: {clip['problem']}") for clip in failed[:10]],
        f"{len(failed)} video(s) undecodable (all in {printable(logs[0])}), {len(unusable)} "
        f"listed file(s) empty, unreadable or clashing (all in {printable(logs[1])})",
    )
