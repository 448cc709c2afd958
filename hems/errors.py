"""The typed errors of the home energy manager."""

from __future__ import annotations


class HemsError(Exception):
    """Base class of every error raised by ``hems``."""


class ConfigError(HemsError, ValueError):
    """A site configuration or scenario that cannot be used; ``key`` names the offending entry."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class SensorError(HemsError):
    """A device read that failed (timeout, Modbus exception, a value out of range or not finite).

    The controller never sees this exception: drivers turn it into an absent reading, which counts
    as a sensor failure."""
