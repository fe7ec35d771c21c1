"""``python -m tradeloop`` runs the command line."""

from .cli import main

main()
