"""``python -m plughost`` runs the CLI."""

from plughost.interfaces.cli import main

main()
