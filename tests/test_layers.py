"""The package's layers never import upward, and its subpackages import each other without cycles.

Every module under ``a2i/`` is parsed (not imported) and each import of ``a2i.*`` it holds, at
module level or inside a function, ``import x`` or ``from x import y``, relative or absolute, is
checked against :data:`LAYERS`: a module may import from its own layer or below. A module's layer
is that of its top-level subpackage or module (``a2i.encoders.audio.ast`` → ``encoders``).
Serving data (``a2i.data``) imports no encoder, generator or CLAP (the builders in ``a2i.build``
do), and the builder and data modules import each other without cycles.
"""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "a2i"
ROOT = "a2i"
"""The package's own ``__init__.py`` (only ``__version__``): below everything."""

ORDER: tuple[tuple[str, ...], ...] = (
    (ROOT, "errors"),
    ("interfaces", "pretrained", "io_utils", "runtime", "config_files"),
    ("audio", "image"),
    ("modules",),
    ("encoders", "generators", "losses"),
    ("build",),
    ("data",),
    ("metrics",),
    ("pipelines",),
    ("callbacks",),
    ("methods",),
    ("synth",),
    ("jobs",),
    ("serve",),
    ("cli", "commands", "config_errors", "demo", "__main__"),
)
"""Bottom to top; names on one row share a layer."""

LAYERS = {name: level for level, names in enumerate(ORDER) for name in names}

MODELS = ("a2i.encoders", "a2i.generators", "a2i.synth.world_clap")
"""Encoders, generators and CLAPs: what building a dataset may run and serving it never needs."""
SERVING = ("base", "manifest", "folder", "shards", "shard_datamodule", "downstream")
"""The modules of :mod:`a2i.data` that only read (the others also run a builder)."""
NOT_CODE = {"assets", "configs", "py.typed", "__pycache__"}


@dataclass(frozen=True)
class Import:
    source: Path
    line: int
    target: str
    """Dotted ``a2i.*`` module imported (``from a2i.x import y`` gives ``a2i.x.y`` when ``y`` is a
    module, ``a2i.x`` otherwise)."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def unit(dotted: str) -> str:
    """Top-level subpackage or module of ``a2i.*`` (the package root is :data:`ROOT`)."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def imports_of(path: Path) -> list[Import]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [
                f"{origin}.{alias.name}" if is_module(f"{origin}.{alias.name}") else origin
                for alias in node.names
            ]
        else:
            continue
        found += [
            Import(path, node.lineno, target)
            for target in dict.fromkeys(targets)
            if target == ROOT or target.startswith(ROOT + ".")
        ]
    return found


def all_imports() -> list[Import]:
    return [i for path in sorted(PACKAGE.rglob("*.py")) for i in imports_of(path)]


def where(item: Import) -> str:
    return f"{item.source.relative_to(PACKAGE.parent)}:{item.line}"


def test_every_subpackage_and_module_has_a_layer():
    units = {
        path.stem if path.suffix == ".py" else path.name
        for path in PACKAGE.iterdir()
        if path.name not in NOT_CODE and (path.suffix == ".py" or path.is_dir())
    }
    units = {ROOT if name == "__init__" else name for name in units}
    missing = sorted(units - LAYERS.keys())
    assert not missing, f"give these a layer in tests/test_layers.py ORDER: {missing}"


def test_no_module_imports_from_a_higher_layer():
    """(A name without a layer fails :func:`test_every_subpackage_and_module_has_a_layer`.)"""
    upward = []
    for item in all_imports():
        source, target = unit(module_name(item.source)), unit(item.target)
        if source in LAYERS and target in LAYERS and LAYERS[target] > LAYERS[source]:
            upward.append(
                f"{where(item)} imports {item.target} (layer {target} is above layer {source})"
            )
    assert not upward, "upward imports:\n" + "\n".join(upward)


def find_cycles(edges: dict[str, Iterable[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk of ``edges`` (node → nodes it imports) closes, as a path."""
    cycles: list[list[str]] = []
    state: dict[str, str] = {}  # "open" while on the DFS path, "done" after

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return cycles


def test_subpackages_import_each_other_without_cycles():
    edges: dict[str, dict[str, Import]] = {}
    for item in all_imports():
        source, target = unit(module_name(item.source)), unit(item.target)
        if source != target:
            edges.setdefault(source, {}).setdefault(target, item)
    cycles = [
        " → ".join(loop)
        + "  ("
        + ", ".join(where(edges[a][b]) for a, b in itertools.pairwise(loop))
        + ")"
        for loop in find_cycles(edges)
    ]
    assert not cycles, "import cycles between subpackages:\n" + "\n".join(cycles)


def test_serving_data_imports_no_encoder_generator_or_clap():
    """a2i.data reads shards; the models that build them are the builders' (a2i.build)."""
    found = [
        f"{where(item)} imports {item.target}"
        for item in all_imports()
        if unit(module_name(item.source)) == "data"
        and any(item.target == m or item.target.startswith(m + ".") for m in MODELS)
    ]
    assert not found, "serving data imports models:\n" + "\n".join(found)


def test_reading_shards_loads_no_model_module():
    """Not even through a builder: the reading modules' import closure holds no model."""
    modules = ", ".join(f"a2i.data.{name}" for name in SERVING)
    code = f"import sys, {modules}; print(sorted(m for m in sys.modules if m.startswith('a2i.')))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert not [m for m in MODELS if m in loaded], loaded


def test_builder_and_data_modules_import_each_other_without_cycles():
    """Module by module (the subpackage test above cannot see a circle inside one)."""
    inside = ("a2i.build", "a2i.data")
    edges: dict[str, set[str]] = {}
    for item in all_imports():
        source = module_name(item.source)
        if source.startswith(inside) and item.target.startswith(inside):
            edges.setdefault(source, set()).add(item.target)
    cycles = [" → ".join(loop) for loop in find_cycles(edges)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.slow
def test_a_vggsound_user_does_not_import_the_synthetic_world():
    code = "import sys, a2i.data.vggsound; print(sorted(m for m in sys.modules if m.startswith('a2i.')))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "a2i.synth" not in loaded, loaded
