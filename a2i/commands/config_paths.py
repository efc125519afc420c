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
    """``argv`` with every ``--config VALUE`` / ``--config=VALUE`` resolved by :func:`resolve_config`."""
    resolved = list(argv)
    for index, argument in enumerate(resolved):
        flag, equals, value = argument.partition("=")
        if flag not in CONFIG_FLAGS:
            continue
        if equals:
            resolved[index] = f"{flag}={resolve_config(value)}"
        elif index + 1 < len(resolved):
            resolved[index + 1] = resolve_config(resolved[index + 1])
    return resolved
