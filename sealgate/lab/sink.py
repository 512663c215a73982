"""An SMTP server on loopback that stands in for every recipient's mail server: it accepts
everything and records each delivery exactly as it arrived, so a test can see what a
recipient would get (envelope and raw bytes, after Postfix and the milter are done)."""

from __future__ import annotations

import asyncio
import itertools
import os
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

SINK_HOSTNAME = "sink.sealgate.test"  # must differ from Postfix's myhostname (loop detection)
DATA_SIZE_LIMIT = 64 * 1024 * 1024  # above the lab Postfix's message_size_limit plus headers


@dataclass(frozen=True)
class Delivered:
    """One message as the sink received it; `mail_from` is "" for the null sender."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: str = ""  # the TLS version the client used after STARTTLS, "" without TLS


class _Controller(Controller):
    """Binds port 0 as asked and learns the port the kernel chose before the base class
    probes the server (it would otherwise try to connect to port 0)."""

    def _trigger_server(self) -> None:
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.lower() in self._sink.refuse:
            return "550 5.1.1 sink refuses this recipient"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content
        if isinstance(raw, str):  # only when decode_data is on, which the sink never sets
            raw = raw.encode("utf-8", "surrogateescape")
        # aiosmtpd strips the angle brackets except from the null sender (bounces).
        mail_from = "" if envelope.mail_from in (None, "<>") else envelope.mail_from
        ssl_object = session.ssl.get("ssl_object") if session.ssl else None
        version = ssl_object.version() if ssl_object is not None else ""
        message = Delivered(mail_from, tuple(envelope.rcpt_tos), bytes(raw), version or "")
        try:
            number = self._sink._record(message)
        except OSError as error:
            # A temporary failure makes Postfix keep the message and retry: nothing is lost.
            return f"451 4.3.0 sink cannot store the message: {error}"
        return f"250 2.0.0 Ok: delivered to sink as #{number}"


class SmtpSink:
    """Accepts any sender and recipient on 127.0.0.1 and keeps every message in memory
    (and, with `maildir`, as one .eml file each, mode 0600, for a person to look at)."""

    def __init__(self, port: int = 0, maildir: Path | None = None,
                 refuse: frozenset[str] = frozenset(), *, address: str = "127.0.0.1",
                 tls_context: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.address = address  # another 127.0.0.x: a second mail server of its own
        self.tls_context = tls_context  # offers STARTTLS with it
        self.maildir = maildir
        self.refuse = refuse  # recipients answered 550, as a mail server that has no such box
        self._messages: list[Delivered] = []
        self._changed = threading.Condition()
        self._counter = itertools.count(1)
        self._controller: _Controller | None = None

    def start(self) -> None:
        if self._controller is not None:
            return
        if self.maildir is not None:
            self.maildir.mkdir(mode=0o700, parents=True, exist_ok=True)
        controller = _Controller(
            _Handler(self), hostname=self.address, port=self.port,
            tls_context=self.tls_context, require_starttls=False,
            server_hostname=SINK_HOSTNAME, ident="Sealgate lab sink",
            decode_data=False, enable_SMTPUTF8=True, data_size_limit=DATA_SIZE_LIMIT,
            ready_timeout=10.0)
        controller.start()
        self._controller = controller
        self.port = controller.port

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    @property
    def messages(self) -> list[Delivered]:
        """A copy, in arrival order: safe to read while Postfix keeps delivering."""
        with self._changed:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 30) -> list[Delivered]:
        """Every message so far, once at least `count` have arrived."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"the SMTP sink on 127.0.0.1:{self.port} received "
                        f"{len(self._messages)} of {count} expected messages "
                        f"within {timeout:g} s")
                self._changed.wait(remaining)
            return list(self._messages)

    def wait_for_recipients(self, addresses: Iterable[str],
                            timeout: float = 30) -> dict[str, Delivered]:
        """For each address, the first message that reached it, once all have one: the MTA
        may deliver several recipients in one transaction or in several."""
        wanted = set(addresses)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found: dict[str, Delivered] = {}
                for message in self._messages:
                    for address in message.rcpt_tos:
                        found.setdefault(address, message)
                if wanted <= set(found):
                    return {address: found[address] for address in wanted}
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"the SMTP sink on 127.0.0.1:{self.port} got nothing "
                                       f"for {sorted(wanted - set(found))} within {timeout:g} s")
                self._changed.wait(remaining)

    def clear(self) -> None:
        with self._changed:
            self._messages.clear()

    def _record(self, message: Delivered) -> int:
        """Called on the server's thread for each DATA; returns the delivery's number."""
        number = next(self._counter)
        if self.maildir is not None:
            self._write_eml(message, number)
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()
        return number

    def _write_eml(self, message: Delivered, number: int) -> None:
        """Names sort in arrival order; an existing file (another sink, same second) is
        never overwritten."""
        assert self.maildir is not None
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        for attempt in range(100):
            suffix = f"-{attempt}" if attempt else ""
            path = self.maildir / f"{stamp}-{number:06d}{suffix}.eml"
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            with os.fdopen(descriptor, "wb") as file:
                file.write(message.data)
            return
        raise FileExistsError(f"no free file name for message #{number} in {self.maildir}")
