"""Errors a user can fix. The CLI prints them as one line and exits with code 2.

Each one is also a ``ValueError`` so library callers may catch the usual type. Messages
name parameters as the Python API spells them (``context_points``); the CLI shows each
as its flag (``--context-points``).
"""


class TimetokError(ValueError):
    """Bad input: the message names the problem and how to fix it.

    ``details`` is optional supporting text (a table, say) that the CLI prints before the
    one-line message.
    """

    def __init__(self, message: str, *, details: str | None = None):
        super().__init__(message)
        self.details = details


class DataError(TimetokError):
    """A data file or dataset that cannot be used as given."""


class ConfigError(TimetokError):
    """An impossible combination of options or model settings."""


class CheckpointError(TimetokError):
    """A model folder or checkpoint that is missing, corrupt or does not match."""


class TrainingError(TimetokError):
    """A run that cannot go on: it diverged."""
