"""Vault throughput: seal+store and open of N messages of 20 KB on SQLite, against
AES-256-GCM alone on the same data in the same run.

    .venv/bin/python bench/vault.py [--messages 10000] [--size 20000] [--no-durable]

`vs_raw_aead` = raw cipher time / vault time (1.0 would mean the vault costs nothing beyond
the cipher). The raw baseline does what the vault must do at the least: a fresh key per
message, encrypt, then decrypt. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealgate import config
from sealgate.cli import main as cli_main
from sealgate.vault.models import PartKind
from sealgate.vault.vault import NewMessage, NewPart, NewRecipient, Vault


def raw_aead(payloads: list[bytes]) -> float:
    started = time.perf_counter()
    for payload in payloads:
        cipher, nonce = AESGCM(os.urandom(32)), os.urandom(12)
        sealed = cipher.encrypt(nonce, payload, b"context")
        assert cipher.decrypt(nonce, sealed, b"context") == payload
    return time.perf_counter() - started


def vault_round_trip(vault: Vault, payloads: list[bytes]) -> tuple[float, float]:
    started = time.perf_counter()
    ids = [vault.deposit(NewMessage("sender@example.org", "Results", [
        NewRecipient("patient@example.net")], [NewPart(PartKind.TEXT, payload, "text/plain")]),
        "sender@example.org") for payload in payloads]
    stored = time.perf_counter()
    for message_id, payload in zip(ids, payloads, strict=True):
        with vault.database.session() as session:
            (part,) = vault.message(session, message_id).parts
        assert vault.read_part(part) == payload
    return stored - started, time.perf_counter() - stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--no-durable", dest="durable", action="store_false",
                        help="skip fsync (not how Sealgate runs by default)")
    args = parser.parse_args()
    payloads = [os.urandom(args.size) for _ in range(args.messages)]

    with tempfile.TemporaryDirectory(dir=Path(__file__).parent.parent) as scratch:
        home = Path(scratch) / "home"
        try:
            cli_main(["--home", str(home), "init"])
        except SystemExit as exit_:
            assert not exit_.code
        environ = {**os.environ, "SEALGATE_VAULT__DURABLE": str(args.durable).lower()}
        vault = Vault.open(config.load(home, environ))
        raw_before = raw_aead(payloads)
        stored, opened = vault_round_trip(vault, payloads)
        raw_after = raw_aead(payloads)
        vault.close()

    raw = min(raw_before, raw_after)
    total = stored + opened
    megabytes = args.messages * args.size / 1e6
    print(f"messages: {args.messages} x {args.size} bytes, SQLite, durable={args.durable}")
    print(f"raw AES-256-GCM seal+open:   {raw:8.3f} s  ({2 * megabytes / raw:7.1f} MB/s)")
    print(f"vault deposit (seal+store):  {stored:8.3f} s  ({stored / args.messages * 1e6:7.0f} us"
          " per message)")
    print(f"vault open:                  {opened:8.3f} s  ({opened / args.messages * 1e6:7.0f} us"
          " per message)")
    print(f"vault vs raw AEAD:           {raw / total:8.3f}")
    print(json.dumps({
        "messages": args.messages, "bytes_per_message": args.size, "durable": args.durable,
        "raw_aead_s": round(raw, 4), "vault_store_s": round(stored, 4),
        "vault_open_s": round(opened, 4), "vs_raw_aead": round(raw / total, 4),
    }))


if __name__ == "__main__":
    main()
