"""The DNS questions Sealgate asks itself, with dnspython: a resolver that asks the configured
servers (or the system's), and TXT lookups (DKIM, SPF, DMARC records). One place, so the
`sealgate` commands, the verified-TLS prober and the settings checks ask the same way."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import dns.exception
import dns.nameserver
import dns.resolver

from sealgate.errors import SealgateError

# dnspython's own default: how long one server may take before the next is asked.
PER_SERVER_SECONDS = 2.0


class DnsError(SealgateError):
    """No resolver to ask, a server given wrongly, or a lookup that got no usable answer."""


def server_address(server: str) -> tuple[str, int]:
    """'IP' or 'IP:PORT' (an IPv6 address, with its several colons, takes no port here)."""
    address, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "53")
    try:
        ipaddress.ip_address(address)
        number = int(port)
    except ValueError:
        raise DnsError(f"{server!r} is not IP or IP:PORT") from None
    if not 0 < number < 65536:
        raise DnsError(f"{server!r} is not IP or IP:PORT")
    return address, number


def resolver(servers: Sequence[str] = (), timeout: float = 5.0) -> dns.resolver.Resolver:
    """A resolver asking `servers` (IP or IP:PORT each) in turn, or the system's resolvers
    when there are none; a lookup gives up after `timeout` seconds."""
    try:
        made = dns.resolver.Resolver(configure=not servers)
    except dns.resolver.NoResolverConfiguration:
        raise DnsError("no DNS resolver is configured on this system (/etc/resolv.conf): "
                       "name a server") from None
    if servers:
        made.nameservers = [dns.nameserver.Do53Nameserver(*server_address(server))
                            for server in servers]
    made.lifetime = timeout
    made.timeout = min(PER_SERVER_SECONDS, timeout)
    return made


def txt(asking: dns.resolver.Resolver, name: str) -> list[str]:
    """The TXT strings at `name` (each record's strings joined); none when nothing is there.
    Raises DnsError when no answer came (timeout, SERVFAIL, refused)."""
    try:
        answer = asking.resolve(name, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as error:
        raise DnsError(f"cannot look up TXT {name}: {error}") from None
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]
