"""Recipients' certificates and OpenPGP keys in the console and the API: import (PEM, DER,
armored, binary; uploaded, pasted, base64 in JSON or raw), list with whether each is usable
today, remove; bad key data refused with the reason; every change audited."""

from __future__ import annotations

import base64
import io
import warnings
from datetime import UTC, datetime, timedelta

import pysequoia
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from flask.testing import FlaskClient
from sqlalchemy import select

from sealgate.lab.pki import TestCa
from sealgate.vault import recipient_keys
from sealgate.vault.models import AuditEvent, KeyKind
from sealgate.vault.vault import Vault
from tests.admin.conftest import ADMIN, bearer, make_key
from tests.conftest import SQLITE_ONLY
from tests.portal.conftest import csrf

# The console's pages, not the database: SQLite is enough here (the database-sensitive
# admin tests, sessions, settings revisions, searches and holds, run on both).
pytestmark = SQLITE_ONLY


API = "/api/v1/admin/keys"
ANN, BOB = "ann@partner.test", "bob@partner.test"


@pytest.fixture(scope="module")
def ca() -> TestCa:
    return TestCa.create()


def certificate(ca: TestCa, address: str = ANN, **options: object) -> bytes:
    return ca.issue_email(address, **options)[1]  # type: ignore[arg-type]


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def openpgp_key(address: str) -> pysequoia.Cert:
    with warnings.catch_warnings():  # pysequoia prefers a newer name for the same thing
        warnings.simplefilter("ignore", DeprecationWarning)
        return pysequoia.Cert.generate(f"Someone <{address}>")


def fingerprint_of(pem: bytes) -> str:
    return recipient_keys.key_facts(pem, datetime.now(UTC)).fingerprint


def audited(vault: Vault, action: str) -> list[AuditEvent]:
    with vault.database.session() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(AuditEvent.seq)))


def test_keys_in_every_form_are_imported_listed_and_removed_through_the_api(
        api: FlaskClient, vault: Vault, ca: TestCa) -> None:
    token = make_key(vault, ["keys:read", "keys:write"])
    pem = certificate(ca)
    added = api.post(API, headers=bearer(token), json={"data": base64.b64encode(pem).decode()})
    assert added.status_code == 201, added.json
    assert added.json["kind"] == "smime" and added.json["added"] == [ANN]
    assert added.json["fingerprint"] == fingerprint_of(pem)
    again = api.post(API, headers=bearer(token), json={"data": base64.b64encode(pem).decode()})
    assert again.status_code == 200 and again.json["already_on_file"] == [ANN]

    raw_der = api.post(f"{API}?address={BOB}", headers={
        **bearer(token), "Content-Type": "application/pkix-cert"},
        data=der(certificate(ca, BOB)))
    assert raw_der.status_code == 201 and raw_der.json["added"] == [BOB]
    pgp = openpgp_key("carol@partner.test")
    armored = api.post(API, headers=bearer(token),
                       json={"data": base64.b64encode(str(pgp).encode()).decode(),
                             "address": "Carol@Partner.test"})
    assert armored.status_code == 201 and armored.json["kind"] == "pgp"
    assert armored.json["fingerprint"] == pgp.fingerprint.upper()
    binary = openpgp_key("dan@partner.test")
    raw_binary = api.post(API, headers={**bearer(token),
                                        "Content-Type": "application/octet-stream"},
                          data=bytes(binary))
    assert raw_binary.status_code == 201 and raw_binary.json["added"] == ["dan@partner.test"]

    listed = {k["address"]: k for k in api.get(API, headers=bearer(token)).json["keys"]}
    assert set(listed) == {ANN, BOB, "carol@partner.test", "dan@partner.test"}
    ann = listed[ANN]
    assert ann["kind"] == "smime" and ann["source"] == "import" and ann["usable"] is True
    assert ann["problems"] == [] and ann["not_after"] > datetime.now(UTC).isoformat()
    assert listed["carol@partner.test"]["kind"] == "pgp"
    only_bob = api.get(f"{API}?address={BOB.upper()}", headers=bearer(token)).json["keys"]
    assert [k["address"] for k in only_bob] == [BOB]
    [event] = [e for e in audited(vault, "recipient_key.added")
               if e.details["address"] == ANN]
    assert event.actor.startswith("api-key:") and event.details["kind"] == "smime"

    # Removing: any case, for one address; then it is gone, and a second try is a 404.
    removed = api.delete(f"{API}/{armored.json['fingerprint'].lower()}"
                         "?address=carol@partner.test", headers=bearer(token))
    assert removed.status_code == 200 and removed.json["removed"] == 1
    assert "carol@partner.test" not in {k["address"] for k in
                                        api.get(API, headers=bearer(token)).json["keys"]}
    missing = api.delete(f"{API}/{armored.json['fingerprint']}", headers=bearer(token))
    assert missing.status_code == 404 and "no key with fingerprint" in missing.json["message"]
    [gone] = audited(vault, "recipient_key.removed")
    assert gone.actor.startswith("api-key:")
    assert gone.details["removed"][0]["address"] == "carol@partner.test"


def test_a_key_that_stopped_being_usable_is_listed_as_such(
        api: FlaskClient, vault: Vault, ca: TestCa) -> None:
    expired = certificate(ca, not_before=datetime.now(UTC) - timedelta(days=400), days=30)
    facts = recipient_keys.key_facts(expired, datetime.now(UTC) - timedelta(days=380))
    assert facts.usable  # it was, when it came
    recipient_keys.put(vault, "harvest", ANN, KeyKind.SMIME, facts.fingerprint, expired,
                       facts.not_after, "harvest")
    token = make_key(vault, ["keys:read"])
    [key] = api.get(API, headers=bearer(token)).json["keys"]
    assert key["usable"] is False and key["source"] == "harvest"
    assert any("expired" in problem for problem in key["problems"])


@pytest.mark.parametrize("body, says", [
    ({"data": base64.b64encode(b"hello, not a key").decode()}, "is neither an X.509"),
    ({"data": "%%% not base64 %%%"}, "'data' is not valid base64"),
    ({"data": ""}, "'data' must be the certificate or key"),
    ({}, "'data' must be the certificate or key"),
    ({"data": 12}, "'data' must be the certificate or key"),
    ({"data": "aGVsbG8=", "address": ["x"]}, "'address' must be a string"),
])
def test_bad_key_data_is_refused_with_the_reason(api: FlaskClient, vault: Vault,
                                                 body: dict[str, object], says: str) -> None:
    token = make_key(vault, ["keys:write"])
    refused = api.post(API, headers=bearer(token), json=body)
    assert refused.status_code == 400, refused.json
    assert says in refused.json["message"]
    assert recipient_keys.listed(vault) == []


def test_unusable_keys_are_refused_and_nothing_is_stored(api: FlaskClient, vault: Vault,
                                                         ca: TestCa) -> None:
    token = make_key(vault, ["keys:write"])
    expired = certificate(ca, not_before=datetime.now(UTC) - timedelta(days=400), days=30)
    for data, query, says in (
            (expired, "", "The key data cannot be used: "),
            (certificate(ca), f"?address={BOB}", f"The key data is not for {BOB} "
                                                 f"(it names: {ANN})"),
            (b"", "", "no certificate or key was sent"),
            (b"\x00" * 10, "", "is neither an X.509 certificate nor an OpenPGP public key")):
        refused = api.post(f"{API}{query}", data=data, headers={
            **bearer(token), "Content-Type": "application/octet-stream"})
        assert refused.status_code == 400 and says in refused.json["message"], says
    assert recipient_keys.listed(vault) == []
    assert audited(vault, "recipient_key.added") == []


def test_the_keys_need_their_scopes(api: FlaskClient, vault: Vault, ca: TestCa) -> None:
    reader = make_key(vault, ["keys:read"])
    writer = make_key(vault, ["keys:write"], name="writer")
    pem = certificate(ca)
    refused = api.post(API, headers=bearer(reader), json={"data": base64.b64encode(pem).decode()})
    assert refused.status_code == 403 and refused.json["needed"] == "keys:write"
    assert api.get(API, headers=bearer(writer)).status_code == 403
    assert api.post(API, headers=bearer(writer),
                    json={"data": base64.b64encode(pem).decode()}).status_code == 201
    fingerprint = fingerprint_of(pem)
    assert api.delete(f"{API}/{fingerprint}", headers=bearer(reader)).status_code == 403
    assert api.delete(f"{API}/{fingerprint}").status_code == 401
    assert len(recipient_keys.listed(vault)) == 1


def test_the_console_imports_an_upload_or_a_paste_and_removes(
        console: FlaskClient, vault: Vault, ca: TestCa) -> None:
    page = console.get("/admin/recipient-keys")
    assert page.status_code == 200 and b"No keys on file" in page.data
    token = csrf(page.data)
    pem = certificate(ca)
    uploaded = console.post("/admin/recipient-keys", content_type="multipart/form-data", data={
        "csrf_token": token, "upload": (io.BytesIO(der(pem)), "ann.cer"), "address": ""})
    assert uploaded.status_code == 302, uploaded.data
    pasted = console.post("/admin/recipient-keys", data={
        "csrf_token": token, "pasted": certificate(ca, BOB).decode(), "address": BOB})
    assert pasted.status_code == 302
    listing = console.get("/admin/recipient-keys")
    assert ANN.encode() in listing.data and BOB.encode() in listing.data
    assert fingerprint_of(pem).encode() in listing.data
    assert b"Added: smime" in listing.data  # the notice of the import
    assert [e.actor for e in audited(vault, "recipient_key.added")] == [ADMIN, ADMIN]

    for data, says in (
            ({"pasted": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----"},
             b"The key data is neither an X.509 certificate"),
            ({}, b"Choose a file or paste a certificate or key."),
            ({"pasted": pem.decode(), "upload": (io.BytesIO(pem), "ann.pem")},
             b"Upload a file or paste the key, not both."),
            ({"pasted": pem.decode(), "address": BOB}, b"The key data is not for " + BOB.encode())):
        refused = console.post("/admin/recipient-keys", content_type="multipart/form-data",
                               data={"csrf_token": token, **data})
        assert refused.status_code == 400 and says in refused.data, says
    assert console.post("/admin/recipient-keys",
                        data={"pasted": pem.decode()}).status_code == 400  # no form token
    assert len(recipient_keys.listed(vault)) == 2

    removed = console.post("/admin/recipient-keys/remove", data={
        "csrf_token": token, "fingerprint": fingerprint_of(pem), "address": ANN})
    assert removed.status_code == 302
    assert [k.address for k in recipient_keys.listed(vault)] == [BOB]
    assert b"Removed " in console.get("/admin/recipient-keys").data
    [event] = audited(vault, "recipient_key.removed")
    assert event.actor == ADMIN and event.details["address"] == ANN
