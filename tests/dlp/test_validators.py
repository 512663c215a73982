"""Every validator with values that must pass and values of the same shape that must not."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from stdnum import luhn
from stdnum.us import rtn

from sealgate.dlp import validators as v


def _with_luhn(prefix: str, length: int) -> str:
    body = prefix + "0" * (length - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


CASES: list[tuple[Callable[[str], bool], list[str], list[str]]] = [
    (v.credit_card,
     ["4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "4012888888881881",
      "4222222222222", "5555555555554444", "5105 1051 0510 5100", "2221000000000009",
      _with_luhn("2720", 16), "378282246310005", "3782 822463 10005", "371449635398431",
      "6011111111111117", "6011000990139424", _with_luhn("6011", 19), "3530111333300000",
      "3566002020360505", "30569309025904", "3056 930902 5904", "38520000023237",
      "6200000000000005", _with_luhn("62", 19), "6759649826438453", _with_luhn("2200", 16)],
     ["4111111111111112", "1234567890123456", "1234 5678 9012 3456", _with_luhn("91", 16),
      _with_luhn("2721", 16), _with_luhn("2220", 16), _with_luhn("4", 15),
      _with_luhn("34", 16), "4111 1111-1111 1111", "41 11 11 11 11 11 11 11",
      "4111 1111 1111 111 1", _with_luhn("978", 13), _with_luhn("35", 15)]),
    (v.us_ssn,
     ["123-45-6789", "123 45 6789", "123456789", "001-01-0001", "665-99-9999", "899-12-3456"],
     ["000-12-3456", "666-12-3456", "912-34-5678", "950-70-1234", "123-00-4567",
      "123-45-0000", "078-05-1120", "219-09-9999", "12-345-6789"]),
    (v.us_itin,
     ["912-70-1234", "900-88-1234", "999-94-1234", "950-50-0001", "912 92 1234"],
     ["912-69-1234", "812-70-1234", "912-93-1234", "912-89-1234", "123-45-6789"]),
    (v.aba_routing,
     ["021000021", "011000015", "322271627", "121000358", "0210-0002-1",
      rtn.compact("61000000") + rtn.calc_check_digit("61000000")],
     ["021000022", "123456789", "000000000",
      "13100001" + rtn.calc_check_digit("13100001"),
      "40000000" + rtn.calc_check_digit("40000000")]),
    (v.iban_code,
     ["DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432",
      "FR1420041010050500013M02606", "NL91ABNA0417164300", "CH9300762011623852957"],
     ["DE89370400440532013001", "GB82WEST1234569876543", "NL91ABNA041716430",
      "XX89370400440532013000", "DE00370400440532013000"]),
    (v.us_npi, ["1234567893", "1245319599", "1003000126"],
     ["1234567890", "3234567893", "123456789", "12345678931"]),
    (v.us_dea, ["AB1234563", "FS1234563", "M91234563", "BJ6125341"],
     ["AB1234564", "IB1234563", "A11234563", "AB123456", "ab1234563"]),
    (v.icd10, ["E11.9", "I10", "J45.909", "S72.001A", "Z79.4", "C4A.0"],
     ["U07.1", "E1", "11.9", "E11.", "e11.9", "E11.90000"]),
    (v.birth_date, ["03/14/1962", "3/4/62", "1962-03-14", "March 14, 1962", "14 Mar 1962",
                    "Sept 1, 2001", "12.31.1999"],
     ["02/30/1990", "13/14/1962", "1850-01-01", "Smarch 14, 1962", "14/03", "1962/03"]),
]


@pytest.mark.parametrize(("check", "good", "bad"), CASES,
                         ids=[check.__name__ for check, _, _ in CASES])
def test_validator_accepts_the_good_and_refuses_the_bad(check: Callable[[str], bool],
                                                        good: list[str], bad: list[str]) -> None:
    assert [value for value in good if not check(value)] == []
    assert [value for value in bad if check(value)] == []


def test_digit_count_bounds_and_separators() -> None:
    check = v.digit_count(8, 17)
    assert check("12345678") and check("1234-5678-9012") and check("1" * 17)
    assert not check("1234567") and not check("1" * 18) and not check("1234--5678")


def test_the_written_out_rules_agree_with_python_stdnum() -> None:
    """The fast checks must say what python-stdnum says (ITIN: stdnum lacks groups 50-65)."""
    import random

    from stdnum import iban
    from stdnum.us import itin, ssn

    pick = random.Random(7)
    for _ in range(20000):
        number = f"{pick.randrange(10**9):09d}"
        assert v.us_ssn(number) == ssn.is_valid(number), number
        assert v.aba_routing(number) == (rtn.is_valid(number) and number[:2] in
                                         v._ABA_PREFIXES and number != "000000000"), number
        if not 50 <= int(number[3:5]) <= 65:
            assert v.us_itin(number) == itin.is_valid(number), number
        card = f"{pick.randrange(10**15, 10**16)}"
        assert v.luhn_ok(card) == luhn.is_valid(card), card
    for country in ("DE", "GB", "FR", "NL"):
        for _ in range(500):
            body = f"{pick.randrange(10**17):018d}"
            check = iban.calc_check_digits(country + "00" + body)
            candidate = country + check + body
            assert v.iban_code(candidate) == iban.is_valid(candidate), candidate
            wrong = country + f"{(int(check) + 1) % 100:02d}" + body
            assert v.iban_code(wrong) == iban.is_valid(wrong), wrong
