"""The Postfix configuration for verified TLS that deploy/postfix documents is the one the lab
runs (both come from sealgate.routing.mta), and Postfix itself accepts it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sealgate.routing import mta

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "postfix"


def postmap_query(folder: Path, table: Path, query: str) -> str:
    """What Postfix's own table code answers (with an empty main.cf of its own: the system
    may have none)."""
    (folder / "main.cf").write_text("myhostname = lab.sealgate.test\n")  # no DNS asked
    done = subprocess.run(["postmap", "-c", str(folder), "-q", query, f"regexp:{table}"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode in (0, 1), done.stderr  # 1: not found
    return done.stdout.strip()


def _table(name: str) -> str:
    return "".join(line + "\n" for line in (DEPLOY / name).read_text().splitlines()
                   if line and not line.startswith("#"))


def test_the_deployed_tables_are_the_generated_ones() -> None:
    assert _table("sealgate_header_checks") == mta.header_checks()
    assert _table("sealgate_status_filter") == mta.status_filter()
    master = (DEPLOY / "master.cf.example").read_text()
    for line in mta.master_cf("regexp:/etc/postfix/sealgate_header_checks",
                              "regexp:/etc/postfix/sealgate_status_filter"):
        assert line in master
    for option in mta.reinject_options():
        assert option in master
    main = (DEPLOY / "main.cf.example").read_text()
    for name, value in mta.main_cf().items():
        assert f"{name} = {value}" in main


@pytest.mark.skipif(shutil.which("postmap") is None, reason="Postfix is not installed")
@pytest.mark.parametrize(("query", "answer"), [
    (f"{mta.DELIVERY_HEADER}: verified-tls", "FILTER sealgate-tls:"),
    (f"{mta.DELIVERY_HEADER}: dane", "FILTER sealgate-dane:"),
    (f"{mta.DELIVERY_HEADER}: verified-tls; evil", ""),
    (f"{mta.DELIVERY_HEADER}: none", ""),
])
def test_postfix_reads_the_header_checks_as_meant(tmp_path: Path, query: str,
                                                  answer: str) -> None:
    table = tmp_path / "checks"
    table.write_text(mta.header_checks())
    assert postmap_query(tmp_path, table, query) == answer


@pytest.mark.skipif(shutil.which("postmap") is None, reason="Postfix is not installed")
def test_postfix_makes_temporary_failures_permanent_with_the_retry_mark(
        tmp_path: Path) -> None:
    table = tmp_path / "filter"
    table.write_text(mta.status_filter())

    def filtered(status: str) -> str:
        return postmap_query(tmp_path, table, status)

    assert filtered("4.7.5 Server certificate not verified") == \
        f"5.7.5 {mta.RETRY_MARK}: Server certificate not verified"
    assert filtered("5.1.1 no such user") == ""  # permanent stays as it is
    assert filtered("2.0.0 Ok") == ""
