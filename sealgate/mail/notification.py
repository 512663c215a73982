"""The secure-message notification a recipient gets instead of the content: a text and an
HTML alternative with the portal link and the organisation's branding. Pure."""

from __future__ import annotations

import quopri
import re
import secrets
from dataclasses import dataclass, replace
from html import escape
from urllib.parse import urlsplit

NOTIFICATION_ID_HEADER = "X-Sealgate-Message-Id"


@dataclass(frozen=True)
class Branding:
    organisation: str
    footer: str = ""
    disclaimer: str = ""
    colour: str = "#1f4e79"
    logo_url: str = ""  # absolute URL of the logo image, shown in the header when set
    support: str = ""  # who to ask for help: an address, a telephone number or a URL


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
        "",
        "Is this message genuine?",
        *_genuine(branding, sender_name, link),
    ]
    return text_frame(branding, "\n".join(lines))


def _genuine(branding: Branding, sender_name: str, link: str) -> list[str]:
    """How a careful recipient checks the notification before following its link: the one
    host it links to, what is never asked, and whom to ask. (The HTML part says the same.)"""
    host = urlsplit(link).hostname or ""
    return [
        f"- The link opens {host}, {branding.organisation}'s secure message portal, and no "
        "other site. Check the address bar before you sign in.",
        f"- The message stays on {host}; this email only tells you it is there. Nothing is "
        "attached, and nothing needs to be installed.",
        "- The portal never asks for the password of your own mailbox, and nobody will ask "
        "you for a code it sends you.",
        f"- Not expecting a message from {sender_name}? Ask them, or "
        + (f"ask for help: {branding.support}." if branding.support
           else f"contact {branding.organisation}, before you open the link."),
    ]


def _html(branding: Branding, sender_name: str, subject: str, link: str) -> str:
    """The organisation's name and colour head the notification, never a remote logo: a
    short HTML part with an image is what spam filters score as image spam (SpamAssassin's
    HTML_IMAGE_ONLY_* rules, 1.2 to 2.8 points below 3200 bytes of HTML), and recipients'
    mail clients block remote images by default anyway. The portal shows the logo."""
    branding = replace(branding, logo_url="")
    parts = [
        f"<p style=\"font-size:16px\"><strong>{escape(sender_name)}</strong> has sent you a "
        "secure message.</p>",
    ]
    if subject:
        parts.append(f"<p style=\"color:#555\">Subject: {escape(subject)}</p>")
    parts += [
        html_button(branding, "Read the secure message", link),
        "<p style=\"color:#555;font-size:13px\">You may be asked to confirm who you are. "
        "We will never ask for your email password.</p>",
        html_link_text(link),
        "<p style=\"color:#1b1b1b;font-size:14px;margin:24px 0 8px\"><strong>Is this message "
        "genuine?</strong></p>",
        "<ul style=\"color:#555;font-size:13px;padding-left:20px;margin:0\">",
        *(f"<li style=\"margin:0 0 6px\">{escape(line.removeprefix('- '))}</li>"
          for line in _genuine(branding, sender_name, link)),
        "</ul>",
    ]
    return html_frame(branding, "\n".join(parts))


# The branded frame, shared with the server's own notices (sealgate.mail.notices).

def text_frame(branding: Branding, body: str) -> str:
    """The plain-text body followed by the organisation's footer, support contact and
    disclaimer. Line ends are "\n"; the text ends with one."""
    lines = [body.rstrip("\n")]
    footer = [text for text in (branding.footer,
                                f"Need help? {branding.support}" if branding.support else "")
              if text]
    if footer:
        lines += ["", "--", *footer]
    if branding.disclaimer:
        lines += ["", branding.disclaimer]
    return "\n".join(lines) + "\n"


def html_frame(branding: Branding, content: str) -> str:
    """A whole HTML document: coloured header with the logo or the organisation's name, a
    white card holding content (trusted HTML: escape every value in it), and a footer with
    the footer text, the support contact and the disclaimer."""
    colour = _colour(branding)
    organisation = escape(branding.organisation)
    if _is_web_url(branding.logo_url):
        header = (f"<img src=\"{escape(branding.logo_url, quote=True)}\" alt=\"{organisation}\" "
                  "height=\"40\" style=\"display:block;max-height:40px;max-width:320px;"
                  "border:0;color:#ffffff\">")
    else:
        header = organisation
    parts = [
        "<!doctype html><html><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"></head>"
        "<body style=\"margin:0;padding:0;background:#f4f5f7;"
        "font-family:Segoe UI,Helvetica,Arial,sans-serif;color:#1b1b1b\">",
        "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\">"
        "<tr><td align=\"center\" style=\"padding:24px\">",
        "<table role=\"presentation\" width=\"560\" cellpadding=\"0\" cellspacing=\"0\" "
        "style=\"max-width:560px;background:#ffffff;border-radius:6px\">",
        f"<tr><td style=\"background:{colour};color:#ffffff;padding:16px 24px;font-size:18px\">"
        f"{header}</td></tr>",
        "<tr><td style=\"padding:24px\">",
        content,
        "</td></tr>",
    ]
    footer = [f"<p>{escape(branding.footer)}</p>" if branding.footer else "",
              f"<p>Need help? {_support_html(branding.support)}</p>" if branding.support else "",
              f"<p>{escape(branding.disclaimer)}</p>" if branding.disclaimer else ""]
    if any(footer):
        parts.append("<tr><td style=\"padding:16px 24px;color:#888;font-size:12px;"
                     f"border-top:1px solid #eee\">{' '.join(p for p in footer if p)}</td></tr>")
    parts.append("</table></td></tr></table></body></html>")
    return "\n".join(parts)


def html_button(branding: Branding, label: str, link: str) -> str:
    """A call-to-action link styled as a button in the organisation's colour."""
    colour = _colour(branding)
    return (f"<p style=\"margin:28px 0\"><a href=\"{escape(link, quote=True)}\" "
            f"style=\"background:{colour};color:#ffffff;padding:12px 22px;border-radius:4px;"
            f"text-decoration:none;font-weight:600\">{escape(label)}</a></p>")


def html_link_text(link: str) -> str:
    """The link written out, for mail clients that do not show the button."""
    return f"<p style=\"color:#888;font-size:12px;word-break:break-all\">{escape(link)}</p>"


_COLOUR = re.compile(r"#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,30}")
_ADDRESS = re.compile(r"[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+")


def _colour(branding: Branding) -> str:
    """The configured colour when it is a plain CSS colour (it goes into style attributes)."""
    return branding.colour if _COLOUR.fullmatch(branding.colour) else Branding.colour


def _is_web_url(url: str) -> bool:
    return url.lower().startswith(("https://", "http://")) and not any(
        c.isspace() for c in url)


def _support_html(support: str) -> str:
    if _ADDRESS.fullmatch(support):
        return f"<a href=\"mailto:{escape(support, quote=True)}\">{escape(support)}</a>"
    if _is_web_url(support):
        return f"<a href=\"{escape(support, quote=True)}\">{escape(support)}</a>"
    return escape(support)
