"""Collect several ``a2i test`` evaluation reports into one side-by-side table.

Each argument is a report folder (holding ``metrics.json``, written by
:class:`a2i.callbacks.evaluation.Evaluation`) or a folder searched for them. Rows are runs, columns
the measures every method reports the same way::

    python benchmarks/compare.py runs/loss_ablation --out docs/results/sound2vision_losses.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

from a2i.io_utils import atomic_write_text
from a2i.metrics.report import flatten

COLUMNS = {
    "judge class acc.": "metrics/judge_class_accuracy",
    "CLIP R@1": "metrics/clip_r@1",
    "CLIP R@5": "metrics/clip_r@5",
    "AIS": "metrics/ais",
    "IIS": "metrics/iis",
    "AIC": "metrics/aic",
    "FID": "metrics/fid",
    "KID": "metrics/kid",
    "IS": "metrics/is",
    "gain→size ρ": "controllability/volume_trend/spearman_rho",
    "both sources (0 dB)": "controllability/mixture/ratio_db=0/both_present",
    "reverb→indoor": "controllability/reverb/reverb=1/indoor",
    "dry→indoor": "controllability/reverb/reverb=0/indoor",
    "λ=.5 audio class": "controllability/interpolation/image_weight=0.5/audio_class_present",
    "λ=.5 image class": "controllability/interpolation/image_weight=0.5/image_class_present",
    "distinct layouts": "metrics/diversity_distinct_layouts",
    "gap ‖g‖": "modality_gap/magnitude_mean",
    "gap orthogonality": "modality_gap/orthogonality_image_abs_mean",
    "alignment": "modality_gap/alignment",
}
"""Column title → key of :func:`a2i.metrics.report.flatten` over ``metrics.json``."""

DEFAULT_COLUMNS = (
    "judge class acc.",
    "CLIP R@1",
    "CLIP R@5",
    "AIS",
    "IIS",
    "AIC",
    "FID",
    "IS",
    "gain→size ρ",
    "both sources (0 dB)",
    "reverb→indoor",
    "λ=.5 audio class",
    "λ=.5 image class",
    "gap ‖g‖",
    "alignment",
)
"""The README's columns; ``--all`` shows every column of :data:`COLUMNS`."""


def find_reports(paths: list[str]) -> list[Path]:
    """Every ``metrics.json`` given directly or found under the given folders, sorted."""
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / "metrics.json").is_file():
            found.append(path / "metrics.json")
        elif path.is_file() and path.name == "metrics.json":
            found.append(path)
        elif path.is_dir():
            found += sorted(path.rglob("metrics.json"))
        else:
            raise SystemExit(f"compare: {path} is neither a report folder nor holds any")
    return found


def run_names(reports: list[Path]) -> list[str]:
    """Shortest distinguishing names: each report's path below the reports' common folder."""
    folders = [report.parent for report in reports]
    if len(folders) == 1:
        return [folders[0].name]
    common = Path(os.path.commonpath(folders))
    return [str(folder.relative_to(common)).replace("/evaluation", "") for folder in folders]


def table(reports: list[Path], names: list[str], titles: tuple[str, ...] = DEFAULT_COLUMNS) -> str:
    """Markdown table; columns no report has are dropped, missing cells show "–"."""
    rows = [flatten(json.loads(report.read_text())) for report in reports]
    columns = {
        title: COLUMNS[title] for title in titles if any(COLUMNS[title] in row for row in rows)
    }
    lines = [
        "| run | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, row in zip(names, rows, strict=True):
        cells = [_cell(row.get(key)) for key in columns.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: float | None) -> str:
    if value is None:
        return "–"
    if math.isnan(value):
        return "n/a"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def main(argv: list[str] | None = None) -> None:
    """Print (and optionally write) the comparison table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="report folders or folders holding reports")
    parser.add_argument("--names", nargs="+", help="row names, one per report (default: paths)")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    parser.add_argument("--all", action="store_true", help="every column, not only the README's")
    args = parser.parse_args(argv)
    reports = find_reports(args.paths)
    if not reports:
        raise SystemExit("compare: no metrics.json found")
    names = args.names or run_names(reports)
    if len(names) != len(reports):
        raise SystemExit(f"compare: {len(names)} names for {len(reports)} reports")
    text = table(reports, names, tuple(COLUMNS) if args.all else DEFAULT_COLUMNS)
    print(text, end="")
    if args.out:
        atomic_write_text(args.out, text)


def compare_runs(
    rows: Sequence[tuple[str, str | Path]], others: Sequence[str] = (), out: str | None = None
) -> None:
    """The table of ``(row name, report folder)`` rows, then ``others`` named by their folder.

    What the world benchmarks print at the end (``--with`` adds ``others``, ``--table`` is ``out``).
    """
    named = [*rows, *((Path(other).name, other) for other in others)]
    paths, names = [str(path) for _, path in named], [name for name, _ in named]
    main([*paths, "--names", *names, *(["--out", out] if out else [])])


if __name__ == "__main__":
    main()
