"""Checks a settings change must pass beyond the configuration's own validation, before it
is stored: what the milter would otherwise find only when it reloads, and what would fail
only out in the world (signatures nobody can verify)."""

from __future__ import annotations

from sealgate import dns_lookup
from sealgate.config import Config
from sealgate.dlp.inspect import Inspector
from sealgate.mail.dkim import DkimError, DkimKey, check_dkim
from sealgate.settings import SettingsError

DNS_SECONDS = 5.0  # an administrator is waiting for the answer


def dlp_compiles(before: Config, after: Config) -> None:
    """The DLP policies and detectors build into a working inspector (the milter builds the
    same one when it reloads)."""
    if after.dlp == before.dlp:
        return
    try:
        Inspector.from_config(after)
    except Exception as error:  # the engine's own complaint, whatever its type
        raise SettingsError(f"the DLP policies cannot be used: {error}") from None


def dkim_key_is_published(before: Config, after: Config) -> None:
    """A DKIM key (or selector, or signing domain) the console sets must be the one DNS
    publishes at SELECTOR._domainkey.DOMAIN: signing with any other makes every signature
    fail. Asks routing.dns_servers, or the system's resolver."""
    if (after.dkim, after.dkim_domain) == (before.dkim, before.dkim_domain):
        return
    try:
        key = DkimKey.from_config(after)
    except DkimError as error:
        raise SettingsError(f"dkim.key = {after.dkim.key!r}: {error}") from None
    if key is None:  # signing turned off: nothing to publish
        return
    publish = f'publish {key.record_name}. TXT "{key.record()}"'
    try:
        texts = dns_lookup.txt(dns_lookup.resolver(after.routing.dns_servers, DNS_SECONDS),
                               key.record_name)
    except dns_lookup.DnsError as error:
        raise SettingsError(f"the DKIM key could not be checked against DNS ({error}); "
                            f"it must be published first: {publish}") from None
    finding = check_dkim(key.record_name, texts, key)
    if not finding.ok:
        problem = finding.line.removesuffix("; publish the record above")
        raise SettingsError(f"{problem}. The running configuration is unchanged: {publish}, "
                            "then save the change again")


CHECKS = (dlp_compiles, dkim_key_is_published)
