# PYTHON_ARGCOMPLETE_OK (argcomplete's global completion looks for this marker)
"""The ``a2i`` command (and ``python -m a2i``), light enough for ``a2i --help`` to be instant.

Help, ``--version``, the tools (``a2i world`` …) and tab completion of command names run from
:mod:`a2i.commands` without importing Lightning; only the Lightning commands import :mod:`a2i.cli`.
"""

from __future__ import annotations

import sys

from a2i.commands import completion, run_without_lightning


def main(args: list[str] | None = None) -> None:
    """Run ``a2i ARGS`` (default: the command line)."""
    argv = sys.argv[1:] if args is None else list(args)
    if completion.requested():  # the shell asks for candidates (the line is in COMP_LINE)
        argv = args = [completion.complete_without_lightning()]
    if run_without_lightning(argv):
        return
    from a2i.cli import main as lightning_main

    lightning_main(args)


if __name__ == "__main__":
    main()
