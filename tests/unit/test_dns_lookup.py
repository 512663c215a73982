"""The one place Sealgate makes its DNS resolvers: servers given as IP or IP:PORT, and TXT
lookups against the loopback DNS server."""

from __future__ import annotations

import dns.nameserver
import pytest

from sealgate.dns_lookup import DnsError, resolver, server_address, txt
from tests.routing.conftest import DnsServer, Zone


def test_servers_are_ip_or_ip_and_port() -> None:
    assert server_address("192.0.2.53") == ("192.0.2.53", 53)
    assert server_address("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert server_address("2001:db8::53") == ("2001:db8::53", 53)
    for wrong in ("dns.example", "127.0.0.1:", "127.0.0.1:dns", "127.0.0.1:70000", ""):
        with pytest.raises(DnsError, match="is not IP or IP:PORT"):
            server_address(wrong)


def test_a_resolver_asks_the_servers_given_within_the_time_given() -> None:
    made = resolver(["127.0.0.1:5353", "192.0.2.1"], timeout=7.0)
    assert [(n.address, n.port) for n in made.nameservers
            if isinstance(n, dns.nameserver.Do53Nameserver)] == [
        ("127.0.0.1", 5353), ("192.0.2.1", 53)]
    assert made.lifetime == 7.0 and made.timeout == 2.0  # the next server after 2 s
    assert resolver(["127.0.0.1"], timeout=0.5).timeout == 0.5


def test_txt_joins_each_records_strings_and_finds_nothing_where_nothing_is(
        zone: tuple[Zone, DnsServer]) -> None:
    records, server = zone
    records.add("example.org", "TXT", '"v=spf1 " "mx -all"', '"other"')
    asking = resolver([f"127.0.0.1:{server.port}"], timeout=2.0)
    assert sorted(txt(asking, "example.org")) == ["other", "v=spf1 mx -all"]
    assert txt(asking, "missing.example.org") == []  # NXDOMAIN
    records.add("example.org", "MX", "10 mx.example.org.")
    records.add("mx.example.org", "A", "192.0.2.25")
    assert txt(asking, "mx.example.org") == []  # the name exists, without TXT


def test_a_failing_server_is_a_clear_error(zone: tuple[Zone, DnsServer]) -> None:
    records, server = zone
    records.servfail.add("broken.example")
    asking = resolver([f"127.0.0.1:{server.port}"], timeout=2.0)
    with pytest.raises(DnsError, match="cannot look up TXT x.broken.example"):
        txt(asking, "x.broken.example")
