"""Errors of the shared plumbing."""

from __future__ import annotations


class RuntimeFailure(Exception):
    """Base class for plumbing errors."""


class ConfigError(RuntimeFailure):
    """A configuration file is missing, not TOML, or fails validation; ``problems`` lists each."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


class SecretError(RuntimeFailure):
    """A secret file or credential cannot be read."""


class StoreClosed(RuntimeFailure):
    """A database call was made after the store was closed."""
