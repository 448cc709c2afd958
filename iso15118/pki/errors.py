"""The PKI's error type, importable without loading the crypto library."""

from __future__ import annotations


class ChainError(Exception):
    """The chain is rejected; ``reason`` says why."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)
