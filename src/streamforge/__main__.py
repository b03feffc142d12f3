"""``python -m streamforge`` is the ``streamforge`` command."""

from streamforge.cli import app

app()
