"""Errors meant for the operator: each carries one clear line that the CLI prints as is."""

from __future__ import annotations


class SealgateError(Exception):
    """Base of every error whose message is fit to show an operator without a traceback."""

    exit_code = 1


class ConfigError(SealgateError):
    """The configuration (file or environment) holds a value that is not allowed."""

    exit_code = 2


class HomeError(SealgateError):
    """The home directory is missing or not initialised."""

    exit_code = 2


class KeyringError(SealgateError):
    """The keyring file is unreadable, has unsafe permissions, or lacks a needed key version."""


class SealError(SealgateError):
    """A sealed blob or wrapped key failed authentication: tampered, truncated or wrong key."""


class VaultError(SealgateError):
    """The vault's database or blob store cannot be used."""
