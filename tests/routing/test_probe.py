"""The prober against real servers on loopback (DNS, SMTP with STARTTLS, HTTPS for MTA-STS;
see conftest.py), and the verdict cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from sealgate.routing.evidence import MAX_HOST_LINES, TlsVerdict
from sealgate.routing.probe import PolicyFetchError, ProbeCache, Prober, describe
from tests.routing.conftest import STS_ENFORCE, Lab


@pytest.fixture(scope="module")
def prober(lab: Lab) -> Prober:
    return Prober(lab.dns.resolver(), lab.context_factory(), port=lab.smtp_port, timeout=2,
                  https_port=lab.https.port, deadline=4, allow_loopback=True)


def evidence(result: TlsVerdict) -> str:
    return "\n".join(result.evidence_lines)


def test_every_mx_with_a_valid_certificate_qualifies(prober: Prober) -> None:
    result = prober.probe("good.test")
    assert result.qualifies, evidence(result)
    assert result.source == "starttls-probe"
    first, second = result.evidence_lines[:2]
    assert first.startswith("MX mx1.good.test (10) [127.0.0.11]: STARTTLS TLSv1.")
    assert "certificate CN=mx1.good.test sha256 " in first
    assert first.endswith(" valid")
    assert second.startswith("MX mx2.good.test (20) [127.0.0.11]: STARTTLS")
    assert "MTA-STS: no policy published (no _mta-sts TXT record)" in result.evidence_lines
    assert result.evidence_lines[-1] == ("qualifies: every MX (2) offers STARTTLS with a "
                                         "certificate valid for its name")
    assert result.ttl_seconds == 120  # the MX TTL, the smallest of the answers used


def test_a_domain_without_mx_is_its_own_implicit_mx(prober: Prober) -> None:
    result = prober.probe("Implicit.Test.")
    assert result.qualifies and result.source == "starttls-probe", evidence(result)
    assert result.domain == "implicit.test"
    assert result.evidence_lines[0].startswith("implicit MX implicit.test (0) [127.0.0.11]: ")


@pytest.mark.parametrize("domain, expected", [
    ("expired.test", "certificate CN=mx.expired.test sha256"),
    ("expired.test", "not valid: certificate has expired"),
    ("wrongname.test", "not valid: Hostname mismatch"),
    ("selfsigned.test", "not valid: self-signed certificate"),
    ("plain.test", "MX mx.plain.test (10) [127.0.0.15]: STARTTLS not offered"),
    ("refuses.test", "server answered 454"),
    ("mixed.test", "not qualified: MX mx.expired.test certificate not valid: certificate "
                   "has expired"),
    ("silent.test", "timed out"),
    ("endless.test", "gave up after 4 s"),
    ("noaddress.test", "MX mx.noaddress.test (10): no address (A or AAAA)"),
    ("nullmx.test", "null MX: the domain accepts no mail"),
    ("nonexistent.test", "the domain does not exist (NXDOMAIN)"),
    ("servfail.test", "MX lookup failed: MX servfail.test: no server gave an answer"),
    ("timeout.test", "MX lookup failed: MX timeout.test: timed out"),
    ("garbage.test", "MX lookup failed"),
    ("absurd.test", "MX -bad-.absurd.test (10): MX name is not a valid host name"),
    ("absurd.test", r"MX a\032b.absurd.test (20): MX name is not a valid host name"),
    ("absurd.test", "MX 127.0.0.1 (30): MX name is not a valid host name"),
    ("absurd.test", "MX localhost (40): MX name is not a valid host name"),
    ("danepkix.test", "does not match its TLSA records"),
])
def test_failures_are_evidence_and_do_not_qualify(prober: Prober, domain: str,
                                                  expected: str) -> None:
    result = prober.probe(domain)
    assert not result.qualifies and result.source is None
    assert expected in evidence(result)
    assert result.evidence_lines[-1].startswith("not qualified: ")
    assert 60 <= result.ttl_seconds <= 300  # failures are looked at again soon


def test_an_ipv6_only_mx_is_probed_on_its_aaaa_address(prober: Prober) -> None:
    result = prober.probe("ipv6only.test")
    assert not result.qualifies
    assert result.evidence_lines[0].startswith("MX mx.ipv6only.test (10) [::1]: ")


def test_a_thousand_mx_records_arrive_over_tcp_and_are_summarised(prober: Prober) -> None:
    result = prober.probe("many.test")
    assert not result.qualifies
    text = evidence(result)
    assert "not probed: the domain lists 1000 MX hosts, Sealgate probes at most 10" in text
    assert "… 980 more MX hosts not shown, 980 of them failed" in text
    assert len(result.evidence_lines) <= MAX_HOST_LINES + 3


def test_loopback_mx_addresses_are_refused_by_default(lab: Lab) -> None:
    guarded = Prober(lab.dns.resolver(), lab.context_factory(), port=lab.smtp_port,
                     timeout=2, https_port=lab.https.port)
    result = guarded.probe("good.test")
    assert not result.qualifies
    assert "not probed: 127.0.0.11 is a loopback address" in evidence(result)


@pytest.mark.parametrize("domain", [
    "", " ", "a b.test", "x" * 300, "exa..mple.test", "127.0.0.1", "-x-.test", "\x00.test",
    "пример.test", "a" * 64 + ".test",
])
def test_any_domain_string_gets_a_verdict(prober: Prober, domain: str) -> None:
    result = prober.probe(domain)
    assert not result.qualifies
    assert result.evidence_lines[-1].startswith("not qualified: ")


# --- MTA-STS ----------------------------------------------------------------------------------

def test_an_enforce_policy_covering_every_mx_qualifies(prober: Prober) -> None:
    result = prober.probe("sts.test")
    assert result.qualifies and result.source == "mta-sts", evidence(result)
    lines = result.evidence_lines
    assert "MTA-STS id 20260101 enforce (max_age 86400), covers mx.sts.test" in lines
    # The MX itself fails today; the MTA enforces the policy at delivery, so that is safe.
    assert "MX mx.sts.test (10) [127.0.0.15]: STARTTLS not offered" in lines
    assert lines[-1] == ("qualifies: MTA-STS enforce covers every MX, so the MTA verifies TLS "
                         "at delivery (1 MX failed the probe)")
    assert result.ttl_seconds == 300


def test_a_policy_covering_a_thousand_mx_qualifies(prober: Prober) -> None:
    result = prober.probe("manysts.test")
    assert result.qualifies and result.source == "mta-sts", evidence(result)
    assert "and 995 more" in evidence(result)


@pytest.mark.parametrize("domain, expected", [
    ("ststesting.test", "MTA-STS id 20260101 testing (max_age 86400): not enforced, "
                        "not evidence"),
    ("stsnone.test", "MTA-STS id 20260101 none (max_age 86400): not enforced"),
    ("stsmismatch.test", "enforce (max_age 86400), does not cover mx.stsmismatch.test"),
    ("stsbig.test", "policy unusable: https://mta-sts.stsbig.test/.well-known/mta-sts.txt: "
                    "policy of 70074 bytes is larger than 65536 bytes"),
    ("stshuge.test", "policy unusable: https://mta-sts.stshuge.test/.well-known/mta-sts.txt: "
                     "policy is larger than 65536 bytes"),
    ("stsbad.test", "policy unusable: policy line 3 is not a `key: value` field: "
                    "'this line is not a field'"),
    ("stsredirect.test", "HTTP 301 redirect to 'https://evil.test/.well-known/mta-sts.txt' "
                         "not followed"),
    ("ststype.test", "Content-Type 'text/html' is not text/plain"),
    ("stscert.test", "certificate of mta-sts.stscert.test not valid: self-signed "
                     "certificate"),
    ("stsnofile.test", "HTTP 404"),
    ("ststwo.test", "MTA-STS: 2 _mta-sts TXT records: treated as no policy"),
])
def test_policies_that_do_not_qualify(prober: Prober, domain: str, expected: str) -> None:
    result = prober.probe(domain)
    assert not result.qualifies, evidence(result)
    assert expected in evidence(result)


def test_a_policy_that_trickles_is_abandoned(lab: Lab) -> None:
    impatient = Prober(lab.dns.resolver(), lab.context_factory(), port=lab.smtp_port,
                       timeout=1, https_port=lab.https.port, deadline=2, allow_loopback=True)
    result = impatient.probe("stsslow.test")
    assert not result.qualifies
    assert "policy unusable: https://mta-sts.stsslow.test/.well-known/mta-sts.txt: " \
           "timed out" in evidence(result)


def test_a_policy_sent_a_byte_at_a_time_is_abandoned_at_the_deadline(lab: Lab) -> None:
    impatient = Prober(lab.dns.resolver(), lab.context_factory(), port=lab.smtp_port,
                       timeout=1, https_port=lab.https.port, deadline=2, allow_loopback=True)
    result = impatient.probe("ststrickle.test")  # every byte in time, the whole far too late
    assert not result.qualifies
    assert "policy unusable: https://mta-sts.ststrickle.test/.well-known/mta-sts.txt: " \
           "gave up after 2 s" in evidence(result)


def test_the_policy_fetcher_is_injectable(lab: Lab) -> None:
    urls: list[str] = []

    def opener(url: str) -> bytes:
        urls.append(url)
        return STS_ENFORCE

    injected = Prober(lab.dns.resolver(), lab.context_factory(), port=lab.smtp_port,
                      timeout=2, https_opener=opener, allow_loopback=True)
    assert injected.probe("sts.test").source == "mta-sts"
    assert urls == ["https://mta-sts.sts.test/.well-known/mta-sts.txt"]


@pytest.mark.parametrize("error", [PolicyFetchError("nope"), RuntimeError("surprise")])
def test_a_failing_policy_fetcher_is_evidence(lab: Lab, error: Exception) -> None:
    def opener(url: str) -> bytes:
        raise error

    injected = Prober(lab.dns.resolver(), lab.context_factory(), port=lab.smtp_port,
                      timeout=2, https_opener=opener, allow_loopback=True)
    result = injected.probe("sts.test")
    assert not result.qualifies
    assert f"policy unusable: https://mta-sts.sts.test/.well-known/mta-sts.txt: {error}" \
        in evidence(result)


# --- DANE -----------------------------------------------------------------------------------

def test_dane_ee_under_dnssec_qualifies_an_untrusted_certificate(prober: Prober,
                                                                  lab: Lab) -> None:
    result = prober.probe("dane.test")
    assert result.qualifies and result.source == "dane", evidence(result)
    assert "certificate CN=mx.selfsigned.test" in result.evidence_lines[0]
    assert result.evidence_lines[0].endswith("matches TLSA (DANE-EE)")
    assert result.evidence_lines[1].startswith("TLSA for mx.dane.test (DNSSEC): 3 1 1 ")
    assert result.evidence_lines[1].endswith("matches (DANE-EE)")
    # The test server sets AD only when asked: the prober asked.
    assert ("mx.dane.test", "A") in lab.zone.queries


def test_dane_ta_pins_a_private_ca(prober: Prober) -> None:
    result = prober.probe("daneta.test")
    assert result.qualifies and result.source == "dane", evidence(result)
    assert "matches (DANE-TA)" in evidence(result)


@pytest.mark.parametrize("domain, expected", [
    ("danebad.test", "TLSA for mx.danebad.test (DNSSEC): 1 TLSA record, none matches: "
                     "no TLSA record matches the server's certificate or key"),
    ("danenoad.test", "TLSA for mx.danenoad.test: 1 TLSA record without DNSSEC "
                      "authentication, ignored"),
])
def test_dane_that_does_not_hold(prober: Prober, domain: str, expected: str) -> None:
    result = prober.probe(domain)
    assert not result.qualifies
    assert expected in result.evidence_lines


def test_describe_prints_the_evidence_and_the_verdict(prober: Prober) -> None:
    text = describe(prober.probe("good.test"))
    lines = text.splitlines()
    assert lines[0] == "good.test: qualifies for verified TLS (source: starttls-probe)"
    assert lines[1].startswith("  MX mx1.good.test (10) [127.0.0.11]: STARTTLS")
    assert lines[-1] == "  valid for 120 s"
    text = describe(prober.probe("plain.test"))
    assert text.splitlines()[0] == "plain.test: does not qualify for verified TLS"


# --- the cache ------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeProbe:
    """Counts probes; each waits for `gate` so a test can hold one in flight."""

    def __init__(self, ttl: int = 100, qualifies: bool = True) -> None:
        self.ttl = ttl
        self.qualifies = qualifies
        self.calls: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.finished = threading.Event()

    def __call__(self, domain: str) -> TlsVerdict:
        self.calls.append(domain)
        self.started.set()
        assert self.gate.wait(10)
        self.finished.set()
        return TlsVerdict(domain, self.qualifies,
                          "starttls-probe" if self.qualifies else None,
                          (f"probe {len(self.calls)}",), self.ttl)


@pytest.fixture
def make_cache() -> Iterator[Callable[..., ProbeCache]]:
    caches: list[ProbeCache] = []

    def make(probe: Callable[[str], TlsVerdict], **options: object) -> ProbeCache:
        cache = ProbeCache(probe, **options)  # type: ignore[arg-type]
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()


def settle(cache: ProbeCache) -> None:
    """Wait until no background probe is in flight."""
    for _ in range(1000):
        if not cache.pending():
            return
        time.sleep(0.01)
    raise AssertionError("background probe did not finish")


def test_cached_never_waits_for_a_probe(make_cache: Callable[..., ProbeCache]) -> None:
    probe = FakeProbe()
    probe.gate.clear()  # the probe cannot finish until the test lets it
    cache = make_cache(probe, clock=Clock())
    assert cache.cached("slow.test") is None
    assert probe.started.wait(5)
    assert cache.cached("slow.test") is None  # still in flight: answered at once again
    assert not probe.finished.is_set()
    assert cache.pending() == {"slow.test"}
    probe.gate.set()
    settle(cache)
    result = cache.cached("slow.test")
    assert result is not None and result.qualifies
    assert probe.calls == ["slow.test"]  # one probe, however often it was asked


def test_one_background_probe_per_domain(make_cache: Callable[..., ProbeCache]) -> None:
    probe = FakeProbe()
    probe.gate.clear()
    cache = make_cache(probe, clock=Clock())
    askers = [threading.Thread(target=cache.cached, args=("busy.test",)) for _ in range(20)]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join()
    probe.gate.set()
    settle(cache)
    assert probe.calls == ["busy.test"]


def test_the_ttl_is_honoured(make_cache: Callable[..., ProbeCache]) -> None:
    clock = Clock()
    probe = FakeProbe(ttl=100)
    cache = make_cache(probe, clock=clock)
    assert cache.refresh("Ttl.Test.").evidence_lines == ("probe 1",)
    clock.now += 74
    assert cache.cached("ttl.test") is not None
    settle(cache)
    assert len(probe.calls) == 1  # fresh: no refresh yet
    clock.now += 2  # past three quarters of the TTL: still used, refreshed behind the scenes
    result = cache.cached("ttl.test")
    assert result is not None and result.evidence_lines == ("probe 1",)
    settle(cache)
    assert len(probe.calls) == 2
    result = cache.cached("ttl.test")
    assert result is not None and result.evidence_lines == ("probe 2",)

    probe.gate.clear()
    clock.now += 101  # the new entry has run out: nothing is served past its TTL
    assert cache.cached("ttl.test") is None
    probe.gate.set()
    settle(cache)


def test_background_work_is_bounded(make_cache: Callable[..., ProbeCache]) -> None:
    probe = FakeProbe()
    probe.gate.clear()
    cache = make_cache(probe, clock=Clock(), workers=1, max_pending=2)
    for domain in ("a.test", "b.test", "c.test", "d.test"):
        assert cache.cached(domain) is None
    assert cache.pending() == {"a.test", "b.test"}
    probe.gate.set()
    settle(cache)
    assert sorted(probe.calls) == ["a.test", "b.test"]
    cache.cached("c.test")  # room again: the next look-up starts its probe
    settle(cache)
    assert cache.cached("c.test") is not None


def test_a_probe_that_raises_is_cached_as_not_qualified(
        make_cache: Callable[..., ProbeCache]) -> None:
    def broken(domain: str) -> TlsVerdict:
        raise RuntimeError("boom")

    cache = make_cache(broken, clock=Clock())
    result = cache.refresh("broken.test")
    assert not result.qualifies
    assert result.evidence_lines == ("not qualified: probe failed: RuntimeError: boom",)
    assert cache.cached("broken.test") == result


def test_the_cache_is_bounded(make_cache: Callable[..., ProbeCache]) -> None:
    probe = FakeProbe()
    cache = make_cache(probe, clock=Clock(), max_entries=2)
    for domain in ("a.test", "b.test", "c.test"):
        cache.refresh(domain)
    probe.gate.clear()
    assert cache.cached("a.test") is None  # the oldest went
    assert cache.cached("c.test") is not None
    probe.gate.set()
    settle(cache)


def test_the_cache_with_the_real_prober(prober: Prober,
                                        make_cache: Callable[..., ProbeCache]) -> None:
    clock = Clock()
    cache = make_cache(prober.probe, clock=clock)
    assert cache.cached("good.test") is None
    settle(cache)
    result = cache.cached("good.test")
    assert result is not None and result.qualifies and result.ttl_seconds == 120
    clock.now += 121
    assert cache.cached("good.test") is None  # the MX TTL ran out
    settle(cache)


def test_the_probe_command_prints_the_evidence_and_the_verdict(lab: Lab) -> None:
    from click.testing import CliRunner

    from sealgate.cli import cli

    result = CliRunner().invoke(cli, ["probe", "nullmx.test", "--nameserver",
                                      f"127.0.0.1:{lab.dns.port}", "--timeout", "2"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "nullmx.test: does not qualify for verified TLS"
    assert any("null MX" in line or "accepts no mail" in line for line in lines[1:]), lines
