"""Vault throughput: seal+store and open of N messages of 20 KB on SQLite, against
AES-256-GCM alone on the same data in the same run.

    .venv/bin/python bench/vault.py [--messages 10000] [--size 20000] [--no-durable]

`vs_raw_aead` = raw cipher time / vault time (1.0 would mean the vault costs nothing beyond
the cipher), for the bulk path (`deposit_many` in batches) and, as `vs_raw_aead_single`, for
one deposit per transaction (the milter's path). Opening is per message in both. The raw
baseline does what the vault must do at the least: a fresh key per message, encrypt, then
decrypt. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
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


def message(payload: bytes) -> NewMessage:
    return NewMessage("sender@example.org", "Results", [NewRecipient("patient@example.net")],
                      [NewPart(PartKind.TEXT, payload, "text/plain")])


def store_one_by_one(vault: Vault, payloads: list[bytes]) -> tuple[float, list[uuid.UUID]]:
    """The milter's path: one deposit, one transaction, durable before the next."""
    started = time.perf_counter()
    ids = [vault.deposit(message(payload), "sender@example.org") for payload in payloads]
    return time.perf_counter() - started, ids


def store_in_batches(vault: Vault, payloads: list[bytes],
                     batch: int) -> tuple[float, list[uuid.UUID]]:
    """Bulk path: `deposit_many`, one blob file and one transaction per batch."""
    started = time.perf_counter()
    ids: list[uuid.UUID] = []
    for first in range(0, len(payloads), batch):
        ids += vault.deposit_many([message(p) for p in payloads[first:first + batch]],
                                  "sender@example.org")
    return time.perf_counter() - started, ids


def open_all(vault: Vault, ids: list[uuid.UUID], payloads: list[bytes]) -> float:
    """Each message looked up by id, its part read, authenticated and decrypted."""
    started = time.perf_counter()
    for message_id, payload in zip(ids, payloads, strict=True):
        (part,) = vault.parts(message_id)
        assert vault.read_part(part) == payload
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100, help="messages per deposit_many")
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
        batched_store, batched_ids = store_in_batches(vault, payloads, args.batch)
        batched_open = open_all(vault, batched_ids, payloads)
        single_store, single_ids = store_one_by_one(vault, payloads)
        single_open = open_all(vault, single_ids, payloads)
        raw_after = raw_aead(payloads)
        vault.close()

    raw = min(raw_before, raw_after)
    count = args.messages
    batched, single = batched_store + batched_open, single_store + single_open

    def per_message(seconds: float) -> str:
        return f"{seconds:8.3f} s  ({seconds / count * 1e6:7.0f} us per message)"

    print(f"messages: {count} x {args.size} bytes, SQLite, durable={args.durable}")
    print(f"raw AES-256-GCM seal+open:          {per_message(raw)}")
    print(f"vault deposit_many (batch {args.batch:4}):   {per_message(batched_store)}")
    print(f"vault open:                         {per_message(batched_open)}")
    print(f"vault deposit one at a time:        {per_message(single_store)}")
    print(f"vault open:                         {per_message(single_open)}")
    print(f"vault vs raw AEAD, batched:         {raw / batched:8.4f}")
    print(f"vault vs raw AEAD, one at a time:   {raw / single:8.4f}")
    print(json.dumps({
        "messages": count, "bytes_per_message": args.size, "durable": args.durable,
        "batch": args.batch, "raw_aead_s": round(raw, 4),
        "batched_store_s": round(batched_store, 4), "batched_open_s": round(batched_open, 4),
        "single_store_s": round(single_store, 4), "single_open_s": round(single_open, 4),
        "vs_raw_aead": round(raw / batched, 4), "vs_raw_aead_single": round(raw / single, 4),
    }))


if __name__ == "__main__":
    main()
