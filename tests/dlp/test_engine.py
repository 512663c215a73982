"""The detectors in text: what must be found, at what confidence, and the traps that must not
fire. Every test runs on both candidate engines (Hyperscan and Python's re)."""

from __future__ import annotations

import pytest

from sealgate.dlp import Confidence, Engine, Finding, Scanner, scan_text
from sealgate.dlp.engine import hyperscan

ENGINES = [Engine.RE, pytest.param(Engine.HYPERSCAN, marks=pytest.mark.skipif(
    hyperscan is None, reason="hyperscan is not installed"))]


@pytest.fixture(params=ENGINES, scope="module")
def scanner(request: pytest.FixtureRequest) -> Scanner:
    return Scanner(engine=request.param)


def found(scanner: Scanner, text: str, at_least: str = "medium") -> list[tuple[str, str]]:
    return [(f.type, text[f.start:f.end]) for f in scanner.scan(text)
            if f.confidence.at_least(at_least)]


@pytest.mark.parametrize(("text", "expected"), [
    ("My SSN is 123-45-6789.", [("US_SSN", "123-45-6789")]),
    ("ssn 123 45 6789", [("US_SSN", "123 45 6789")]),
    ("Social Security Number: 123456789", [("US_SSN", "123456789")]),
    ("ITIN 912-70-1234", [("US_ITIN", "912-70-1234")]),
    ("Pay with 4111 1111 1111 1111 today", [("CREDIT_CARD", "4111 1111 1111 1111")]),
    ("amex 3782-822463-10005", [("CREDIT_CARD", "3782-822463-10005")]),
    ("Card: 2221000000000009, exp 04/29", [("CREDIT_CARD", "2221000000000009")]),
    ("routing number 021000021 account number 12345678901",
     [("ABA_ROUTING_NUMBER", "021000021"), ("US_BANK_NUMBER", "12345678901")]),
    ("IBAN: GB82 WEST 1234 5698 7654 32 BIC WESTGB22",
     [("IBAN_CODE", "GB82 WEST 1234 5698 7654 32")]),
    ("to DE89370400440532013000.", [("IBAN_CODE", "DE89370400440532013000")]),
    ("Passport No. C03005988 issued", [("US_PASSPORT", "C03005988")]),
    ("Driver's license: A1234567", [("US_DRIVER_LICENSE", "A1234567")]),
    ("DL# A123-456-78-901-0", [("US_DRIVER_LICENSE", "A123-456-78-901-0")]),
    ("Dr. Smith, NPI 1245319599", [("US_NPI", "1245319599")]),
    ("prescriber DEA BJ6125341", [("US_DEA_NUMBER", "BJ6125341")]),
    ("Diagnosis: E11.9 and I10", [("ICD10_CODE", "E11.9")]),
    ("MRN: 00482913", [("MEDICAL_RECORD_NUMBER", "00482913")]),
    ("DOB 03/14/1962", [("DATE_OF_BIRTH", "03/14/1962")]),
    ("date of birth: March 14, 1962", [("DATE_OF_BIRTH", "March 14, 1962")]),
    ("Student ID: 20481234", [("STUDENT_ID", "20481234")]),
])
def test_identifiers_are_found_at_medium_or_above(scanner: Scanner, text: str,
                                                   expected: list[tuple[str, str]]) -> None:
    assert found(scanner, text) == expected


@pytest.mark.parametrize("text", [
    "ITIN 912-70-1234 is not an SSN",  # (found as US_ITIN, never US_SSN)
    "Ship to Cambridge MA 02139-4307",
    "Call me on 555-123-4567, (555) 123-4567, +1 555 123 4567 or 555.123.4567",
    "International: +44 20 7946 0958",
    "Meeting on 2026-03-14 at 10:30; 03/14/2026",
    "Order #112-3456789-1234567 and invoice 2026-004512, PO 4500123456",
    "Order number 4111111111111111 has shipped",
    "IMEI 356938035643809 / 35-209900-176148-1",
    "Tracking 1Z999AA10123456784, FedEx 123456789012, USPS 9400111899223197428490",
    "ISBN 978-3-16-148410-0 and 0-306-40615-2, ISBN 9780306406157",
    "GUID {3F2504E0-4F89-11D3-9A0C-0305E82C3301}",
    "Windows 10.0.19045.3803, build 4.18.0-553.el8, v2.14.1",
    "Card 4111 1111 1111 1112 (a typo) and 1234 5678 9012 3456",
    "IBAN DE89 3704 0044 0532 0130 01",
    "routing number 021000022",
    "SSNs like 000-12-3456, 666-12-3456, 123-00-4567, 123-45-0000 and 078-05-1120 are void",
    "See https://example.org/tickets/4111111111111111/view and ticket 123456789",
    "The price was $123456789 in 2025",
])
def test_traps_do_not_fire_at_medium(scanner: Scanner, text: str) -> None:
    assert [kind for kind, _ in found(scanner, text) if kind != "US_ITIN"] == []


def test_an_itin_is_never_an_ssn(scanner: Scanner) -> None:
    assert [(f.type, f.confidence) for f in scanner.scan("ITIN: 912-70-1234")] == [
        ("US_ITIN", Confidence.HIGH)]


def test_keywords_raise_and_disqualifiers_lower_confidence(scanner: Scanner) -> None:
    def confidence(text: str) -> Confidence:
        (finding,) = scanner.scan(text)
        return finding.confidence
    assert confidence("see 4111111111111111") is Confidence.MEDIUM
    assert confidence("credit card 4111111111111111") is Confidence.HIGH
    assert confidence("order number 4111111111111111") is Confidence.LOW
    assert confidence("value 123456789 here") is Confidence.LOW  # a bare 9 digits
    assert confidence("routing: 021000021") is Confidence.HIGH


def test_offsets_point_into_the_text_and_values_are_masked(scanner: Scanner) -> None:
    text = "Ünïcode first — then SSN 123-45-6789 and card 5555 5555 5555 4444."
    findings = scanner.scan(text)
    assert [text[f.start:f.end] for f in findings] == ["123-45-6789", "5555 5555 5555 4444"]
    assert [f.masked for f in findings] == ["***-**-6789", "**** **** **** 4444"]
    assert all("123-45" not in repr(f) and "5555 5555" not in repr(f) for f in findings)


def test_scan_text_is_the_default_scanner() -> None:
    (finding,) = scan_text("SSN 123-45-6789")
    assert isinstance(finding, Finding) and finding.type == "US_SSN"
    assert (finding.start, finding.end, finding.confidence) == (4, 15, "high")


def test_empty_and_huge_inputs(scanner: Scanner) -> None:
    assert scanner.scan("") == []
    text = ("nothing to see here " * 50_000) + "SSN 123-45-6789"
    assert [f.type for f in scanner.scan(text)] == ["US_SSN"]
