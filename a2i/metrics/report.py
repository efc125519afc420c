"""Evaluation reports on disk: ``metrics.json``, ``metrics.md``, ``metrics.csv`` and image grids.

One layout for every method, so runs compare side by side (``benchmarks/compare.py``). Every file
is written atomically; an existing report is never replaced unless asked.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from a2i.errors import ConfigError
from a2i.image import image_grid, write_png
from a2i.io_utils import atomic_write_text

REPORT_FILES = ("metrics.json", "metrics.md", "metrics.csv")


def check_report_dir(output_dir: Path, overwrite: bool) -> None:
    """Refuse to write into a folder that already holds a report (unless ``overwrite``)."""
    existing = [name for name in REPORT_FILES if (output_dir / name).exists()]
    if existing and not overwrite:
        raise ConfigError(
            f"{output_dir} already holds an evaluation report ({', '.join(existing)}); "
            "choose another output_dir or set overwrite: true"
        )


def flatten(results: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Scalar leaves of nested results as ``a/b/c`` keys; sweep rows are keyed by their setting.

    A row of a sweep table (a dict whose first entry is the setting, e.g. ``gain_db: -20``) is
    named ``volume/gain_db=-20/mean_size``; lists of numbers (a confusion matrix) are skipped.
    """
    flat: dict[str, float] = {}
    for key, value in results.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}/"))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for row in value:
                setting, *measures = row.items()
                if measures:
                    row_name = f"{name}/{setting[0]}={_format(setting[1])}/"
                    flat.update({f"{row_name}{k}": float(v) for k, v in measures})
                else:
                    flat[f"{name}/{setting[0]}"] = float(setting[1])
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def markdown_report(results: dict[str, Any]) -> str:
    """A human-readable report: run facts, metrics, sweeps (one table each), modality gap."""
    lines = [f"# Evaluation of {results['run'].get('method', 'a method')}", ""]
    lines += [f"- {key}: {value}" for key, value in results["run"].items()]
    lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_format(v)} |" for k, v in flatten(results["metrics"]).items()]
    for name, rows in results.get("controllability", {}).items():
        lines += ["", f"## Controllability: {name}", ""]
        lines += markdown_table(rows if isinstance(rows, list) else [rows])
    if results.get("aic_agreement"):
        lines += ["", "## AIC agreement: classifier classes admitted per audio label", ""]
        lines += [
            f"- {k}: {'; '.join(v) if isinstance(v, list) else _format(v)}"
            for k, v in results["aic_agreement"].items()
        ]
    if results.get("steering_model_overlap"):
        lines += ["", "## Warning: evaluation backbones that share weights with the method", ""]
        lines += [
            f"- {name}: {overlap['shared_weights']:.0%} of its weights; suspect: "
            + ", ".join(overlap["metrics"])
            for name, overlap in results["steering_model_overlap"].items()
        ]
    if results.get("modality_gap"):
        lines += ["", "## Modality gap (Sound2Vision §4.4)", "", "| measure | value |", "|---|---|"]
        lines += [f"| {k} | {_format(v)} |" for k, v in results["modality_gap"].items()]
    if results.get("confusion"):
        classes = results.get("classes") or [str(i) for i in range(len(results["confusion"]))]
        lines += ["", "## Confusion (rows: input class, columns: judged class)", ""]
        lines += markdown_table(
            [
                {"class": c, **dict(zip(classes, row, strict=True))}
                for c, row in zip(classes, results["confusion"], strict=True)
            ]
        )
    if results.get("downstream"):
        lines += ["", "## Downstream tasks (WavBriVL Table 2)", ""]
        lines += markdown_table(results["downstream"])
        lines += ["", *[f"- {note}" for note in results.get("notes", [])]]
    return "\n".join(lines) + "\n"


def markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    """Rows of dicts as Markdown table lines (columns: the union of keys, first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_format(row.get(c, "")) for c in columns) + " |")
    return lines


def write_report(
    output_dir: str | Path,
    results: dict[str, Any],
    grids: dict[str, list[Tensor]],
    overwrite: bool = False,
) -> Path:
    """Write the report files and one PNG grid per entry of ``grids`` (rows of images)."""
    output_dir = Path(output_dir)
    check_report_dir(output_dir, overwrite)
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        output_dir / "metrics.json", json.dumps(results, indent=2, default=_json) + "\n"
    )
    atomic_write_text(output_dir / "metrics.md", markdown_report(results))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["metric", "value"])
    flat = flatten({k: v for k, v in results.items() if k != "run"})
    writer.writerows([k, repr(v)] for k, v in flat.items())
    atomic_write_text(output_dir / "metrics.csv", buffer.getvalue())
    for name, rows in grids.items():
        if rows:
            columns = max(len(row) for row in rows)
            padded = [img for row in rows for img in _pad_row(row, columns)]
            write_png(
                output_dir / "grids" / f"{name}.png",
                image_grid(torch.stack(padded), columns),
                overwrite=overwrite,
            )
    return output_dir


def _pad_row(row: list[Tensor], columns: int) -> list[Tensor]:
    blank = row[0].new_ones(row[0].shape)
    return list(row) + [blank] * (columns - len(row))


def _format(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    return str(value)


def _json(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to metrics.json")
