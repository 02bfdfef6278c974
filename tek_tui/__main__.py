"""``python -m tek_tui`` runs the ``tek`` command."""

from tek_tui.cli import entry

entry()
