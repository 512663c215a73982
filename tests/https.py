"""An HTTPS server on loopback for the fakes of outside services (MTA-STS policies, the
Microsoft identity platform, Graph, EWS): threads, a TLS handshake in the handler's thread
(so a client that stalls or refuses the certificate blocks nobody), and no error noise."""

from __future__ import annotations

import http.server
import socket
import ssl
from pathlib import Path
from typing import Any

from sealgate.lab import pki


def server_context(ca: pki.TestCa, folder: Path, name: str = "server") -> ssl.SSLContext:
    """A TLS server context for 127.0.0.1 (and localhost) with a certificate from `ca`; the
    chain and key are written to `folder` as NAME.pem and NAME.key."""
    key_pem, cert_pem = ca.issue_server("127.0.0.1", alt_names=("localhost",), key_type="ec")
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_bytes(cert_pem + ca.cert_pem)
    key_file.write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


def https_server(context: ssl.SSLContext,
                 handler: type[http.server.BaseHTTPRequestHandler],
                 address: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    """Bound to a free port on `address`; the caller runs `serve_forever` and shuts it down."""

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self) -> tuple[socket.socket, Any]:
            sock, client = self.socket.accept()
            return context.wrap_socket(sock, server_side=True,
                                       do_handshake_on_connect=False), client

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # clients that hang up or refuse the certificate are part of the tests

    return Server((address, 0), handler)
