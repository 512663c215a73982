"""Checks a settings change must pass beyond the configuration's own validation, before it
is stored: what the milter would otherwise find only when it reloads."""

from __future__ import annotations

from sealgate.config import Config
from sealgate.dlp.inspect import Inspector
from sealgate.settings import SettingsError


def dlp_compiles(before: Config, after: Config) -> None:
    """The DLP policies and detectors build into a working inspector (the milter builds the
    same one when it reloads)."""
    if after.dlp == before.dlp:
        return
    try:
        Inspector.from_config(after)
    except Exception as error:  # the engine's own complaint, whatever its type
        raise SettingsError(f"the DLP policies cannot be used: {error}") from None


CHECKS = (dlp_compiles,)
