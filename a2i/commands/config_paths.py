"""``--config`` names a file or a shipped config (:mod:`a2i.config_files`) in every command.

Each ``--config`` value of a command line is resolved before a parser sees it, and a file that
is not a YAML mapping is refused in one line (the parsers would report a list as its first item,
binary bytes as a traceback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from a2i.config_files import read_config_file, resolve_config
from a2i.errors import ConfigError

CONFIG_FLAGS = ("--config", "-c")
FLAG = "--config"
"""How errors name a config given on the command line."""


def resolve_config_arguments(argv: list[str]) -> list[str]:
    """``argv`` with every ``--config VALUE`` / ``--config=VALUE`` resolved by :func:`resolve_config`.

    A config file that is not a YAML mapping is refused here, in one line (the parsers would
    report a list as its first item, binary bytes as a traceback).
    """
    resolved = list(argv)
    for index, argument in enumerate(resolved):
        flag, equals, value = argument.partition("=")
        if flag not in CONFIG_FLAGS:
            continue
        if equals:
            value = resolve_config(value, FLAG)
            resolved[index] = f"{flag}={value}"
        elif index + 1 < len(resolved):
            value = resolved[index + 1] = resolve_config(resolved[index + 1], FLAG)
        else:
            continue
        if Path(value).exists():
            read_config_file(value, FLAG)
    return resolved


def with_data_section(argv: list[str]) -> list[str]:
    """``argv`` with ``--config FILE`` replaced by ``--data`` and that file's ``data`` section.

    The data tools take a whole run config, so the file that trains a model also builds its data.
    """
    import yaml

    index = argv.index("--config") if "--config" in argv else -1
    if index < 0 or index + 1 >= len(argv):
        return argv
    section = config_section(argv[index + 1], "data")
    return ["--data", yaml.safe_dump(section), *argv[:index], *argv[index + 2 :]]


def config_section(value: str, section: str) -> Any:
    """The ``section`` of the config file ``value`` (a tool reads only its ``data``).

    Raises:
        ConfigError: Not a config file (:func:`read_config_file`), or without ``section``.
    """
    config = read_config_file(value, FLAG)
    if config.get(section) is None:
        raise ConfigError(f"--config '{value}' has no {section} section")
    return config[section]
