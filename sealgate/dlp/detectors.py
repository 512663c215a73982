"""The built-in detectors: what a candidate looks like, how it is validated, and which nearby
words make it more or less likely. Patterns are written in the syntax both Python's `re` and
Hyperscan accept (no look-around, no back-references)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sealgate.dlp import validators as v
from sealgate.dlp.findings import Confidence

LOW, MEDIUM, HIGH = Confidence.LOW, Confidence.MEDIUM, Confidence.HIGH


@dataclass(frozen=True)
class Detector:
    """One way of finding one type. `alone` is the confidence of a valid candidate with no
    keyword nearby (None: report it only after a keyword, which then gates the search);
    `with_keyword` the confidence when a supporting keyword is the nearest cue before it."""

    type: str
    pattern: str
    valid: Callable[[str], bool]
    alone: Confidence | None
    with_keyword: Confidence
    keywords: tuple[str, ...]
    caseless: bool = False
    # Among overlapping findings of equal confidence the higher priority wins: a checksum
    # says more than a keyword does.
    priority: int = 0
    # A grouped layout may run on into the next word ("... 7034 THEN"): when the whole
    # candidate fails, try it without its last group.
    runs_on: bool = False


# Words that say a number is something else: when one of them is the nearest cue before a
# candidate, the candidate drops to low.
DISQUALIFIERS = (
    "order", "order no", "order number", "invoice", "inv", "tracking", "track", "shipment",
    "parcel", "package", "part number", "part no", "p/n", "sku", "model", "serial",
    "phone", "tel", "telephone", "fax", "mobile", "cell", "call", "imei", "meid", "iccid",
    "isbn", "confirmation", "confirmation number", "reference", "ref", "ticket", "case",
    "po", "purchase order", "zip", "postal", "version", "build", "release", "guid", "uuid",
    "container", "booking", "reservation", "flight", "receipt", "transaction id",
)

SSN_WORDS = ("ssn", "ssn#", "ss#", "social security", "social security number", "soc sec",
             "social sec", "ssa")
ITIN_WORDS = ("itin", "individual taxpayer", "taxpayer identification", "tax id", "tin")
CARD_WORDS = ("card", "credit", "debit", "visa", "mastercard", "master card", "amex",
              "american express", "discover", "jcb", "diners", "unionpay", "maestro", "cc",
              "cc#", "ccn", "pan", "card number", "card no", "cardholder", "payment",
              "charge", "expiry", "exp", "cvv", "cvc")
ABA_WORDS = ("routing", "routing number", "routing no", "aba", "aba#", "rtn", "transit",
             "routing transit", "wire", "ach", "bank routing")
IBAN_WORDS = ("iban", "bank", "account", "swift", "bic", "wire", "transfer", "beneficiary",
              "sepa")
BANK_WORDS = ("account number", "account no", "account #", "account#", "acct", "acct#",
              "acct no", "acct number", "bank account", "checking account", "savings account",
              "checking", "savings", "deposit account", "beneficiary account", "account")
PASSPORT_WORDS = ("passport", "passport no", "passport number", "passport#")
LICENSE_WORDS = ("driver's license", "drivers license", "driver license", "driver's licence",
                 "driving licence", "driving license", "dl", "dl#", "dln", "license number",
                 "licence number", "lic#", "operator license")
NPI_WORDS = ("npi", "npi#", "national provider", "national provider identifier")
DEA_WORDS = ("dea", "dea#", "dea number", "dea registration", "prescriber", "registration")
ICD_WORDS = ("icd", "icd-10", "icd10", "icd-10-cm", "diagnosis", "diagnoses", "diagnosed",
             "diagnosed with", "dx", "dx:", "condition code")
MRN_WORDS = ("mrn", "mrn#", "medical record", "medical record number", "mr#", "mr no",
             "patient id", "patient number", "chart number", "chart #", "record number")
STUDENT_WORDS = ("student id", "student id#", "student number", "student no", "student #",
                 "student identification number", "pupil number")
DOB_WORDS = ("dob", "d.o.b", "d.o.b.", "date of birth", "birth date", "birthdate", "born",
             "born on", "birthday")

_MONTH = ("(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
          "sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_DATE = (r"\b(?:\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})|\d{4}-\d{1,2}-\d{1,2}|"
         rf"{_MONTH}\.? \d{{1,2}},? \d{{4}}|\d{{1,2}} {_MONTH}\.?,? \d{{4}})\b")

# The Social Security Administration's structure, so that void numbers never become
# candidates: area not 000, 666 or 9xx; group not 00; serial not 0000.
_AREA = r"(?:00[1-9]|0[1-9]\d|[1-578]\d{2}|6[0-57-9]\d|66[0-57-9])"
_GROUP = r"(?:0[1-9]|[1-9]\d)"
_SERIAL = r"(?:000[1-9]|00[1-9]\d|0[1-9]\d{2}|[1-9]\d{3})"
_ITIN_GROUP = r"(?:5\d|6[0-5]|7\d|8[0-8]|9[0-24-9])"

BUILTIN: tuple[Detector, ...] = (
    # One separator throughout (the validators insist): 123-45-6789 or 123 45 6789.
    Detector("US_SSN", rf"\b{_AREA}[- ]{_GROUP}[- ]{_SERIAL}\b", v.us_ssn, MEDIUM, HIGH,
             SSN_WORDS, priority=5),
    Detector("US_SSN", r"\b\d{9}\b", v.us_ssn, LOW, MEDIUM, SSN_WORDS, priority=4),
    Detector("US_ITIN", rf"\b9\d{{2}}[- ]{_ITIN_GROUP}[- ]\d{{4}}\b", v.us_itin, MEDIUM, HIGH,
             ITIN_WORDS, priority=6),
    # The same candidates as the bare SSN (one pattern, fewer for Hyperscan to run).
    Detector("US_ITIN", r"\b\d{9}\b", v.us_itin, LOW, MEDIUM, ITIN_WORDS, priority=6),
    # Card numbers start with 2-6 or 8 and are written whole, in fours, or 4-6-5 / 4-6-4.
    Detector("CREDIT_CARD", r"\b[2-68]\d{11,18}\b", v.credit_card, MEDIUM, HIGH, CARD_WORDS,
             priority=8),
    Detector("CREDIT_CARD", r"\b[2-68]\d{3}(?:[ -]\d{4}){2,3}[ -]\d{1,4}\b", v.credit_card,
             MEDIUM, HIGH, CARD_WORDS, priority=8),
    Detector("CREDIT_CARD", r"\b3\d{3}[ -]\d{6}[ -]\d{4,5}\b", v.credit_card, MEDIUM, HIGH,
             CARD_WORDS, priority=8),
    Detector("ABA_ROUTING_NUMBER", r"\b\d{9}\b", v.aba_routing, LOW, HIGH, ABA_WORDS,
             priority=3),
    Detector("ABA_ROUTING_NUMBER", r"\b\d{4}-\d{4}-\d\b", v.aba_routing, LOW, HIGH,
             ABA_WORDS, priority=3),
    # IBANs are written whole or in groups of four, the last group shorter.
    Detector("IBAN_CODE", r"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b", v.iban_code, MEDIUM, HIGH,
             IBAN_WORDS, priority=8),
    Detector("IBAN_CODE", r"\b[A-Z]{2}\d{2}(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?\b",
             v.iban_code, MEDIUM, HIGH, IBAN_WORDS, priority=8, runs_on=True),
    Detector("US_DEA_NUMBER", r"\b[ABCDEFGHJKLMPRSTUX][A-Z9]\d{7}\b", v.us_dea, MEDIUM, HIGH,
             DEA_WORDS, priority=7),
    Detector("US_NPI", r"\b[12]\d{9}\b", v.us_npi, None, HIGH, NPI_WORDS, priority=7),
    Detector("US_BANK_NUMBER", r"\b\d{8,17}\b", v.digit_count(8, 17), None, MEDIUM,
             BANK_WORDS, priority=1),
    Detector("US_PASSPORT", r"\b(?:[A-Z]\d{8}|\d{9})\b", v.always, None, MEDIUM,
             PASSPORT_WORDS, priority=2),
    Detector("US_DRIVER_LICENSE", r"\b[A-Z]{0,2}\d(?:-?[0-9]){4,15}\b", v.digit_count(5, 16),
             None, MEDIUM, LICENSE_WORDS, priority=2),
    Detector("ICD10_CODE", r"\b[A-TV-Z]\d[0-9AB](?:\.[0-9A-TV-Z]{1,4})?\b", v.icd10, None,
             MEDIUM, ICD_WORDS, priority=2),
    Detector("MEDICAL_RECORD_NUMBER", r"\b(?:[A-Z]{1,4}-?)?\d{5,10}\b", v.digit_count(5, 10),
             None, MEDIUM, MRN_WORDS, priority=2),
    Detector("STUDENT_ID", r"\b[A-Z]{0,2}\d{5,10}\b", v.digit_count(5, 10), None, MEDIUM,
             STUDENT_WORDS, priority=2),
    Detector("DATE_OF_BIRTH", _DATE, v.birth_date, None, MEDIUM, DOB_WORDS, caseless=True,
             priority=2),
)

TYPES: tuple[str, ...] = tuple(dict.fromkeys(detector.type for detector in BUILTIN))

# What people call each type, for notices, the add-in's dialog and the console.
LABELS: dict[str, str] = {
    "US_SSN": "US Social Security number",
    "US_ITIN": "US taxpayer identification number (ITIN)",
    "CREDIT_CARD": "payment card number",
    "ABA_ROUTING_NUMBER": "bank routing number",
    "US_BANK_NUMBER": "bank account number",
    "IBAN_CODE": "IBAN",
    "US_PASSPORT": "US passport number",
    "US_DRIVER_LICENSE": "US driver's license number",
    "US_NPI": "National Provider Identifier",
    "US_DEA_NUMBER": "DEA registration number",
    "ICD10_CODE": "ICD-10 diagnosis code",
    "MEDICAL_RECORD_NUMBER": "medical record number",
    "DATE_OF_BIRTH": "date of birth",
    "STUDENT_ID": "student ID",
    "UNREADABLE_ATTACHMENT": "attachment that cannot be checked",
}


def label(type_: str) -> str:
    return LABELS.get(type_, type_.replace("_", " ").lower())
