"""The pure side of verified-TLS evidence: MTA-STS parsing and matching, TLSA matching,
and the verdict with its evidence lines and TTL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from sealgate.routing.evidence import (
    FAILURE_TTL,
    MAX_HOST_LINES,
    MAX_TTL,
    MIN_TTL,
    DaneCheck,
    Failure,
    MtaStsError,
    MtaStsPolicy,
    MxHost,
    TlsaRecord,
    TlsObservation,
    TlsVerdict,
    describe,
    is_host_name,
    match_tlsa,
    mx_matches,
    parse_mta_sts_policy,
    parse_mta_sts_txt,
    tlsa_association,
    verdict,
)
from tests.routing.conftest import TestCa, self_signed

NOW = datetime.now(UTC)

# --- MTA-STS policy files -------------------------------------------------------------------


def test_the_rfc_example_policy() -> None:
    text = ("version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\n"
            "mx: backupmx.example.com\nmax_age: 604800\n")
    assert parse_mta_sts_policy(text, "20160831085700Z") == MtaStsPolicy(
        "enforce", 604800, ("mail.example.com", "*.example.net", "backupmx.example.com"),
        "20160831085700Z")


@pytest.mark.parametrize("text", [
    "version: STSv1\r\nmode: testing\r\nmx: MX.Example.COM\r\nmax_age: 86400\r\n",  # CRLF
    "version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 86400",  # no final LF
    "version:STSv1\nmode:\ttesting  \nmx:   mx.example.com\nmax_age: 86400\n\n",
    "version: STSv1\nmode: testing\nx-extension: anything goes here\nmx: mx.example.com\n"
    "max_age: 86400\n",  # unknown fields are ignored
    "version: STSv1\nmode: testing\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n"
    "max_age: 5\n",  # a repeated field keeps its first value
])
def test_policies_that_parse(text: str) -> None:
    policy = parse_mta_sts_policy(text)
    assert policy == MtaStsPolicy("testing", 86400, ("mx.example.com",))


def test_a_none_policy_may_list_no_mx() -> None:
    assert parse_mta_sts_policy("version: STSv1\nmode: none\nmax_age: 0\n") == \
        MtaStsPolicy("none", 0, ())


def test_the_largest_max_age_is_a_year() -> None:
    text = "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557600\n"
    assert parse_mta_sts_policy(text).max_age == 31557600


GOOD_LINES = ["version: STSv1", "mode: enforce", "mx: mx.example.com", "max_age: 86400"]


@pytest.mark.parametrize("line, replacement, message", [
    (0, "version: STSv2", "policy line 1: version is 'STSv2', not STSv1"),
    (1, "mode: enforcing", "policy line 2: mode 'enforcing' is not enforce, testing or none"),
    (1, "mode: Enforce", "policy line 2: mode 'Enforce' is not"),
    (3, "max_age: 31557601", "policy line 4: max_age '31557601' is not a number of seconds "
                             "up to 31557600"),
    (3, "max_age: -1", "policy line 4: max_age '-1'"),
    (3, "max_age: 12345678901", "policy line 4: max_age '12345678901'"),
    (3, "max_age: 1e5", "policy line 4: max_age '1e5'"),
    (2, "mx: *.*.example.com", "policy line 3: mx is not a host name or *.domain: "
                               "'*.*.example.com'"),
    (2, "mx: *example.com", "policy line 3: mx is not"),
    (2, "mx: ex ample.com", "policy line 3: mx is not"),
    (2, "mx: example.com.", "policy line 3: mx is not"),
    (2, "mx: -x.example.com", "policy line 3: mx is not"),
    (2, "mx: https://example.com", "policy line 3: mx is not"),
    (2, "mx example.com", "policy line 3 is not a `key: value` field: 'mx example.com'"),
    (2, " mx: example.com", "policy line 3 is not a `key: value` field"),
    (2, "mx : example.com", "policy line 3 is not a `key: value` field"),
    (2, "mx:", "policy line 3 is not a `key: value` field"),
    (2, "", "policy line 3 is not a `key: value` field"),
    (2, "<html>", "policy line 3 is not a `key: value` field: '<html>'"),
    (2, "mx: a.example\x00.com", "policy line 3 is not a `key: value` field: "
                                 "'mx: a.example\\\\x00.com'"),
    (2, "note: a\x1b[31mred", "policy line 3 is not a `key: value` field"),
    (2, "mx: a.example\rmax_age: 1", "policy line 3 is not a `key: value` field"),
    (0, "Version: STSv1", "policy has no version field"),
    (1, "x: y", "policy has no mode field"),
    (3, "x: y", "policy has no max_age field"),
    (2, "x: y", "policy in mode enforce lists no mx"),
])
def test_malformed_policies_are_refused_with_the_line(line: int, replacement: str,
                                                      message: str) -> None:
    lines = list(GOOD_LINES)
    lines[line] = replacement
    with pytest.raises(MtaStsError) as raised:
        parse_mta_sts_policy("\n".join(lines) + "\n")
    assert message in str(raised.value)


@pytest.mark.parametrize("text", ["", "\n", "\r\n\r\n"])
def test_an_empty_policy_is_refused(text: str) -> None:
    with pytest.raises(MtaStsError, match="policy is empty"):
        parse_mta_sts_policy(text)


def test_network_text_in_errors_is_escaped_and_cut() -> None:
    with pytest.raises(MtaStsError) as raised:
        parse_mta_sts_policy("\x1b[2J" + "z" * 5000 + "\n")
    message = str(raised.value)
    assert "\x1b" not in message and len(message) < 300


# --- MTA-STS TXT records --------------------------------------------------------------------

@pytest.mark.parametrize("record, policy_id", [
    ("v=STSv1; id=20160831085700Z;", "20160831085700Z"),
    ("v=STSv1;id=abc", "abc"),
    ("v=STSv1 ;\tid=abc ; ext=value-1", "abc"),
    ("v=STSv1; x-ext=1; id=" + "a" * 32, "a" * 32),
])
def test_txt_records_that_parse(record: str, policy_id: str) -> None:
    assert parse_mta_sts_txt(record) == policy_id


@pytest.mark.parametrize("record, message", [
    ("v=STSv1;", "TXT record has no id"),
    ("v=STSv2; id=1", "does not start with v=STSv1"),
    ("id=1; v=STSv1", "does not start with v=STSv1"),
    ("v=STSv1; id=" + "a" * 33, "id is not 1-32 letters or digits"),
    ("v=STSv1; id=2016-08-31", "id is not 1-32 letters or digits"),
    ("v=STSv1; id", "field is malformed"),
    ("v=STSv1; id=1;; x=2", "field is malformed"),
])
def test_txt_records_that_do_not(record: str, message: str) -> None:
    with pytest.raises(MtaStsError, match=message):
        parse_mta_sts_txt(record)


@pytest.mark.parametrize("pattern, host, matches", [
    ("mail.example.com", "mail.example.com", True),
    ("mail.example.com", "MAIL.Example.COM.", True),
    ("mail.example.com", "mail.example.org", False),
    ("mail.example.com", "x.mail.example.com", False),
    ("*.example.com", "mail.example.com", True),
    ("*.Example.com", "MAIL.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "a.b.example.com", False),  # one label only
    ("*.example.com", ".example.com", False),
    ("*.example.com", "*.example.com", False),
    ("*.example.com", "mailexample.com", False),
    ("", "example.com", False),
])
def test_mx_patterns(pattern: str, host: str, matches: bool) -> None:
    assert mx_matches(pattern, host) is matches


@pytest.mark.parametrize("name, valid", [
    ("mx.example.net", True),
    ("a-1.b2.example", True),
    ("localhost", False),
    ("127.0.0.1", False),
    ("-mx.example.net", False),
    ("mx-.example.net", False),
    ("mx..example.net", False),
    ("m x.example.net", False),
    ("mx_1.example.net", False),
    ("bücher.example", False),
    ("a" * 64 + ".example", False),
    (".".join(["a" * 60] * 5), False),  # longer than 253
    ("", False),
])
def test_host_names(name: str, valid: bool) -> None:
    assert is_host_name(name) is valid


# --- TLSA -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ca() -> TestCa:
    return TestCa("Evidence Test CA")


def _record(usage: int, selector: int, matching: int, certificate_der: bytes) -> TlsaRecord:
    return TlsaRecord(usage, selector, matching,
                      tlsa_association(certificate_der, selector, matching))


def test_tlsa_association_data() -> None:
    leaf = self_signed("mx.example.net")
    assert tlsa_association(leaf.der, 0, 0) == leaf.der
    assert tlsa_association(leaf.der, 1, 0) == leaf.spki
    assert tlsa_association(leaf.der, 1, 1) == hashlib.sha256(leaf.spki).digest()
    assert tlsa_association(leaf.der, 0, 2) == hashlib.sha512(leaf.der).digest()
    with pytest.raises(ValueError):
        tlsa_association(leaf.der, 2, 1)
    with pytest.raises(ValueError):
        tlsa_association(leaf.der, 1, 3)


@pytest.mark.parametrize("selector, matching", [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)])
def test_dane_ee_matches_the_leaf_whatever_its_name_or_dates(ca: TestCa, selector: int,
                                                             matching: int) -> None:
    leaf = ca.issue_server("somewhere.else.test", expired=True)
    record = _record(3, selector, matching, leaf.der)
    assert match_tlsa([record], [leaf.der], "mx.example.net", NOW) == (record, "")


def test_a_tlsa_record_for_another_key_does_not_match() -> None:
    leaf, other = self_signed("mx.example.net"), self_signed("mx.example.net")
    matched, reason = match_tlsa([_record(3, 1, 1, other.der)], [leaf.der], "mx.example.net",
                                 NOW)
    assert matched is None
    assert reason == "no TLSA record matches the server's certificate or key"


def test_pkix_usages_do_not_apply_to_smtp() -> None:
    leaf = self_signed("mx.example.net")
    records = [_record(1, 1, 1, leaf.der), _record(0, 0, 1, leaf.der),
               TlsaRecord(3, 7, 1, b"x"), TlsaRecord(3, 1, 9, b"x")]
    matched, reason = match_tlsa(records, [leaf.der], "mx.example.net", NOW)
    assert matched is None and reason.startswith("no usable TLSA record")


def test_dane_ta_matches_an_issuer_in_the_chain(ca: TestCa) -> None:
    leaf = ca.issue_server("mx.example.net")
    for record in (_record(2, 0, 1, ca.der), _record(2, 1, 1, ca.der),
                   _record(2, 0, 2, ca.der)):
        assert match_tlsa([record], [leaf.der, ca.der], "mx.example.net", NOW) == (record, "")


def test_dane_ta_with_the_whole_certificate_needs_no_chain(ca: TestCa) -> None:
    leaf = ca.issue_server("mx.example.net")
    record = _record(2, 0, 0, ca.der)
    assert match_tlsa([record], [leaf.der], "mx.example.net", NOW) == (record, "")


def test_dane_ta_checks_the_name_the_dates_and_the_signature(ca: TestCa) -> None:
    record = _record(2, 0, 1, ca.der)
    wrong_name = ca.issue_server("other.example.net")
    matched, reason = match_tlsa([record], [wrong_name.der, ca.der], "mx.example.net", NOW)
    assert matched is None and reason.startswith("DANE-TA 2 0 1 ")
    expired = ca.issue_server("mx.example.net", expired=True)
    assert match_tlsa([record], [expired.der, ca.der], "mx.example.net", NOW)[0] is None
    later = NOW + timedelta(days=400)
    fine = ca.issue_server("mx.example.net")
    assert match_tlsa([record], [fine.der, ca.der], "mx.example.net", later)[0] is None
    # The anchor's certificate sent along with a leaf it did not sign proves nothing.
    stranger = TestCa("Stranger").issue_server("mx.example.net")
    assert match_tlsa([record], [stranger.der, ca.der], "mx.example.net", NOW)[0] is None


def test_garbage_certificates_match_nothing_and_raise_nothing() -> None:
    records = [TlsaRecord(3, 1, 1, b"\x00" * 32), TlsaRecord(2, 0, 0, b"not a certificate"),
               TlsaRecord(2, 1, 1, b"\x00" * 32)]
    matched, reason = match_tlsa(records, [b"garbage", b"more garbage"], "mx.example.net",
                                 NOW)
    assert matched is None and reason
    assert match_tlsa(records, [], "mx.example.net", NOW) == (
        None, "the server presented no certificate")


# --- the verdict ----------------------------------------------------------------------------

MX1 = MxHost("mx1.example.net", 10)
MX2 = MxHost("mx2.example.net", 20)
RECORD = TlsaRecord(3, 1, 1, bytes(range(32)))


def seen(host: str, verified: bool = True, problem: str = "", starttls: bool = True,
         subject: str = "") -> TlsObservation:
    return TlsObservation(host, "192.0.2.1", starttls=starttls, tls_version="TLSv1.3",
                          cipher="TLS_AES_256_GCM_SHA384", certificate_sha256="AB:CD",
                          certificate_subject=subject or f"CN={host}",
                          certificate_names=(host,), verified=verified, problem=problem)


ENFORCE = MtaStsPolicy("enforce", 604800, ("*.example.net",), "20260101")


def test_every_mx_valid_qualifies_by_probe() -> None:
    result = verdict("example.net", [MX1, MX2], [seen(MX1.name), seen(MX2.name)], None, None,
                     dns_ttl=3600)
    assert result == TlsVerdict("example.net", True, "starttls-probe", (
        "MX mx1.example.net (10) [192.0.2.1]: STARTTLS TLSv1.3 TLS_AES_256_GCM_SHA384, "
        "certificate CN=mx1.example.net sha256 AB:CD valid",
        "MX mx2.example.net (20) [192.0.2.1]: STARTTLS TLSv1.3 TLS_AES_256_GCM_SHA384, "
        "certificate CN=mx2.example.net sha256 AB:CD valid",
        "MTA-STS: no policy published (no _mta-sts TXT record)",
        "qualifies: every MX (2) offers STARTTLS with a certificate valid for its name",
    ), 3600)


def test_one_failing_mx_disqualifies() -> None:
    result = verdict("example.net", [MX1, MX2],
                     [seen(MX1.name), seen(MX2.name, False, "certificate has expired")],
                     None, None)
    assert not result.qualifies and result.source is None
    assert result.evidence_lines[1].endswith("sha256 AB:CD not valid: certificate has expired")
    assert result.evidence_lines[-1] == ("not qualified: MX mx2.example.net certificate not "
                                         "valid: certificate has expired")


def test_an_mx_without_an_observation_was_not_probed() -> None:
    result = verdict("example.net", [MX1, MX2], [seen(MX1.name)], None, None)
    assert not result.qualifies
    assert "MX mx2.example.net (20): not probed" in result.evidence_lines


def test_no_starttls() -> None:
    result = verdict("example.net", [MX1], [TlsObservation(MX1.name, "192.0.2.1",
                                                           problem="STARTTLS not offered")],
                     None, None)
    assert result.evidence_lines[0] == "MX mx1.example.net (10) [192.0.2.1]: STARTTLS not offered"
    assert not result.qualifies


def test_an_enforce_policy_covering_every_mx_qualifies_even_with_a_failing_mx() -> None:
    result = verdict("example.net", [MX1, MX2],
                     [seen(MX1.name), seen(MX2.name, False, "self-signed certificate")],
                     "20260101", ENFORCE, dns_ttl=3600)
    assert result.qualifies and result.source == "mta-sts"
    assert ("MTA-STS id 20260101 enforce (max_age 604800), covers mx1.example.net, "
            "mx2.example.net") in result.evidence_lines
    assert result.evidence_lines[-1].endswith("(1 MX failed the probe)")
    assert result.ttl_seconds == 3600


def test_an_enforce_policy_that_misses_an_mx_is_not_evidence() -> None:
    other = MxHost("mx.elsewhere.org", 30)
    result = verdict("example.net", [MX1, other], [seen(MX1.name)], "1", ENFORCE)
    assert not result.qualifies
    assert ("MTA-STS id 1 enforce (max_age 604800), does not cover mx.elsewhere.org"
            in result.evidence_lines)


@pytest.mark.parametrize("mode", ["testing", "none"])
def test_a_policy_not_in_enforce_mode_is_not_evidence(mode: str) -> None:
    policy = MtaStsPolicy(mode, 86400, ("*.example.net",), "7")  # type: ignore[arg-type]
    failing = verdict("example.net", [MX1], [seen(MX1.name, False, "expired")], "7", policy)
    assert not failing.qualifies
    assert f"MTA-STS id 7 {mode} (max_age 86400): not enforced, not evidence" in \
        failing.evidence_lines
    passing = verdict("example.net", [MX1], [seen(MX1.name)], "7", policy)
    assert passing.qualifies and passing.source == "starttls-probe"


@pytest.mark.parametrize("txt_id, policy, line", [
    (Failure("_mta-sts TXT lookup failed: timed out"), None,
     "MTA-STS: _mta-sts TXT lookup failed: timed out"),
    ("9", Failure("HTTP 404 Not Found"), "MTA-STS id 9: policy unusable: HTTP 404 Not Found"),
    ("9", None, "MTA-STS id 9: policy not fetched"),
])
def test_mta_sts_problems_are_evidence(txt_id: str | Failure, policy: Failure | None,
                                       line: str) -> None:
    result = verdict("example.net", [MX1], [seen(MX1.name, False, "expired")], txt_id, policy)
    assert not result.qualifies
    assert line in result.evidence_lines


def test_an_mx_failure_disqualifies() -> None:
    result = verdict("example.net", Failure("MX lookup failed: SERVFAIL"), [], "1", ENFORCE,
                     dns_ttl=30)
    assert result == TlsVerdict("example.net", False, None, (
        "MX for example.net: MX lookup failed: SERVFAIL",
        "not qualified: no MX host to deliver to (MX lookup failed: SERVFAIL)",
    ), MIN_TTL)


def test_no_mx_hosts_at_all() -> None:
    result = verdict("example.net", [], [], "1", ENFORCE)
    assert not result.qualifies
    assert result.evidence_lines[-1] == "not qualified: no MX host"


def test_the_implicit_mx_is_named_as_such() -> None:
    mx = MxHost("example.net", 0, implicit=True)
    result = verdict("example.net", [mx], [seen("example.net")], None, None)
    assert result.qualifies
    assert result.evidence_lines[0].startswith("implicit MX example.net (0) [192.0.2.1]: ")


def test_dane_under_dnssec_qualifies_an_untrusted_certificate() -> None:
    check = DaneCheck(MX1.name, (RECORD,), secure=True, matched=RECORD)
    result = verdict("example.net", [MX1], [seen(MX1.name, False, "self-signed certificate")],
                     None, None, [check])
    assert result.qualifies and result.source == "dane"
    assert result.evidence_lines[0].endswith("sha256 AB:CD matches TLSA (DANE-EE)")
    assert result.evidence_lines[1] == ("TLSA for mx1.example.net (DNSSEC): "
                                        "3 1 1 0001020304050607… matches (DANE-EE)")
    assert result.evidence_lines[-1] == "qualifies: every MX (1) offers STARTTLS with DANE"


def test_a_tlsa_mismatch_disqualifies_even_a_valid_certificate() -> None:
    check = DaneCheck(MX1.name, (RECORD,), secure=True, problem="no TLSA record matches")
    result = verdict("example.net", [MX1], [seen(MX1.name)], None, None, [check])
    assert not result.qualifies
    assert result.evidence_lines[0].endswith("does not match its TLSA records")
    assert result.evidence_lines[1] == ("TLSA for mx1.example.net (DNSSEC): 1 TLSA record, "
                                        "none matches: no TLSA record matches")


def test_tlsa_without_dnssec_is_ignored() -> None:
    check = DaneCheck(MX1.name, (RECORD,), secure=False)
    valid = verdict("example.net", [MX1], [seen(MX1.name)], None, None, [check])
    assert valid.qualifies and valid.source == "starttls-probe"
    assert ("TLSA for mx1.example.net: 1 TLSA record without DNSSEC authentication, ignored"
            in valid.evidence_lines)
    untrusted = verdict("example.net", [MX1], [seen(MX1.name, False, "self-signed")], None,
                        None, [check])
    assert not untrusted.qualifies


def test_unusable_tlsa_falls_back_to_the_ca_check() -> None:
    check = DaneCheck(MX1.name, (TlsaRecord(1, 1, 1, b"x"),), secure=True)
    result = verdict("example.net", [MX1], [seen(MX1.name)], None, None, [check])
    assert result.qualifies and result.source == "starttls-probe"
    assert ("TLSA for mx1.example.net (DNSSEC): 1 TLSA record, none usable for SMTP, ignored"
            in result.evidence_lines)


def test_dane_for_one_mx_and_a_ca_for_the_other_is_a_probe_verdict() -> None:
    check = DaneCheck(MX1.name, (RECORD,), secure=True, matched=RECORD)
    result = verdict("example.net", [MX1, MX2], [seen(MX1.name, False), seen(MX2.name)],
                     None, None, [check])
    assert result.qualifies and result.source == "starttls-probe"


def test_a_thousand_mx_hosts_give_a_bounded_summary() -> None:
    hosts = [MxHost(f"mx{n}.example.net", n) for n in range(1000)]
    result = verdict("example.net", hosts, [seen(mx.name) for mx in hosts[:10]], "1", ENFORCE)
    assert result.qualifies and result.source == "mta-sts"
    assert len(result.evidence_lines) == MAX_HOST_LINES + 3
    assert "… 980 more MX hosts not shown, 980 of them failed" in result.evidence_lines
    assert any(line.endswith("and 995 more") for line in result.evidence_lines)
    assert result.evidence_lines[-1].endswith("(990 MX failed the probe)")


def test_hostile_text_stays_on_one_line() -> None:
    subject = "CN=evil\r\nqualifies: yes\x1b[32m" + "x" * 1000
    result = verdict("example.net", [MX1], [seen(MX1.name, False, "bad\nthing",
                                                 subject=subject)], None, None)
    assert all("\n" not in line and "\r" not in line and "\x1b" not in line
               for line in result.evidence_lines)
    assert "CN=evil\\x0d\\x0aqualifies: yes\\x1b[32m" in result.evidence_lines[0]
    assert len(result.evidence_lines[0]) < 600


@pytest.mark.parametrize("qualifies, dns_ttl, max_age, expected", [
    (True, 120, None, 120),
    (True, 5, None, MIN_TTL),
    (True, 10**7, None, MAX_TTL),
    (True, None, None, MAX_TTL),
    (True, 3600, 100, 100),  # the MTA-STS max_age bounds a verdict that rests on it
    (True, 3600, 10**6, 3600),
    (False, 3600, None, FAILURE_TTL),
    (False, 90, None, 90),
    (False, 1, None, MIN_TTL),
])
def test_the_ttl(qualifies: bool, dns_ttl: int | None, max_age: int | None,
                 expected: int) -> None:
    policy = MtaStsPolicy("enforce", max_age, ("*.example.net",), "1") if max_age else None
    observation = seen(MX1.name, verified=qualifies)
    result = verdict("example.net", [MX1], [observation], "1" if policy else None, policy,
                     dns_ttl=dns_ttl)
    assert result.qualifies is qualifies
    assert result.ttl_seconds == expected


def test_describe() -> None:
    result = verdict("example.net", [MX1], [seen(MX1.name)], None, None, dns_ttl=600)
    assert describe(result) == (
        "example.net: qualifies for verified TLS (source: starttls-probe)\n"
        "  MX mx1.example.net (10) [192.0.2.1]: STARTTLS TLSv1.3 TLS_AES_256_GCM_SHA384, "
        "certificate CN=mx1.example.net sha256 AB:CD valid\n"
        "  MTA-STS: no policy published (no _mta-sts TXT record)\n"
        "  qualifies: every MX (1) offers STARTTLS with a certificate valid for its name\n"
        "  valid for 600 s\n")
    failing = verdict("example.net", Failure("MX lookup failed: timed out"), [], None, None)
    assert describe(failing).startswith("example.net: does not qualify for verified TLS\n")
