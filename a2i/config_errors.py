"""Config mistakes in one line: which key or class is wrong, and the closest valid one.

jsonargparse reports a mistyped ``--model.init_args.los`` as ~65 lines of usage followed by a
nested "Does not validate against any of the Union subtypes" tree. The cause is always its
innermost entry; :func:`summarize` turns the tree into ``<full key>: <problem> (did you mean
…?)`` and :class:`A2IArgumentParser` prints that line instead of the usage.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from lightning.pytorch.cli import LightningArgumentParser

_KEY = re.compile(r'^Parser key "([^"]+)":')
_CLASS = re.compile(r"^Problem with given class_path '([^']+)':")
_OPTION = re.compile(r"^Option '([^']+)' is not accepted")
_ATTRIBUTE = re.compile(r"^module '([^']+)' has no attribute '([^']+)'")
_LITERAL = re.compile(r"^Expected a typing\.Literal\[(.*)\]\. Got value: (.*)$")
_UNRECOGNIZED = re.compile(r"^Unrecognized arguments: (\S+)", re.IGNORECASE)
_CHOICE = re.compile(r"^argument (\w+): invalid choice: '([^']*)' \(choose from (.*)\)$")
_NOISE = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Given value",
    "Expected a <class 'NoneType'>",
    "Expected a path but",
)


def debugging_jsonargparse() -> bool:
    """Whether ``JSONARGPARSE_DEBUG=true`` asks for jsonargparse's full errors (its documented switch)."""
    return os.environ.get("JSONARGPARSE_DEBUG", "").lower() == "true"


def _hint(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _parameters(class_path: str) -> list[str]:
    """Constructor argument names of ``class_path`` and its bases (best effort)."""
    module, _, name = class_path.rpartition(".")
    if not module:
        return []
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return []
    names: list[str] = []
    for klass in inspect.getmro(cls):
        if "__init__" in vars(klass):
            names += [p for p in inspect.signature(klass.__init__).parameters if p != "self"]
    return names


def _classes(module: str) -> list[str]:
    try:
        found = importlib.import_module(module)
    except ImportError:
        return []
    return [name for name, obj in vars(found).items() if inspect.isclass(obj)]


def summarize(message: str, options: Sequence[str] = ()) -> str | None:
    """The one-line cause of a jsonargparse error message, or None if it is not recognised."""
    path: list[str] = []
    klass = ""
    cause = None
    for raw in message.splitlines():
        line = raw.strip().removeprefix("- ").strip()
        if not line or line.startswith(_NOISE):
            continue
        if match := _KEY.match(line):
            path.append(match[1])
        elif match := _CLASS.match(line):
            path.append("init_args")
            klass = match[1]
        elif match := _OPTION.match(line):
            key = ".".join([*path, match[1]])
            owner = f" of {klass}" if klass else ""
            return f"unknown key '{key}'{owner}{_hint(match[1], _parameters(klass))}"
        elif match := _ATTRIBUTE.match(line):
            key = ".".join(path[:-1]) or "class_path"
            wrong = f"{match[1]}.{match[2]}"
            hint = _hint(match[2], _classes(match[1]))
            return f"'{key}': there is no class {wrong}{hint}"
        elif match := _LITERAL.match(line):
            allowed = [c.strip().strip("'\"") for c in match[1].split(",")]
            value = match[2].strip()
            key = ".".join(path)
            return f"'{key}' must be one of {', '.join(allowed)}, not '{value}'" + _hint(
                value, allowed
            )
        elif match := _CHOICE.match(line):
            allowed = [c.strip().strip("'\"") for c in match[3].split(",")]
            return f"invalid {match[1]} '{match[2]}'{_hint(match[2], allowed)}"
        elif match := _UNRECOGNIZED.match(line):
            word = match[1]
            return f"unknown option {word}{_hint(word, list(options))}"
        else:
            cause = line
    if cause is None:
        return None
    return f"'{'.'.join(path)}': {cause}" if path else cause


class A2IArgumentParser(LightningArgumentParser):
    """Prints a config mistake as one line (plus where to find the options), not the usage.

    Abbreviated options are refused (argparse would take ``--trainer.max_step 5`` as
    ``--trainer.max_steps`` and train): the hint names the full option instead.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """One line naming the key or class and the closest valid one; exit status 2."""
        if not self.exit_on_error or debugging_jsonargparse():
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        options = [s for action in parser._actions for s in action.option_strings]
        line = summarize(message, options) or message.strip()
        prog = parser.prog.replace(" [options]", "")
        sys.stderr.write(f"a2i: error: {line}\n(options: {prog} --help)\n")
        sys.exit(2)
