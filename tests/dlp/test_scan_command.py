"""`sealgate scan`: the verdict, the matched policies and the masked findings with the part
they were found in, for a whole message or any file."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

from sealgate.cli import cli
from sealgate.lab import documents


def message_with_attachment() -> bytes:
    message = EmailMessage()
    message["From"] = "who@example.org"
    message["To"] = "patient@gmail.test"
    message["Subject"] = "Forms"
    message.set_content("Card for the deposit: 4111 1111 1111 1111\n")
    message.add_attachment(documents.docx("Employee file", footer="SSN 123-45-6789"),
                           maintype="application",
                           subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
                           filename="hr.docx")
    return message.as_bytes()


def run(tmp_path: Path, *args: str, stdin: bytes | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "none"), "scan", *args],
                                input=stdin)
    return result.exit_code, result.output


def test_a_message_is_reported_part_by_part_with_values_masked(tmp_path: Path) -> None:
    path = tmp_path / "forms.eml"
    path.write_bytes(message_with_attachment())
    code, output = run(tmp_path, str(path))
    assert code == 0
    assert output.splitlines()[0] == "verdict: encrypt"
    assert "policy PCI DSS: payment card numbers: encrypt" in output
    assert "body: CREDIT_CARD (payment card number), high: **** **** **** 1111" in output
    assert "hr.docx: US_SSN (US Social Security number), high: ***-**-6789" in output
    assert "4111 1111" not in output and "123-45" not in output


def test_json_from_standard_input(tmp_path: Path) -> None:
    code, output = run(tmp_path, "--json", "-", stdin=message_with_attachment())
    assert code == 0
    report = json.loads(output)
    assert report["action"] == "encrypt" and report["sensitive"] is True
    assert {(f["part"], f["type"]) for f in report["findings"]} == {
        ("body", "CREDIT_CARD"), ("hr.docx", "US_SSN")}


def test_any_file_and_an_unreadable_one(tmp_path: Path) -> None:
    sheet = tmp_path / "accounts.xlsx"
    sheet.write_bytes(documents.xlsx([["routing number", "021000021"]]))
    code, output = run(tmp_path, "--json", str(sheet))
    assert code == 0 and json.loads(output)["findings"][0]["type"] == "ABA_ROUTING_NUMBER"
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(documents.encrypted_pdf("SSN 123-45-6789"))
    code, output = run(tmp_path, str(locked))
    assert code == 0 and "verdict: encrypt" in output
    assert "locked.pdf: encrypted" in output and "Unreadable attachment" in output


@pytest.mark.parametrize("name", ["missing.eml"])
def test_a_path_that_cannot_be_read_is_a_clear_error(tmp_path: Path, name: str) -> None:
    code, output = run(tmp_path, str(tmp_path / name))
    assert code != 0 and "Traceback" not in output
    assert "does not exist" in output or "cannot read" in output
