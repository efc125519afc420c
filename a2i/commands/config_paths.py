"""Configs shipped with a2i, addressable by name wherever ``--config`` takes a file.

The repository's ``configs/`` is also the package's ``a2i/configs`` (a link in the source tree,
real files in the wheel), so an installed a2i runs the README's commands from any folder:
``--config tiny/sound2vision_gan``, ``--config a2i://configs/tiny/sound2vision_gan.yaml`` and
``--config configs/tiny/sound2vision_gan.yaml`` all name the same shipped file. A path that
exists is always taken as it is.
"""

from __future__ import annotations

import difflib
from importlib.resources import files
from pathlib import Path
from typing import Any

from a2i.errors import ConfigError

SCHEME = "a2i://"
CONFIG_FLAGS = ("--config", "-c")


def configs_root() -> Path:
    """The folder of shipped configs (inside the installed package)."""
    return Path(str(files("a2i"))) / "configs"


def shipped_configs() -> list[str]:
    """Names of the shipped configs (``tiny/sound2vision_gan``), sorted."""
    root = configs_root()
    return sorted(
        path.relative_to(root).with_suffix("").as_posix() for path in root.rglob("*.yaml")
    )


def resolve_config(value: str) -> str:
    """The file ``value`` names: itself if it exists, else the shipped config of that name.

    Raises:
        ConfigError: ``value`` is neither a file nor a shipped config (closest names given).
    """
    if Path(value).exists() or "\n" in value or ": " in value or value.startswith(("{", "[")):
        return value  # a file, or a config given inline
    name = value.removeprefix(SCHEME).removeprefix("configs/").removesuffix(".yaml")
    path = configs_root() / f"{name}.yaml"
    if path.is_file():
        return str(path)
    close = difflib.get_close_matches(name, shipped_configs(), n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else " (`a2i fit --help` lists them)"
    raise ConfigError(f"--config '{value}' is neither a file nor a config shipped with a2i{hint}")


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
            value = resolve_config(value)
            resolved[index] = f"{flag}={value}"
        elif index + 1 < len(resolved):
            value = resolved[index + 1] = resolve_config(resolved[index + 1])
        else:
            continue
        if Path(value).exists():
            read_config_file(value)
    return resolved


def read_config_file(value: str) -> dict[str, Any]:
    """The YAML mapping in the config file ``value``.

    Raises:
        ConfigError: ``value`` cannot be read, is not YAML, or holds no mapping of sections.
    """
    import yaml  # (``a2i --help`` imports this module)

    try:
        config = yaml.safe_load(Path(value).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"--config '{value}' cannot be read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--config '{value}' is not a text file (not UTF-8)") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or getattr(error, "reason", type(error).__name__)
        raise ConfigError(f"--config '{value}' is not valid YAML ({problem}{where})") from None
    if not isinstance(config, dict):
        kinds = {list: "a list", str: "a string", int: "a number", float: "a number"}
        found = "nothing" if config is None else kinds.get(type(config), type(config).__name__)
        raise ConfigError(f"--config '{value}' holds {found}, not a mapping of config sections")
    return config


def config_section(value: str, section: str) -> Any:
    """The ``section`` of the config file ``value`` (a tool reads only its ``data``).

    Raises:
        ConfigError: Not a config file (:func:`read_config_file`), or without ``section``.
    """
    config = read_config_file(value)
    if config.get(section) is None:
        raise ConfigError(f"--config '{value}' has no {section} section")
    return config[section]


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
