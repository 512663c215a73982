"""The secure-message notification a recipient gets instead of the content: a text and an
HTML alternative with the portal link and the organisation's branding. Pure."""

from __future__ import annotations

import quopri
import secrets
from dataclasses import dataclass
from html import escape

NOTIFICATION_ID_HEADER = "X-Sealgate-Message-Id"


@dataclass(frozen=True)
class Branding:
    organisation: str
    footer: str = ""
    disclaimer: str = ""
    colour: str = "#1f4e79"


@dataclass(frozen=True)
class Notification:
    content_type: str  # the Content-Type header value for the new body
    body: bytes  # MIME body, CRLF line ends


def build(branding: Branding, sender_name: str, subject: str, link: str) -> Notification:
    """multipart/alternative, both parts UTF-8 quoted-printable (7-bit safe everywhere).
    Assembled directly: the email package's generator costs more than the rest of a
    deposit's bookkeeping, and this structure never varies."""
    boundary = f"=_sealgate_{secrets.token_hex(12)}"
    parts = [_part("text/plain", _text(branding, sender_name, subject, link), boundary),
             _part("text/html", _html(branding, sender_name, subject, link), boundary)]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode("ascii")
    return Notification(content_type=f'multipart/alternative; boundary="{boundary}"',
                        body=body)


def _part(content_type: str, text: str, boundary: str) -> bytes:
    encoded = quopri.encodestring(text.replace("\r\n", "\n").encode("utf-8"))
    return (f"--{boundary}\r\nContent-Type: {content_type}; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode("ascii") \
        + encoded.replace(b"\n", b"\r\n") + b"\r\n"


def _text(branding: Branding, sender_name: str, subject: str, link: str) -> str:
    lines = [
        f"{sender_name} has sent you a secure message through {branding.organisation}.",
        "",
        f"Subject: {subject}" if subject else "",
        "",
        "Read it here:",
        link,
        "",
        "You may be asked to confirm who you are. We will never ask for your email password.",
    ]
    if branding.footer:
        lines += ["", "--", branding.footer]
    if branding.disclaimer:
        lines += ["", branding.disclaimer]
    return "\n".join(lines) + "\n"


def _html(branding: Branding, sender_name: str, subject: str, link: str) -> str:
    colour = escape(branding.colour)
    parts = [
        "<!doctype html><html><body style=\"margin:0;padding:0;background:#f4f5f7;"
        "font-family:Segoe UI,Helvetica,Arial,sans-serif;color:#1b1b1b\">",
        "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\">"
        "<tr><td align=\"center\" style=\"padding:24px\">",
        "<table role=\"presentation\" width=\"560\" cellpadding=\"0\" cellspacing=\"0\" "
        "style=\"max-width:560px;background:#ffffff;border-radius:6px\">",
        f"<tr><td style=\"background:{colour};color:#ffffff;padding:16px 24px;font-size:18px\">"
        f"{escape(branding.organisation)}</td></tr>",
        "<tr><td style=\"padding:24px\">",
        f"<p style=\"font-size:16px\"><strong>{escape(sender_name)}</strong> has sent you a "
        "secure message.</p>",
    ]
    if subject:
        parts.append(f"<p style=\"color:#555\">Subject: {escape(subject)}</p>")
    parts += [
        f"<p style=\"margin:28px 0\"><a href=\"{escape(link, quote=True)}\" "
        f"style=\"background:{colour};color:#ffffff;padding:12px 22px;border-radius:4px;"
        "text-decoration:none;font-weight:600\">Read the secure message</a></p>",
        "<p style=\"color:#555;font-size:13px\">You may be asked to confirm who you are. "
        "We will never ask for your email password.</p>",
        f"<p style=\"color:#888;font-size:12px;word-break:break-all\">{escape(link)}</p>",
        "</td></tr>",
    ]
    footer = " ".join(f"<p>{escape(text)}</p>" for text in (branding.footer, branding.disclaimer)
                      if text)
    if footer:
        parts.append(f"<tr><td style=\"padding:16px 24px;color:#888;font-size:12px;"
                     f"border-top:1px solid #eee\">{footer}</td></tr>")
    parts.append("</table></td></tr></table></body></html>")
    return "\n".join(parts)
