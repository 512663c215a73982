"""Checks that tell a real identifier from a number of the same shape. Pure functions over the
matched text. python-stdnum holds the per-country IBAN layouts; the short arithmetic rules
(Luhn, SSA, 3-7-1, mod-97 as a first test) are written out here because they run for every
candidate in the text, and stdnum's cleaning and exceptions cost several times more (the
tests check both agree)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable

from stdnum import iban

_NOT_DIGITS = re.compile(r"\D")


def digits_of(value: str) -> str:
    return _NOT_DIGITS.sub("", value)


def _separated(value: str) -> list[str] | None:
    """The digit groups of a number written with one kind of separator (space or dash), or
    None when the separators are mixed."""
    separators = {ch for ch in value if not ch.isdigit()}
    if len(separators) > 1:
        return None
    return value.split(separators.pop()) if separators else [value]


# Each digit of the doubled positions replaced by the digit sum of its double.
_DOUBLED = str.maketrans("0123456789", "0246813579")


def luhn_ok(number: str) -> bool:
    """The Luhn check (ISO/IEC 7812), written out: it runs for every card-shaped number in
    the text, and stdnum's version (with its exceptions) costs several times more."""
    if not number.isdigit():
        return False
    return sum(map(int, number[-1::-2] + number[-2::-2].translate(_DOUBLED))) % 10 == 0


# Issuer ranges (first digits) and the lengths each brand issues.
_CARD_RANGES: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),                  # Visa
    (51, 55, frozenset({16})),                        # Mastercard
    (2221, 2720, frozenset({16})),                    # Mastercard 2-series
    (34, 34, frozenset({15})), (37, 37, frozenset({15})),  # American Express
    (6011, 6011, frozenset({16, 17, 18, 19})),        # Discover
    (644, 649, frozenset({16, 17, 18, 19})),
    (65, 65, frozenset({16, 17, 18, 19})),
    (622126, 622925, frozenset({16, 17, 18, 19})),    # Discover / UnionPay co-branded
    (3528, 3589, frozenset({16, 17, 18, 19})),        # JCB
    (300, 305, frozenset({14, 15, 16, 17, 18, 19})),  # Diners Club
    (36, 36, frozenset({14, 15, 16, 17, 18, 19})),
    (38, 39, frozenset({14, 15, 16, 17, 18, 19})),
    (62, 62, frozenset({16, 17, 18, 19})),            # UnionPay
    (2200, 2204, frozenset({16, 17, 18, 19})),        # Mir
    (5018, 5018, frozenset(range(12, 20))), (5020, 5020, frozenset(range(12, 20))),  # Maestro
    (5038, 5038, frozenset(range(12, 20))), (5893, 5893, frozenset(range(12, 20))),
    (6304, 6304, frozenset(range(12, 20))), (6759, 6759, frozenset(range(12, 20))),
    (6761, 6763, frozenset(range(12, 20))),
    (60, 60, frozenset({16})), (81, 82, frozenset({16})), (508, 508, frozenset({16})),  # RuPay
)
# How people group card numbers: fours (the last group shorter), or the 4-6-5 and 4-6-4
# layouts of American Express and Diners Club.
_WIDE_GROUPS = ([4, 6, 5], [4, 6, 4])


# The ranges by how many leading digits they compare, so each prefix is read once.
_RANGES_BY_WIDTH = tuple(
    (width, tuple((low, high, lengths) for low, high, lengths in _CARD_RANGES
                  if len(str(low)) == width))
    for width in sorted({len(str(low)) for low, _, _ in _CARD_RANGES}))


def card_brand_ok(number: str) -> bool:
    length = len(number)
    for width, ranges in _RANGES_BY_WIDTH:
        prefix = int(number[:width])
        for low, high, lengths in ranges:
            if low <= prefix <= high and length in lengths:
                return True
    return False


def credit_card(value: str) -> bool:
    number = value.replace(" ", "").replace("-", "")
    if not 12 <= len(number) <= 19 or not luhn_ok(number):  # cheapest refusals first
        return False
    if number != value:
        groups = _separated(value)
        if groups is None:
            return False
        sizes = [len(group) for group in groups]
        fours = all(size == 4 for size in sizes[:-1]) and 1 <= sizes[-1] <= 4
        if not (fours or sizes in _WIDE_GROUPS):
            return False
    return card_brand_ok(number) and len(set(number)) > 1


_SSN_LAYOUT = re.compile(r"\d{3}([- ]?)\d{2}\1\d{4}")
# Numbers the SSA voided after they were printed in advertising (stdnum's list).
_SSN_VOID = frozenset({"078051120", "457555462", "219099999"})


def us_ssn(value: str) -> bool:
    """SSA rules: no area 000, 666 or 900-999, no group 00, no serial 0000, and none of the
    numbers published in advertising."""
    if _SSN_LAYOUT.fullmatch(value) is None:
        return False
    number = value.replace("-", "").replace(" ", "")
    area = number[:3]
    return area not in ("000", "666") and area[0] != "9" and number[3:5] != "00" \
        and number[5:] != "0000" and number not in _SSN_VOID


def us_itin(value: str) -> bool:
    """Area 9xx with the IRS's groups 50-65, 70-88, 90-92 and 94-99."""
    if value[:1] != "9" or _SSN_LAYOUT.fullmatch(value) is None:
        return False
    number = value.replace("-", "").replace(" ", "")
    group = int(number[3:5])
    return number[0] == "9" and (50 <= group <= 65 or 70 <= group <= 88 or 90 <= group <= 92
                                 or 94 <= group <= 99)


# Federal Reserve routing symbols: 00-12 (banks), 21-32 (thrifts), 61-72 (electronic), 80
# (traveller's cheques); anything else is not a routing number.
_ABA_PREFIXES = frozenset(f"{p:02d}" for p in [*range(0, 13), *range(21, 33), *range(61, 73), 80])


def aba_routing(value: str) -> bool:
    """A routing symbol prefix and the 3-7-1 weighted checksum."""
    n = value.replace("-", "")
    if n[:2] not in _ABA_PREFIXES or len(n) != 9 or not n.isdigit() or n == "000000000":
        return False
    d = [int(ch) for ch in n]
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0


_IBAN_LETTERS = {ord(letter): str(index) for index, letter in
                 enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ", start=10)}


def iban_code(value: str) -> bool:
    """mod-97 (ISO 7064) first, then the country's own length and layout (stdnum's registry)."""
    compact = value.replace(" ", "")
    if int((compact[4:] + compact[:4]).translate(_IBAN_LETTERS)) % 97 != 1:
        return False
    return iban.is_valid(compact)


def us_npi(value: str) -> bool:
    """Ten digits starting 1 or 2 whose Luhn check runs over the 80840 health-industry prefix."""
    number = digits_of(value)
    return len(number) == 10 and number[0] in "12" and luhn_ok("80840" + number)


_DEA_REGISTRANTS = frozenset("ABCDEFGHJKLMPRSTUX")


def us_dea(value: str) -> bool:
    """Two letters (registrant type, then usually the surname's initial or 9) and seven digits
    where (d1 + d3 + d5) + 2 * (d2 + d4 + d6) ends in d7."""
    if len(value) != 9 or value[0] not in _DEA_REGISTRANTS or not value[2:].isdigit():
        return False
    if not (value[1].isalpha() or value[1] == "9"):
        return False
    d = [int(ch) for ch in value[2:]]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


_ICD10 = re.compile(r"[A-TV-Z][0-9][0-9AB](?:\.[0-9A-TV-Z]{1,4})?")


def icd10(value: str) -> bool:
    return _ICD10.fullmatch(value) is not None


def digit_count(low: int, high: int) -> Callable[[str], bool]:
    """A validator: between low and high digits, and no doubled separators."""
    def check(value: str) -> bool:
        return low <= len(digits_of(value)) <= high and "--" not in value
    return check


_MONTHS = {name: index for index, names in enumerate((
    ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
    ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
    ("oct", "october"), ("nov", "november"), ("dec", "december")), start=1) for name in names}
_NUMERIC_DATE = re.compile(r"(\d{1,4})[/.-](\d{1,2})[/.-](\d{2,4})")
_WORD_DATE = re.compile(r"(?:([a-z]+)\.? (\d{1,2}),? (\d{4})|(\d{1,2}) ([a-z]+)\.?,? (\d{4}))")


def birth_date(value: str) -> bool:
    """A real calendar date in a plausible birth year, in the usual US and ISO layouts."""
    text = value.lower()
    numeric = _NUMERIC_DATE.fullmatch(text)
    if numeric:
        first, second, third = numeric.groups()
        if len(first) == 4:
            year, month, day = int(first), int(second), int(third)
        elif len(third) in (2, 4):
            month, day = int(first), int(second)
            year = int(third) if len(third) == 4 else 1900 + int(third)
        else:
            return False
    else:
        worded = _WORD_DATE.fullmatch(text)
        if not worded:
            return False
        month_name, day_text, year_text = (
            worded.group(1, 2, 3) if worded.group(1) else worded.group(5, 4, 6))
        if month_name not in _MONTHS:
            return False
        month, day, year = _MONTHS[month_name], int(day_text), int(year_text)
    if not 1900 <= year <= 2100:
        return False
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def always(_value: str) -> bool:
    return True
