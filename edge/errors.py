"""Errors a user can act on: each message says what went wrong and what to do."""


class EdgeError(Exception):
    """Base for every error the CLI reports as a one-line message instead of a traceback."""


class ConfigError(EdgeError):
    """A configuration value is missing, unknown or out of range."""


class ModelError(EdgeError):
    """A model file is missing, altered, or not the one the manifest names."""


class SourceError(EdgeError):
    """A frame source cannot be opened or read."""
