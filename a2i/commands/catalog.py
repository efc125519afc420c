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
import re
from collections.abc import Iterator
from pathlib import Path

from jsonargparse import DefaultHelpFormatter

from a2i.config_files import shipped_configs

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


def command_help(command: str, summary: str) -> dict[str, str]:
    """A Lightning command's ``--help`` head: a one-line usage, then the catalog.

    What ``--config``, ``--model`` and ``--data`` take (the configs, methods and datamodules a2i
    ships) comes before the hundreds of options, not after them.
    """
    catalog = [
        f"configs shipped with a2i (--config NAME): {', '.join(shipped_configs())}",
        f"methods (--model.class_path): {', '.join(known_subclasses(METHOD_BASE))}",
        f"datamodules (--data.class_path): {', '.join(known_subclasses(DATAMODULE_BASE))}",
    ]
    return {
        "usage": f"a2i {command} [-h] [-c CONFIG] [--print_config] [--KEY VALUE ...]",
        "description": "\n\n".join([f"a2i {command}: {summary}.", *catalog]),
    }


_ROLE = re.compile(r":[\w:]+:`([^`]*)`")
_LITERAL = re.compile(r"``(.*?)``", re.DOTALL)
_DIRECTIVE = re.compile(r"\.\.\s+(\w+)::")
_LITERAL_BLOCK = re.compile(r"(\S)::(?=\s|$)")


def _role_text(match: re.Match[str]) -> str:
    """``:class:`~a.B``` → ``B``; ``:meth:`text <target>``` → ``text``; else the target."""
    target = re.sub(r"\s*<[^>]*>$", "", match[1]) if match[1].endswith(">") else match[1]
    return target[1:].rpartition(".")[2] if target.startswith("~") else target


def plain_text(text: str) -> str:
    """Docstring reStructuredText (roles, literals, directives) as a terminal should show it.

    The help of Lightning's and a2i's arguments is their docstrings' text.
    """
    text = _ROLE.sub(_role_text, text)
    text = _LITERAL.sub(r"\1", text)
    text = _DIRECTIVE.sub(lambda m: f"{m[1].capitalize()}:", text)
    return _LITERAL_BLOCK.sub(r"\1:", text)


class ParagraphHelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help formatter, as plain text, keeping a description's paragraphs apart."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        fill = super()._fill_text
        return "\n\n".join(fill(plain_text(part), width, indent) for part in text.split("\n\n"))

    def _split_lines(self, text: str, width: int) -> list[str]:
        return super()._split_lines(plain_text(text), width)

    def start_section(self, heading: str | None) -> None:
        """A group's heading (a class's docstring line), as plain text."""
        super().start_section(None if heading is None else plain_text(heading))
