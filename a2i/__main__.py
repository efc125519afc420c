"""The ``a2i`` command (and ``python -m a2i``), light enough for ``a2i --help`` to be instant.

Help, ``--version`` and the tools (``a2i world`` …) run from :mod:`a2i.commands` without
importing Lightning; only the Lightning commands import :mod:`a2i.cli`.
"""

from __future__ import annotations

import sys

from a2i.commands import run_without_lightning


def main(args: list[str] | None = None) -> None:
    """Run ``a2i ARGS`` (default: the command line)."""
    argv = sys.argv[1:] if args is None else list(args)
    if run_without_lightning(argv):
        return
    from a2i.cli import main as lightning_main

    lightning_main(args)


if __name__ == "__main__":
    main()
