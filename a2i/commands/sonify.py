"""``a2i sonify``: turn an image collection into audio-visual training pairs (Seeing Sound §3).

``--config`` takes any run config whose ``data`` section is a
:class:`~a2i.data.sonify.datamodule.SonifiedImagesDataModule` (only that section is read), so
the file that trains a model also sonifies its data; ``--data.init_args.*`` overrides single
values. The run resumes where a killed one stopped. Images dropped by the non-sonic filter or
without sounding concepts are listed in ``problems.log``; images or pool files that could not be
read are listed too and make the command exit with status 1 after everything else is done.
``--devices`` and ``--num_nodes`` split every step over ranks (:mod:`a2i.jobs.ranks`); with
``--accelerator gpu`` each rank runs CLAP and the VLM on its own GPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from a2i.commands import exit_naming_failures
from a2i.commands.config_paths import with_data_section
from a2i.commands.ranks import add_rank_arguments

if TYPE_CHECKING:  # the heavy imports happen when the command runs (`a2i --help` stays fast)
    from jsonargparse import ArgumentParser, Namespace

    from a2i.data.sonify.datamodule import SonifiedImagesDataModule

HELP = "sonify an image collection into audio-visual training shards (Seeing Sound)"


def build_parser() -> ArgumentParser:
    """The arguments of ``a2i sonify`` (importing the sonified-images datamodule)."""
    from jsonargparse import ArgumentParser

    from a2i.data.sonify.datamodule import SonifiedImagesDataModule

    parser = ArgumentParser(prog="a2i sonify", description=HELP, allow_abbrev=False)
    parser.add_argument("--config", help="a run config whose data section sonifies images")
    parser.add_subclass_arguments(SonifiedImagesDataModule, "data", required=True)
    parser.add_argument("--workers", type=int, help="processes decoding and mixing (overrides)")
    parser.add_argument("--device", help="device of CLAP, the VLM and retrieval (overrides)")
    add_rank_arguments(parser)
    return parser


def parse_options(argv: list[str]) -> Namespace:
    """``argv`` parsed (``--config`` contributes its data section)."""
    return build_parser().parse_args(with_data_section(argv))


def build_datamodule(argv: list[str]) -> SonifiedImagesDataModule:
    """The datamodule that ``argv`` configures, built as ``a2i fit`` would build it.

    The global seed is set to 0 first (``a2i fit``'s default), so presets with random weights
    (the tiny CLAP) come out the same in every run and a resumed run matches its recipe.
    """
    from lightning.fabric.utilities.seed import seed_everything

    config = parse_options(argv)
    seed_everything(0, verbose=False)
    datamodule = build_parser().instantiate_classes(config).data
    if config.workers is not None:
        datamodule.prepare_workers = config.workers
    if config.device is not None:
        datamodule.prepare_device = config.device
    return datamodule


def main(argv: list[str]) -> None:
    """Run ``a2i sonify`` with command-line arguments ``argv`` (without the subcommand)."""
    from a2i.build.shards import recorded_failures
    from a2i.build.sonify.pool_cache import POOL_PROBLEMS_FILE, read_pool_problems
    from a2i.io_utils import printable
    from a2i.jobs.ranks import prepare_on_ranks

    datamodule = build_datamodule(argv)
    config = parse_options(argv)
    report, ranks = prepare_on_ranks(
        datamodule, config.devices, config.num_nodes, config.accelerator
    )
    if not ranks.is_main:
        return
    log = datamodule.prepared / "problems.log"
    if report is None:
        print(f"a2i sonify: {printable(datamodule.prepared)} is already complete")
        failed = recorded_failures(datamodule.prepared)
    else:
        for line in report.describe(datamodule.prepared):
            print(f"a2i sonify: {line}")
        failed = report.failed
    unusable = datamodule.unusable_pool_files
    pool_problems = read_pool_problems(datamodule.pool_cache)
    if not (failed or unusable or pool_problems):
        return
    exit_naming_failures(
        "sonify",
        [("unusable pool file", f"{path}: {problem}") for _, path, problem in unusable]
        + [("unreadable pool file", problem) for problem in pool_problems[:10]]
        + [("failed", f"{failure['key']}: {failure['problem']}") for failure in failed[:10]],
        f"{len(failed)} sample(s) failed (all in {printable(log)}), {len(unusable)} pool "
        f"file(s) missing, empty or unreadable (named above), {len(pool_problems)} pool file(s) "
        f"undecodable (all in {printable(datamodule.pool_cache / POOL_PROBLEMS_FILE)})",
    )
