"""Errors a user can fix. The CLI prints them as one line and exits with code 2.

Each one is also a ``ValueError`` so library callers may catch the usual type.
"""


class TimetokError(ValueError):
    """Bad input: the message names the problem and how to fix it."""


class DataError(TimetokError):
    """A data file or dataset that cannot be used as given."""


class ConfigError(TimetokError):
    """An impossible combination of options or model settings."""


class CheckpointError(TimetokError):
    """A model folder or checkpoint that is missing, corrupt or does not match."""
