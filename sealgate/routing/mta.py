"""How Postfix enforces verified TLS for the copies Sealgate routes that way. Pure: the
configuration as text, used by the deploy documentation's generator, the lab and the tests.

The mechanism:

- A copy for verified-TLS recipients is re-injected (like the S/MIME and PGP copies) with a
  `X-Sealgate-Delivery` header naming the level: `verified-tls` (a certificate valid for the
  MX host's name, from a trusted CA) or `dane` (DANE TLSA under DNSSEC).
- The re-injection listener hands its mail to a cleanup service of its own whose
  `header_checks` turn that header into `FILTER sealgate-tls:` or `FILTER sealgate-dane:`.
  The empty next hop keeps the recipient's own (transport_maps, relayhost, MX), and only the
  re-injection listener honours the header: a message arriving from outside cannot choose
  its transport.
- Those two transports are the smtp client with `smtp_tls_security_level = verify` or
  `dane-only`: a server that cannot prove itself gets nothing, never clear text.
- Their `smtp_delivery_status_filter` turns every temporary failure into a permanent one
  marked "sealgate-retry". The copy then comes back at once as a delivery status
  notification to Sealgate's return address (the milter takes those), and Sealgate, which
  keeps the sealed content, retries and, after `routing.tls_fallback_minutes`, falls back to
  the portal. The MTA's queue never holds a stale copy that could arrive after the portal
  notification.
"""

from __future__ import annotations

from collections.abc import Sequence

DELIVERY_HEADER = "X-Sealgate-Delivery"
LEVEL_VERIFY = "verified-tls"
LEVEL_DANE = "dane"
TRANSPORTS = {LEVEL_VERIFY: "sealgate-tls", LEVEL_DANE: "sealgate-dane"}
SECURITY_LEVELS = {LEVEL_VERIFY: "verify", LEVEL_DANE: "dane-only"}
CLEANUP_SERVICE = "sealgate-cleanup"
RETRY_MARK = "sealgate-retry"  # in the text of a temporary failure made permanent


def header_checks() -> str:
    """The regexp table for the re-injection listener's cleanup service."""
    return "".join(
        f"/^{DELIVERY_HEADER}:[[:space:]]*{level}[[:space:]]*$/ FILTER {transport}:\n"
        for level, transport in TRANSPORTS.items())


def status_filter() -> str:
    """The regexp table for the verified-TLS transports' smtp_delivery_status_filter: a
    temporary failure (4.X.X) becomes permanent (5.X.X) with the retry mark, so the copy
    comes back to Sealgate instead of waiting in the queue."""
    return f"/^4(\\.[0-9]+\\.[0-9]+) (.*)$/ 5$1 {RETRY_MARK}: $2\n"


def master_cf(header_checks_table: str, status_filter_table: str,
              extra_smtp_options: Sequence[str] = ()) -> list[str]:
    """The services to add to master.cf: the cleanup service of the re-injection listener
    and the two verified-TLS transports. Tables are `type:path` (regexp:/etc/postfix/...)."""
    row = "{:<17} {:<5} {:<3} {:<3} {:<3} {:<3} {:<3} {}"
    lines = [row.format(CLEANUP_SERVICE, "unix", "n", "-", "n", "-", "0", "cleanup"),
             f"  -o header_checks={header_checks_table}"]
    for level, transport in TRANSPORTS.items():
        lines += [row.format(transport, "unix", "-", "-", "n", "-", "-", "smtp"),
                  f"  -o syslog_name=postfix/{transport}",
                  f"  -o smtp_tls_security_level={SECURITY_LEVELS[level]}",
                  "  -o smtp_tls_mandatory_protocols=>=TLSv1.2",
                  "  -o smtp_tls_loglevel=1",
                  f"  -o smtp_delivery_status_filter={status_filter_table}",
                  *(f"  -o {option}" for option in extra_smtp_options)]
    return lines


def reinject_options() -> list[str]:
    """Options for the re-injection listener (its smtpd line in master.cf)."""
    return [f"-o cleanup_service_name={CLEANUP_SERVICE}"]


def main_cf() -> dict[str, str]:
    """main.cf settings: delivery status notifications Postfix writes itself go through the
    milter too (so the milter hands Sealgate the ones for its return address)."""
    return {"internal_mail_filter_classes": "bounce"}
