"""What ``a2i fit --help`` offers: the methods, datamodules and configs a2i ships.

jsonargparse lists a base class's "known subclasses" only among the modules already imported, and
importing every method would import diffusers, transformers and open_clip for a help page. The
classes are found instead by reading (not importing) a2i's source: every class that derives, by
name and through any number of steps, from :class:`~a2i.methods.base.A2IMethod` or
:class:`~a2i.data.base.AudioVisualDataModule`, in the subpackages where methods and datamodules
live (:data:`SEARCHED`).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

from jsonargparse import DefaultHelpFormatter

from a2i.commands.config_paths import shipped_configs

PACKAGE = Path(__file__).resolve().parents[1]
METHOD_BASE = "a2i.methods.base.A2IMethod"
DATAMODULE_BASE = "a2i.data.base.AudioVisualDataModule"
SEARCHED = ("methods", "data", "synth")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _classes(path: Path) -> Iterator[tuple[str, list[str], bool]]:
    """``(dotted name, dotted bases, abstract)`` of each top-level class of one module."""
    module = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = {}  # local name → dotted origin
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
        elif isinstance(node, ast.ClassDef):
            names[node.name] = f"{module}.{node.name}"
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            bases = [names.get(b.id, b.id) for b in node.bases if isinstance(b, ast.Name)]
            abstract = node.name.startswith("_") or any(
                isinstance(d, ast.Name | ast.Attribute)
                and ast.unparse(d).endswith("abstractmethod")
                for item in node.body
                if isinstance(item, ast.FunctionDef)
                for d in item.decorator_list
            )
            yield f"{module}.{node.name}", bases, abstract


@functools.cache
def _all_classes() -> list[tuple[str, list[str], bool]]:
    return [
        found
        for folder in SEARCHED
        for path in sorted((PACKAGE / folder).rglob("*.py"))
        for found in _classes(path)
    ]


def known_subclasses(base: str) -> list[str]:
    """Dotted names of a2i's concrete classes derived from ``base`` (itself excluded), sorted."""
    found = _all_classes()
    derived, grew = {base}, True
    while grew:
        before = len(derived)
        derived |= {name for name, bases, _ in found if derived.intersection(bases)}
        grew = len(derived) > before
    return sorted(name for name, _, abstract in found if name in derived - {base} and not abstract)


def fit_epilog() -> str:
    """The end of a Lightning command's ``--help``: what ``--model``, ``--data``, ``--config`` take."""
    return "\n\n".join(
        [
            f"methods (--model.class_path): {', '.join(known_subclasses(METHOD_BASE))}",
            f"datamodules (--data.class_path): {', '.join(known_subclasses(DATAMODULE_BASE))}",
            f"configs shipped with a2i (--config NAME): {', '.join(shipped_configs())}",
        ]
    )


class ParagraphHelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help formatter, keeping the paragraphs of a description or epilog apart."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        fill = super()._fill_text
        return "\n\n".join(fill(part, width, indent) for part in text.split("\n\n"))
