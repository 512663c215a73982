"""Settings administrators change at run time (the admin console and its API), over the
configuration file: an *overlay*, {section: {key: value}}, limited to the keys in EDITABLE.

The running configuration is the file's (and the environment's) with the newest overlay on
top, validated as a whole exactly as the file is. A change that does not validate is refused
with the same one-line message the file would get, and nothing changes. Pure: no I/O except
reading the DKIM key file that `Config` validation already reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from sealgate.config import Config, WrongValue, dkim_key_problem, wrong_value
from sealgate.errors import ConfigError

# What the console may change. Everything else (listeners, secrets, the database, the
# vault, TLS probing and the Microsoft settings) is the file's: changing it needs a restart.
EDITABLE: dict[str, tuple[str, ...]] = {
    "organisation": ("name", "domains", "footer", "disclaimer", "colour", "logo", "support"),
    "portal": ("require_mfa", "code_minutes", "code_attempts", "lockout_failures",
               "lockout_minutes", "session_minutes", "expiry_days", "reply_limit_mb",
               "notify_sender", "read_receipts"),
    "dlp": ("enabled", "packs", "pack_action", "min_confidence", "unreadable",
            "unreadable_action", "notify_address", "quarantine_days", "max_scan_mb",
            "attachment_seconds", "archive_members", "archive_inflated_mb", "policies",
            "detectors"),
    "routing": ("order", "domains", "recipients", "portal_keywords", "portal_enabled",
                "no_method", "protect_subject", "placeholder_subject"),
    "milter": ("subject_keywords",),
    "dkim": ("selector", "key", "domain"),
}

ORIGIN = "the admin console"


class SettingsError(ConfigError):
    """A change that would make the configuration invalid; the running one is unchanged.
    `wrong`: the value at fault in parts, when the refusal is about one value."""

    def __init__(self, message: str | WrongValue) -> None:
        super().__init__(str(message))
        self.wrong = message if isinstance(message, WrongValue) else None


def check_editable(changes: Mapping[str, Any]) -> None:
    """Only known sections and keys, as mappings."""
    for section, keys in changes.items():
        if section not in EDITABLE:
            raise SettingsError(f"{section}: not a section the console can change "
                                f"(it can change: {', '.join(EDITABLE)})")
        if not isinstance(keys, Mapping):
            raise SettingsError(f"{section}: must be an object of keys and values")
        for key in keys:
            if key not in EDITABLE[section]:
                raise SettingsError(f"{section}.{key}: not a key the console can change "
                                    f"(in {section}: {', '.join(EDITABLE[section])}); "
                                    "set it in sealgate.toml")


def merged(overlay: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The overlay with `changes` on top, key by key (a value of None takes the key out of
    the overlay: the file's value applies again)."""
    check_editable(changes)
    result = {section: dict(keys) for section, keys in overlay.items()}
    for section, keys in changes.items():
        target = result.setdefault(section, {})
        for key, value in keys.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
        if not target:
            del result[section]
    return result


def effective(base: Config, overlay: Mapping[str, Any]) -> Config:
    """The configuration that runs: `base` (file and environment) with the overlay on top,
    validated. Raises SettingsError naming the first wrong value."""
    check_editable(overlay)
    if not overlay:
        return base
    data = base.model_dump(exclude={"home"})
    for section, keys in overlay.items():
        data[section] = {**data[section], **keys}
    try:
        config = Config(home=base.home, **data)
    except ValidationError as exc:
        raise SettingsError(wrong_value(exc.errors()[0], ORIGIN)) from None
    problem = dkim_key_problem(config, ORIGIN)
    if problem is not None:
        raise SettingsError(problem)
    return config


def section_values(config: Config, section: str) -> dict[str, Any]:
    """The editable keys of a section as JSON values (what the API shows and takes)."""
    dumped = getattr(config, section).model_dump(mode="json")
    return {key: dumped[key] for key in EDITABLE[section]}


def differences(before: Config, after: Config) -> dict[str, dict[str, Any]]:
    """{"section.key": {"before": ..., "after": ...}} for every editable key that changed:
    what the audit trail records for a change."""
    found: dict[str, dict[str, Any]] = {}
    for section in EDITABLE:
        old, new = section_values(before, section), section_values(after, section)
        for key in EDITABLE[section]:
            if old[key] != new[key]:
                found[f"{section}.{key}"] = {"before": old[key], "after": new[key]}
    return found
