"""``python -m crystalspace.cli``."""

from crystalspace.cli import app

app()
