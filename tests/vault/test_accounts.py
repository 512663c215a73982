"""The identity rules of vault/accounts.py with the clock as a value: lockout that ends,
TOTP drift and replay, code life and attempts, recovery codes, questions, sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from sealgate.config import PortalConfig
from sealgate.vault import accounts
from sealgate.vault.accounts import Check
from sealgate.vault.models import PortalAccount, Recipient
from sealgate.vault.vault import Vault

POLICY = PortalConfig()
T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
PEPPER = b"k" * 32


def account_with_password(vault: Vault, password: str = "a-long-passphrase-ok") -> int:
    with vault.database.writing() as db:
        account = accounts.register(db, "Jane@Example.TEST", password)
        assert account is not None
        accounts.confirm_registration(db, account, T0)
        return account.id


def test_a_lockout_ends_after_its_minutes(vault: Vault) -> None:
    account_id = account_with_password(vault)
    with vault.database.writing() as db:
        account = db.get(PortalAccount, account_id)
        assert account is not None and account.address == "jane@example.test"
        results = [accounts.check_password(account, "wrong", POLICY, T0)
                   for _ in range(POLICY.lockout_failures)]
        assert results[-1] is Check.LOCKED and set(results[:-1]) == {Check.WRONG}
        during = T0 + timedelta(minutes=POLICY.lockout_minutes - 1)
        assert accounts.check_password(account, "a-long-passphrase-ok", POLICY,
                                       during) is Check.LOCKED
        after = T0 + timedelta(minutes=POLICY.lockout_minutes, seconds=1)
        assert accounts.check_password(account, "a-long-passphrase-ok", POLICY,
                                       after) is Check.OK


def test_totp_allows_one_step_of_drift_and_never_the_same_code_twice(vault: Vault) -> None:
    account_id = account_with_password(vault)
    secret = accounts.new_totp_secret()
    totp = pyotp.TOTP(secret)
    with vault.database.writing() as db:
        account = db.get(PortalAccount, account_id)
        assert account is not None
        assert accounts.enable_totp(db, vault.keyring, account, secret, "000000", T0) is None \
            or totp.at(T0) == "000000"
        codes = accounts.enable_totp(db, vault.keyring, account, secret, totp.at(T0), T0)
        assert codes is not None and len(set(codes)) == accounts.RECOVERY_CODES
        later = T0 + timedelta(seconds=60)
        check = accounts.check_second_factor
        assert check(db, vault.keyring, account, totp.at(T0), POLICY, later) is Check.WRONG
        assert check(db, vault.keyring, account, totp.at(later - timedelta(seconds=30)),
                     POLICY, later) is Check.OK  # one step behind: accepted once
        assert check(db, vault.keyring, account, totp.at(later - timedelta(seconds=30)),
                     POLICY, later) is Check.WRONG  # and not again
        far = T0 + timedelta(minutes=10)
        assert check(db, vault.keyring, account, totp.at(far - timedelta(seconds=90)),
                     POLICY, far) is Check.WRONG  # three steps old
        assert check(db, vault.keyring, account, codes[3], POLICY, far) is Check.OK
        assert check(db, vault.keyring, account, codes[3], POLICY, far) is not Check.OK
        assert accounts.recovery_codes_left(db, account) == accounts.RECOVERY_CODES - 1


def test_a_login_code_has_a_life_and_a_number_of_guesses(vault: Vault) -> None:
    address = "patient@gmail.test"
    with vault.database.writing() as db:
        code = accounts.issue_login_code(db, address, PEPPER, POLICY, T0)
        late = T0 + timedelta(minutes=POLICY.code_minutes, seconds=1)
        assert not accounts.redeem_login_code(db, address, code, PEPPER, POLICY, late)
        code = accounts.issue_login_code(db, address, PEPPER, POLICY, T0)
        assert not accounts.redeem_login_code(db, address, code, b"other-key" * 4, POLICY, T0)
        for _ in range(POLICY.code_attempts - 1):  # with the try above: all attempts used
            assert not accounts.redeem_login_code(db, address, "999999" if code != "999999"
                                                  else "000000", PEPPER, POLICY, T0)
        assert not accounts.redeem_login_code(db, address, code, PEPPER, POLICY, T0)
        code = accounts.issue_login_code(db, address, PEPPER, POLICY, T0)
        assert accounts.redeem_login_code(db, address, f" {code[:3]} {code[3:]} ", PEPPER,
                                          POLICY, T0)
        assert not accounts.redeem_login_code(db, address, code, PEPPER, POLICY, T0)


@pytest.mark.parametrize("typed", ["Blue  Whale", "bluewhale", " BLUE WHALE "])
def test_answers_ignore_case_and_spaces(vault: Vault, typed: str) -> None:
    recipient = Recipient(address="patient@gmail.test", answer_failures=0)
    accounts.set_question(recipient, "Favourite animal?", "blue whale")
    assert recipient.answer_hash and "whale" not in recipient.answer_hash
    assert accounts.check_answer(recipient, typed, POLICY) is Check.OK
    assert accounts.check_answer(recipient, "orca", POLICY) is Check.WRONG


def test_a_session_ends_when_idle_or_after_its_hours(vault: Vault) -> None:
    account_id = account_with_password(vault)
    with vault.database.writing() as db:
        account = db.get(PortalAccount, account_id)
        assert account is not None
        secret = accounts.start_session(db, account, POLICY, T0)
    with vault.database.session() as db:
        found, owner = accounts.find_session(db, secret, POLICY, T0 + timedelta(minutes=1))
        assert found is not None and owner is not None and owner.id == account_id
        idle = T0 + timedelta(minutes=POLICY.session_minutes)
        assert accounts.find_session(db, secret, POLICY, idle) == (None, None)
        assert accounts.find_session(db, "not-" + secret, POLICY, T0) == (None, None)
    with vault.database.writing() as db:
        for minutes in range(0, accounts.SESSION_HOURS * 60, POLICY.session_minutes - 1):
            accounts.touch(db, found.id, T0 + timedelta(minutes=minutes))
    with vault.database.session() as db:
        beyond = T0 + timedelta(hours=accounts.SESSION_HOURS, seconds=1)
        assert accounts.find_session(db, secret, POLICY, beyond) == (None, None)
