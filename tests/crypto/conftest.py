"""A test CA and the people around a protected message, made once per session (RSA key
generation is the slow part), with their keys and certificates also written to files for
Debian's `openssl`, which the tests use to read what Sealgate wrote."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from sealgate.lab.pki import TestCa


@dataclass(frozen=True)
class Person:
    address: str
    key_pem: bytes
    cert_pem: bytes
    key_file: Path
    cert_file: Path


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="session")
def ca(pki_dir: Path) -> TestCa:
    made = TestCa.create()
    (pki_dir / "ca.pem").write_bytes(made.cert_pem)
    return made


def _person(ca: TestCa, pki_dir: Path, address: str) -> Person:
    key_pem, cert_pem = ca.issue_email(address)
    key_file, cert_file = pki_dir / f"{address}.key", pki_dir / f"{address}.pem"
    key_file.write_bytes(key_pem)
    cert_file.write_bytes(cert_pem)
    return Person(address, key_pem, cert_pem, key_file, cert_file)


@pytest.fixture(scope="session")
def bob(ca: TestCa, pki_dir: Path) -> Person:
    return _person(ca, pki_dir, "bob@partner.example")


@pytest.fixture(scope="session")
def dana(ca: TestCa, pki_dir: Path) -> Person:
    return _person(ca, pki_dir, "dana@clinic.example")


@pytest.fixture(scope="session")
def eve(ca: TestCa, pki_dir: Path) -> Person:
    """Holds a good certificate too, but is not a recipient."""
    return _person(ca, pki_dir, "eve@elsewhere.example")


@pytest.fixture(scope="session")
def organisation(ca: TestCa, pki_dir: Path) -> Person:
    """The sending organisation's signing identity."""
    return _person(ca, pki_dir, "secure@sealgate.example")
