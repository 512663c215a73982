"""The labelled DLP corpus is reproducible, its spans are exact, its labels valid, and it
covers every type and trap kind (the accuracy test itself lives with the detectors)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

import pytest
from stdnum import iban, isbn, luhn
from stdnum.us import itin, rtn, ssn

from sealgate.lab import dlp_corpus
from sealgate.lab.dlp_corpus import (
    LABEL_TYPES,
    TRAP_KINDS,
    Label,
    Sample,
    corpus_text,
    generate,
    score,
    valid_label,
)

# Types a label of which must have one of its type's keywords near (before, or just after).
KEYWORD_TYPES = {"ABA_ROUTING_NUMBER", "US_BANK_NUMBER", "US_PASSPORT", "US_DRIVER_LICENSE",
                 "US_NPI", "ICD10_CODE", "MEDICAL_RECORD_NUMBER", "DATE_OF_BIRTH"}


@pytest.fixture(scope="module")
def corpus() -> list[Sample]:
    return generate(1, 2000)


def test_same_seed_same_corpus(corpus: list[Sample]) -> None:
    assert generate(1, 300) == corpus[:300]
    assert generate(2, 20) != corpus[:20]


def test_offsets_are_exact(corpus: list[Sample]) -> None:
    for sample in corpus:
        for x in (*sample.labels, *sample.traps):
            assert sample.text[x.start:x.end] == x.value, x
        spans = sorted((x.start, x.end) for x in sample.labels)
        assert all(a[1] <= b[0] for a, b in pairwise(spans)), spans


def test_labels_pass_their_checks(corpus: list[Sample]) -> None:
    for sample in corpus:
        for x in sample.labels:
            assert valid_label(x), x
            digits = re.sub(r"\D", "", x.value)
            if x.type == "US_SSN":
                assert ssn.is_valid(digits) and digits not in {"078051120", "219099999"}
            elif x.type == "US_ITIN" and int(digits[3:5]) >= 70:
                assert itin.is_valid(digits)  # stdnum does not know the 50-65 groups yet
            elif x.type == "CREDIT_CARD":
                assert luhn.is_valid(digits) and 13 <= len(digits) <= 19
            elif x.type == "ABA_ROUTING_NUMBER":
                assert rtn.is_valid(digits)
            elif x.type == "IBAN_CODE":
                assert iban.is_valid(x.value)
            elif x.type == "US_NPI":
                assert luhn.is_valid("80840" + digits)


def test_traps_fail_the_checks_they_imitate(corpus: list[Sample]) -> None:
    for sample in corpus:
        for x in sample.traps:
            digits = re.sub(r"\D", "", x.value)
            if x.type == "INVALID_SSN":
                assert not ssn.is_valid(digits) and not itin.is_valid(digits)
                assert not valid_label(Label("US_ITIN", 0, 0, x.value))
            elif x.type == "ITIN_AS_SSN":
                assert not ssn.is_valid(digits)
                assert any(lb.type == "US_ITIN" and lb.start == x.start for lb in sample.labels)
            elif x.type in ("LUHN_INVALID_CARD", "CARD_TEST_SEQUENCE"):
                assert not valid_label(Label("CREDIT_CARD", 0, 0, x.value))
            elif x.type == "INVALID_IBAN":
                assert not iban.is_valid(x.value)
            elif x.type == "INVALID_ROUTING":
                assert not valid_label(Label("ABA_ROUTING_NUMBER", 0, 0, x.value))
            elif x.type == "BARE_ROUTING":
                assert valid_label(Label("ABA_ROUTING_NUMBER", 0, 0, x.value))
            elif x.type == "INVALID_DEA":
                assert not valid_label(Label("US_DEA_NUMBER", 0, 0, x.value))
            elif x.type in ("IMEI", "LUHN_ORDER_NUMBER"):
                assert luhn.is_valid(digits)
            elif x.type == "ISBN":
                assert isbn.is_valid(x.value)


def test_every_type_and_trap_kind_is_present(corpus: list[Sample]) -> None:
    labels = Counter(x.type for s in corpus for x in s.labels)
    traps = Counter(x.type for s in corpus for x in s.traps)
    assert set(labels) == set(LABEL_TYPES)
    assert min(labels.values()) >= 20, labels
    assert set(traps) == set(TRAP_KINDS), set(TRAP_KINDS) ^ set(traps)
    with_labels = sum(1 for s in corpus if s.labels)
    assert 0.4 * len(corpus) < with_labels < 0.6 * len(corpus)
    assert all(s.traps for s in corpus)
    assert all(len(s.labels) <= 6 for s in corpus)


def test_keyword_types_have_their_keyword_near(corpus: list[Sample]) -> None:
    patterns = {name: pattern for name, _anchors, pattern in dlp_corpus._KEYWORDS}
    for sample in corpus:
        for x in sample.labels:
            needs = x.type in KEYWORD_TYPES or (x.type == "US_SSN" and x.value.isdigit())
            if not needs:
                continue
            text = sample.text
            near = text[max(0, x.start - 40):x.start] + " " + text[x.end:x.end + 30]
            assert patterns[x.type].search(near) or x.value.startswith("MRN-"), (x, near)


def test_emails_look_like_emails(corpus: list[Sample]) -> None:
    sizes = [len(s.text) for s in corpus]
    assert min(sizes) >= 1500 and max(sizes) <= 8192
    assert sum("\n> " in s.text for s in corpus) > 0.15 * len(corpus)
    assert any(re.search(r"^> .*\d", s.text, re.M) and any(
        s.text.rfind("\n> ", 0, x.start) > s.text.rfind("\n\n", 0, x.start)
        for x in s.labels) for s in corpus)
    assert "lorem" not in " ".join(s.text[:200] for s in corpus).lower()


def test_corpus_text_honours_the_size(corpus: list[Sample]) -> None:
    text = corpus_text(1, 200_000)
    assert 200_000 - 3 <= len(text.encode()) <= 200_000
    assert text.startswith(corpus[0].text + "\n\n" + corpus[1].text)
    assert corpus_text(1, 100) == corpus[0].text[:100]


@dataclass(frozen=True)
class _Finding:
    type: str
    start: int
    end: int
    confidence: str


def test_score_counts_overlaps_per_type() -> None:
    text = "SSN 123-45-6789 and card 4111 1111 1111 1111, phone 617-555-0142."
    sample = Sample(text, (Label("US_SSN", 4, 15, "123-45-6789"),
                           Label("CREDIT_CARD", 25, 44, "4111 1111 1111 1111")),
                    (Label("PHONE", 52, 64, "617-555-0142"),))

    def scan(_text: str) -> list[_Finding]:
        return [_Finding("US_SSN", 4, 15, "high"), _Finding("US_SSN", 8, 15, "medium"),
                _Finding("CREDIT_CARD", 25, 44, "low"), _Finding("US_SSN", 52, 64, "medium")]

    table = score([sample], scan)
    assert table["US_SSN"] == {"tp": 1, "fp": 1, "fn": 0, "precision": 0.5, "recall": 1.0,
                               "f1": 2 / 3}
    assert table["CREDIT_CARD"]["fn"] == 1 and table["CREDIT_CARD"]["recall"] == 0.0
    assert set(table) == {"US_SSN", "CREDIT_CARD"}
    assert dlp_corpus.trap_report([sample], scan)["PHONE"] == {"count": 1, "hit": 1}
