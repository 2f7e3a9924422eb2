"""The ``durascope`` command (one console script; ``python -m recorder.cli`` runs it too).

``recorder.cli.app`` holds the group and what every command shares; each module below adds
the commands of one concern to it.
"""

from recorder.cli import callbacks, db, executions, functions, replay, running, transfer, webhooks  # noqa: F401 - commands
from recorder.cli.app import main

__all__ = ["main"]
