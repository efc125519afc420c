"""``python -m a2i`` runs the a2i command."""

from a2i.cli import main

main()
