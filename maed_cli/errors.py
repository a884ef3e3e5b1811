"""Errors a user can cause. The CLI prints their message in one line and exits non-zero."""
from __future__ import annotations


class MaedError(Exception):
    """Base class: the message says what went wrong and what to do next."""

    exit_code = 2


class AssetMissingError(MaedError):
    """A licensed asset (checkpoint, SMPL, regressor, detector weights) is not where we look."""

    @classmethod
    def naming_all(cls, messages: list[str]) -> AssetMissingError:
        """One error for every missing asset, so that one run tells the user all of them."""
        if len(messages) == 1:
            return cls(messages[0])
        return cls(" | ".join(f"({i}) {m}" for i, m in enumerate(messages, 1)))


class CheckpointError(MaedError):
    """A checkpoint file that cannot be read, is unsafe, or does not fit the network."""


class InputError(MaedError):
    """Bad user input: a missing or unreadable file, an invalid option value."""
