"""a2i uses other packages through their public names only (Lightning above all).

A private name (``_x``) may change in any release without notice: the CLI once rode on four of
Lightning's and broke on upgrades. Every module under ``a2i/`` is parsed; an import of a private
module or name from another package, an attribute ``obj._x`` that its own module does not define, and
a method ``_x`` overriding one of another package's class (its base is imported to see) fail this
test unless :data:`ALLOWED` says why no public way exists.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[1] / "a2i"

ALLOWED = {
    "_actions": (
        "argparse has no public list of a parser's actions; tab completion and the config error "
        "messages walk them (the attribute has been stable since Python 2.7)"
    ),
    "_fill_text": (
        "argparse's help formatters are extended by overriding these two methods (its own "
        "RawDescriptionHelpFormatter does); a2i's keeps a description's paragraphs apart"
    ),
    "_split_lines": "the same",
}
"""Private attribute or method → why a2i reads or overrides it."""


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text())) for path in sorted(PACKAGE.rglob("*.py"))]


def names_defined_in(tree: ast.Module) -> set[str]:
    """Every name a module binds: functions, classes, assigned names and attributes, arguments.

    Per module, not over all of a2i: a2i defining ``_update`` somewhere must not hide a read of
    Lightning's ``_update`` elsewhere.
    """
    defined = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    return defined


def external_bases(tree: ast.Module, node: ast.ClassDef) -> list[Any]:
    """The classes of other packages ``node`` derives from directly (imported to inspect)."""
    imported = {}
    for statement in tree.body:
        if isinstance(statement, ast.ImportFrom) and statement.module and not statement.level:
            if statement.module.split(".")[0] != "a2i":
                imported.update(
                    {a.asname or a.name: (statement.module, a.name) for a in statement.names}
                )
        elif isinstance(statement, ast.Import):
            imported.update({a.asname or a.name: (a.name, None) for a in statement.names})
    bases = []
    for base in node.bases:
        head, *rest = ast.unparse(base).split(".")
        if head in imported:
            module, name = imported[head]
            found = importlib.import_module(module)
            for attribute in [name, *rest] if name else rest:
                found = getattr(found, attribute)
            bases.append(found)
    return bases


def private_uses(where: Path, tree: ast.Module) -> list[str]:
    """The private names of other packages one module imports, reads or overrides."""
    own = names_defined_in(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] == "a2i":
                continue
            if any(map(is_private, node.module.split("."))):
                found.append(f"{where}:{node.lineno} imports from {node.module}")
            found += [
                f"{where}:{node.lineno} imports {alias.name} from {node.module}"
                for alias in node.names
                if is_private(alias.name)
            ]
        elif isinstance(node, ast.Import):
            found += [
                f"{where}:{node.lineno} imports {alias.name}"
                for alias in node.names
                if any(map(is_private, alias.name.split(".")))
            ]
        elif isinstance(node, ast.ClassDef):
            bases = external_bases(tree, node)
            found += [
                f"{where}:{item.lineno} overrides {item.name} of {base.__qualname__}"
                for item in node.body
                if isinstance(item, ast.FunctionDef)
                and is_private(item.name)
                and item.name not in ALLOWED
                for base in bases
                if hasattr(base, item.name)
            ]
        elif (
            isinstance(node, ast.Attribute)
            and is_private(node.attr)
            and node.attr not in own
            and node.attr not in ALLOWED
        ):
            found.append(f"{where}:{node.lineno} reads {ast.unparse(node)}")
    return found


def test_no_private_name_of_another_package_is_used():
    found = [
        use
        for path, tree in modules()
        for use in private_uses(path.relative_to(PACKAGE.parent), tree)
    ]
    assert not found, "private names of other packages:\n" + "\n".join(found)


def test_a_private_name_a2i_defines_elsewhere_does_not_hide_another_packages():
    source = (
        "from lightning.pytorch.callbacks import RichProgressBar\n"
        "def redraw(bar: RichProgressBar):\n"
        "    bar._module_name(0)\n"
        "class Cache:\n"
        "    def _clear(self):\n"
        "        self._clear()\n"
    )
    assert any("_module_name" in names_defined_in(tree) for _, tree in modules())  # a2i's too
    found = private_uses(Path("a2i/example.py"), ast.parse(source))
    assert found == ["a2i/example.py:3 reads bar._module_name"]
