"""Config files: the ones shipped with a2i, addressable by name, and reading one safely.

The repository's ``configs/`` is also the package's ``a2i/configs`` (a link in the source tree,
real files in the wheel), so an installed a2i runs the README's commands from any folder:
``tiny/sound2vision_gan``, ``a2i://configs/tiny/sound2vision_gan.yaml`` and
``configs/tiny/sound2vision_gan.yaml`` all name the same shipped file, for ``--config`` and for
:meth:`AudioToImagePipeline.from_config <a2i.pipelines.AudioToImagePipeline.from_config>` alike.
A path that exists is always taken as it is. A config file is read with one-line errors for what
is not a YAML mapping (a list, binary bytes), never a traceback.
"""

from __future__ import annotations

import difflib
from importlib.resources import files
from pathlib import Path
from typing import Any

from a2i.errors import ConfigError

SCHEME = "a2i://"


def configs_root() -> Path:
    """The folder of shipped configs (inside the installed package)."""
    return Path(str(files("a2i"))) / "configs"


def shipped_configs() -> list[str]:
    """Names of the shipped configs (``tiny/sound2vision_gan``), sorted."""
    root = configs_root()
    return sorted(
        path.relative_to(root).with_suffix("").as_posix() for path in root.rglob("*.yaml")
    )


def resolve_config(value: str, label: str = "config") -> str:
    """The file ``value`` names: itself if it exists, else the shipped config of that name.

    ``label`` names the value in the error (the CLI's ``--config``).

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
    raise ConfigError(f"{label} '{value}' is neither a file nor a config shipped with a2i{hint}")


def read_config_file(value: str | Path, label: str = "config") -> dict[str, Any]:
    """The YAML mapping in the config file ``value`` (``label`` names it in the errors).

    Raises:
        ConfigError: ``value`` cannot be read, is not YAML, or holds no mapping of sections.
    """
    import yaml  # (``a2i --help`` imports this module)

    try:
        config = yaml.safe_load(Path(value).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{label} '{value}' cannot be read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{label} '{value}' is not a text file (not UTF-8)") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or getattr(error, "reason", type(error).__name__)
        raise ConfigError(f"{label} '{value}' is not valid YAML ({problem}{where})") from None
    if not isinstance(config, dict):
        kinds = {list: "a list", str: "a string", int: "a number", float: "a number"}
        found = "nothing" if config is None else kinds.get(type(config), type(config).__name__)
        raise ConfigError(f"{label} '{value}' holds {found}, not a mapping of config sections")
    return config
