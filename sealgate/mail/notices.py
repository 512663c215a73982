"""The mail the Sealgate server itself sends: sign-in codes, address confirmation, password
reset, sent and opened receipts, a portal recipient's secure reply, and the DLP notices (a
held message's decision link to its sender, a policy report to the organisation). Pure
builders: values in, an EmailMessage (policy SMTP: CRLF, 7-bit safe) out, for the caller to
send with smtplib.

Notices are multipart/alternative (plain text and the branded HTML of
sealgate.mail.notification), marked Auto-Submitted (RFC 3834) so that autoresponders stay
quiet, and never ask for a password. Every value that can come from a user (names,
subjects, addresses shown in the text) is cleaned of control and line-break characters
before it reaches a header or a line of text, and HTML-escaped in the HTML.

Addresses that go into address headers must be real addresses: a value that is not one
raises ValueError (nothing else does)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from email.headerregistry import Address, AddressHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from html import escape

from sealgate.mail.message import domain_of
from sealgate.mail.notification import (
    Branding,
    html_button,
    html_frame,
    html_link_text,
    text_frame,
)

REPLY_HEADER = "X-Sealgate-Reply"
_SUBJECT_MAX = 200  # characters of a user's subject quoted in a notice
_NAME_MAX = 200
_LISTED_RECIPIENTS = 10
# Headers set raw (already folded by us) are emitted as they are: message identifiers must
# never be turned into encoded words, whatever their length. Bodies are 7-bit (quoted-
# printable or base64 when needed): no relay can need 8BITMIME for them.
_POLICY = SMTP.clone(refold_source="none", cte_type="7bit")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_MSG_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,250}>")  # printable ASCII but < and >
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_DOMAIN = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                     r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?|\[[0-9A-Fa-f:.IPv]{2,60}\]")
_HEADERS = HeaderRegistry()
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                           "\u2066\u2067\u2068\u2069")


def login_code(branding: Branding, *, from_address: str, to: str, code: str,
               minutes: int) -> EmailMessage:
    """The one-time code a recipient types to open a secure message."""
    organisation = clean(branding.organisation)
    code = clean(code)
    works = f"It works once, for {_count(minutes, 'minute')}."
    text = "\n".join([
        f"Your code to open your secure message is {code}.",
        works,
        "",
        "If you did not try to open a secure message, you can ignore this email: nobody can "
        "open your messages without the code.",
        "",
        f"Do not share this code. {organisation} will never ask you for it, or for your "
        "password, by email or telephone.",
    ])
    html = "\n".join([
        "<p style=\"font-size:16px\">Your code to open your secure message is:</p>",
        "<p style=\"font-size:32px;font-weight:700;letter-spacing:6px;margin:20px 0;"
        f"font-family:Consolas,Menlo,monospace\">{escape(code)}</p>",
        f"<p>{escape(works)}</p>",
        "<p style=\"color:#555;font-size:13px\">If you did not try to open a secure message, "
        "you can ignore this email: nobody can open your messages without the code.</p>",
        f"<p style=\"color:#555;font-size:13px\">Do not share this code. "
        f"{escape(organisation)} will never ask you for it, or for your password, by email "
        "or telephone.</p>",
    ])
    return _notice(branding, from_address, to, f"Your {organisation} secure message code",
                   text, html)


def verify_address(branding: Branding, *, from_address: str, to: str, link: str,
                   hours: int) -> EmailMessage:
    """Confirm the address of a newly registered account."""
    organisation, link = clean(branding.organisation), clean(link)
    works = f"The link works for {_count(hours, 'hour')}."
    ignore = ("If you did not create an account, you can ignore this email; "
              "nothing will be set up.")
    text = "\n".join([
        "Please confirm your email address to finish setting up your "
        f"{organisation} secure message account:",
        link,
        "",
        works,
        ignore,
    ])
    html = "\n".join([
        "<p style=\"font-size:16px\">Please confirm your email address to finish setting up "
        f"your {escape(organisation)} secure message account.</p>",
        html_button(branding, "Confirm my email address", link),
        f"<p style=\"color:#555;font-size:13px\">{escape(works)} {escape(ignore)}</p>",
        html_link_text(link),
    ])
    return _notice(branding, from_address, to,
                   f"Confirm your email address for {organisation} secure messages",
                   text, html)


def password_reset(branding: Branding, *, from_address: str, to: str, link: str,
                   minutes: int) -> EmailMessage:
    """A link to choose a new password. Says that two-step verification still applies."""
    organisation, link = clean(branding.organisation), clean(link)
    asked = (f"Someone, hopefully you, asked to reset the password of your {organisation} "
             "secure message account.")
    works = f"The link works once, for {_count(minutes, 'minute')}."
    only = ("This only resets your password: if you have turned on two-step verification, "
            "you will still need your authenticator app or one of your recovery codes to "
            "sign in.")
    ignore = "If you did not ask for this, you can ignore this email; your password stays as it is."
    text = "\n".join([asked, "", "To choose a new password, open this link:", link, "",
                      works, "", only, "", ignore])
    html = "\n".join([
        f"<p style=\"font-size:16px\">{escape(asked)}</p>",
        html_button(branding, "Choose a new password", link),
        f"<p>{escape(works)}</p>",
        f"<p>{escape(only)}</p>",
        f"<p style=\"color:#555;font-size:13px\">{escape(ignore)}</p>",
        html_link_text(link),
    ])
    return _notice(branding, from_address, to,
                   f"Reset your {organisation} secure message password", text, html)


def sent_securely(branding: Branding, *, from_address: str, to: str, subject: str,
                  recipients: Sequence[str], tracking_link: str) -> EmailMessage:
    """To the sender: the message went out securely, and where to follow it."""
    quoted, tracking_link = _quoted_subject(subject), clean(tracking_link)
    listed = _list([clean(r, _NAME_MAX) for r in recipients])
    sentence = f"Your message {quoted} was sent securely to {listed}."
    return _tracking_notice(branding, from_address, to, sentence, tracking_link,
                            f"Sent securely: {_short_subject(subject)}")


def read_receipt(branding: Branding, *, from_address: str, to: str, subject: str,
                 reader: str, opened_at: datetime, tracking_link: str) -> EmailMessage:
    """To the sender: a recipient opened the secure message."""
    tracking_link = clean(tracking_link)
    sentence = (f"{clean(reader, _NAME_MAX) or 'A recipient'} opened your secure message "
                f"{_quoted_subject(subject)} on {human_date(opened_at)}.")
    return _tracking_notice(branding, from_address, to, sentence, tracking_link,
                            f"Opened: {_short_subject(subject)}")


def not_delivered(branding: Branding, *, from_address: str, to: str, subject: str,
                  recipient: str, reason: str, tracking_link: str) -> EmailMessage:
    """To the sender: the recipient's server refused the message for good."""
    sentence = (f"Your message {_quoted_subject(subject)} could not be delivered to "
                f"{clean(recipient, _NAME_MAX)}: their mail server answered "
                f"\u201c{clean(reason, 300)}\u201d.")
    return _tracking_notice(branding, from_address, to, sentence, clean(tracking_link),
                            f"Not delivered: {_short_subject(subject)}")


def _tracking_notice(branding: Branding, from_address: str, to: str, sentence: str,
                     tracking_link: str, subject: str) -> EmailMessage:
    """A notice to the sender: one sentence, and the way to the tracking page."""
    action = "See who has opened it, or withdraw it"
    text = "\n".join([sentence, "", f"{action}:", tracking_link])
    html = "\n".join([
        f"<p style=\"font-size:16px\">{escape(sentence)}</p>",
        html_button(branding, action, tracking_link),
        html_link_text(tracking_link),
    ])
    return _notice(branding, from_address, to, subject, text, html)


def held(branding: Branding, *, from_address: str, to: str, subject: str,
         recipients: Sequence[str], found: Sequence[str], policies: Sequence[str],
         link: str, expires_at: datetime, reason: str | None = None) -> EmailMessage:
    """To the sender: a DLP policy held the message (or, with `reason`, there was no secure
    way to deliver it); one link to decide what happens to it. `found` is what was found,
    masked (see `found_items`)."""
    quoted, link = _quoted_subject(subject), clean(link)
    listed = _list([clean(r, _NAME_MAX) for r in recipients])
    if reason:
        sentence = f"Your message {quoted} to {listed} was held: {clean(reason, 500)}."
    else:
        sentence = (f"Your message {quoted} to {listed} was held: it contains "
                    f"{_list([clean(f, _NAME_MAX) for f in found], 'sensitive information')} "
                    f"({_policies(policies)}).")
    nobody = "Nobody has received it yet."
    choose = "Choose what happens to it"
    later = (f"If you do nothing, it will be discarded on {human_date(expires_at)}. Anyone "
             "with the link can decide: do not forward this email.")
    text = "\n".join([sentence, nobody, "", f"{choose}:", link, "", later])
    html = "\n".join([
        f"<p style=\"font-size:16px\">{escape(sentence)}</p>",
        f"<p>{escape(nobody)}</p>",
        html_button(branding, choose, link),
        f"<p style=\"color:#555;font-size:13px\">{escape(later)}</p>",
        html_link_text(link),
    ])
    return _notice(branding, from_address, to, f"Held: {_short_subject(subject)}", text, html)


_DONE = {
    "block": "refused: it was not sent",
    "reject": "refused: it was not sent",
    "quarantine": "held until its sender decides what happens to it",
    "hold": "held until its sender decides what happens to it",
    "encrypt": "sent securely",
    "protect": "sent securely",
    "notify": "delivered as it was",
    "pass": "delivered as it was",
}


def dlp_report(branding: Branding, *, from_address: str, to: str, sender: str,
               recipients: Sequence[str], subject: str, action: str,
               policies: Sequence[str], found: Sequence[str]) -> EmailMessage:
    """To the organisation's DLP address: what a policy found (masked) in whose message, and
    what was done with it."""
    sender = clean(sender, _NAME_MAX) or "an unknown sender"
    listed = _list([clean(r, _NAME_MAX) for r in recipients], "no recipients")
    done = _DONE.get(action, clean(action, 40) or "nothing")
    items = [clean(f, _NAME_MAX) for f in found] or ["(no details)"]
    facts = [("From", sender), ("To", listed), ("Subject", _quoted_subject(subject)),
             ("Matched", _policies(policies)), ("Outcome", done.capitalize())]
    text = "\n".join([
        f"A data-leak prevention policy matched a message from {sender}.", "",
        *[f"{name}: {value}" for name, value in facts], "", "Found (values masked):",
        *[f"- {item}" for item in items]])
    html = "\n".join([
        "<p style=\"font-size:16px\">A data-leak prevention policy matched a message from "
        f"<strong>{escape(sender)}</strong>.</p>",
        "<table role=\"presentation\" cellpadding=\"4\" cellspacing=\"0\">",
        *[f"<tr><td style=\"color:#555\">{escape(name)}</td><td>{escape(value)}</td></tr>"
          for name, value in facts],
        "</table>",
        "<p>Found (values masked):</p>",
        "<ul>", *[f"<li>{escape(item)}</li>" for item in items], "</ul>",
    ])
    return _notice(branding, from_address, to,
                   f"DLP report: {done.split(':')[0]}: {_short_subject(subject)}", text, html)


_WHY_UNREADABLE = {"encrypted": " because it is encrypted",
                   "unreadable": " because it cannot be read",
                   "limit": " because it is over a scanning limit"}


def found_items(findings: Sequence[Mapping[str, str]],
                unreadable: Sequence[Mapping[str, str]] = (), limit: int = 10) -> list[str]:
    """A DLP report's findings and unreadable parts as short phrases for a notice:
    "payment card number **** **** **** 1111", "x.pdf, which cannot be checked because it is
    encrypted". The values are the report's, already masked. Repeats are listed once; past
    `limit`, one phrase counts the rest."""
    items: list[str] = []
    for finding in findings:
        label = clean(finding.get("label") or finding.get("type", "").replace("_", " ").lower(),
                      80)
        items.append(" ".join(filter(None, [label, clean(finding.get("value", ""), 80)])))
    for part in unreadable:
        problem = clean(part.get("problem", ""), 40)
        why = _WHY_UNREADABLE.get(problem, f" ({problem})" if problem else "")
        items.append(f"{clean(part.get('part', ''), 80) or 'an attachment'}, which cannot be "
                     f"checked{why}")
    items = list(dict.fromkeys(item for item in items if item))
    if len(items) > limit:
        items = [*items[:limit - 1], f"{len(items) - limit + 1} more"]
    return items


def reply_message(*, from_address: str, from_name: str, to: Sequence[str], cc: Sequence[str],
                  subject: str, text: str, attachments: Sequence[tuple[str, str, bytes]],
                  in_reply_to: str | None, references: str | None, via_organisation: str,
                  message_id_domain: str | None = None) -> EmailMessage:
    """The secure reply a portal recipient wrote, for the original sender's mailbox: from the
    replier, threaded under the original (In-Reply-To, References), with its attachments.
    Not Auto-Submitted: a person wrote it. The Message-ID is on message_id_domain, by
    default the replier's domain."""
    if not to:
        raise ValueError("a reply needs at least one To address")
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = mailbox(from_address, from_name)
    msg["To"] = [mailbox(address) for address in to]
    if cc:
        msg["Cc"] = [mailbox(address) for address in cc]
    msg["Subject"] = _reply_subject(subject)
    msg["Date"] = datetime.now(UTC)
    msg["Message-ID"] = _message_id(message_id_domain or from_address)
    parent = _message_ids(in_reply_to or "")[:1]
    chain = [i for i in _message_ids(references or "") if i not in parent] + parent
    if len(chain) > 20:  # RFC 5322 3.6.4 allows trimming: the first, and the latest ones
        chain = [chain[0], *chain[-19:]]
    if parent:
        msg.set_raw("In-Reply-To", parent[0])
    if chain:
        msg.set_raw("References", "\r\n ".join(chain))
    msg[REPLY_HEADER] = "yes"
    body = _body_text(text).rstrip("\n")
    portal = f"{_possessive(clean(via_organisation))} secure message portal"
    footer = f"Sent securely through {portal}."
    msg.set_content(f"{body}\n\n-- \n{footer}\n" if body else f"{footer}\n")
    for filename, content_type, data in attachments:
        maintype, subtype = _attachment_type(content_type)
        msg.add_attachment(bytes(data), maintype=maintype, subtype=subtype,
                           filename=safe_filename(filename))
    return _tidy(msg)


# Shared pieces, public for the server's tests and other senders.

def clean(value: str, limit: int = 998) -> str:
    """One line of text, safe for a header or a line of a body: control characters, line and
    paragraph separators and bidirectional overrides become spaces, lone surrogates the
    replacement character, runs of white space one space; at most limit characters."""
    chars = []
    for char in str(value):
        category = unicodedata.category(char)
        if category == "Cs":
            chars.append("\ufffd")
        elif category in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS:
            chars.append(" ")
        else:
            chars.append(char)
    line = " ".join("".join(chars).split())
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


def mailbox(address: str, display_name: str = "") -> Address:
    """One mailbox for an address header. address: "user@example.org" or
    "Name <user@example.org>" (display_name, when given, wins). An internationalised domain is
    written in its ASCII (IDNA) form. ValueError when address is not one valid address."""
    try:
        header = _HEADERS("To", clean(address))
        if not isinstance(header, AddressHeader):
            raise TypeError("the registry gave no address header")
        parsed = header.addresses
        if header.defects or len(parsed) != 1 or header.groups[0].display_name is not None:
            raise ValueError("not exactly one mailbox")
        local, domain = parsed[0].username, parsed[0].domain
        if not domain.isascii():
            domain = domain.encode("idna").decode("ascii")
        if not (local and local.isascii() and _DOMAIN.fullmatch(domain)):
            raise ValueError("not a mailbox on a domain")
        name = clean(display_name, _NAME_MAX) or clean(parsed[0].display_name, _NAME_MAX)
        return Address(display_name=name, username=local, domain=domain)
    except Exception as error:  # the parser raises several kinds; all mean "not an address"
        raise ValueError(f"not a valid email address: {address!r}") from error


def safe_filename(filename: str) -> str:
    """A file name without directories, control characters or leading dots, at most 150
    characters (keeping the extension); "attachment" when nothing is left."""
    name = clean(re.split(r"[/\\]", str(filename))[-1]).strip(" .")
    if len(name) > 150:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 20:
            name = f"{stem[:149 - len(extension)].rstrip(' .')}.{extension}"
        else:
            name = name[:150].rstrip(" .")
    return name or "attachment"


def human_date(moment: datetime) -> str:
    """"14 March 2025 at 09:05 UTC" (a naive datetime is taken as UTC)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year} at {moment:%H:%M} UTC"


def _notice(branding: Branding, from_address: str, to: str, subject: str, text: str,
            html: str) -> EmailMessage:
    branding = replace(branding, organisation=clean(branding.organisation),
                       footer=_body_text(branding.footer).strip(),
                       disclaimer=_body_text(branding.disclaimer).strip(),
                       support=clean(branding.support), logo_url=clean(branding.logo_url))
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = mailbox(from_address, branding.organisation)
    msg["To"] = mailbox(to)
    msg["Subject"] = clean(subject)
    msg["Date"] = datetime.now(UTC)
    msg["Message-ID"] = _message_id(from_address)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"  # Exchange's equivalent
    msg.set_content(text_frame(branding, text))
    msg.add_alternative(html_frame(branding, html), subtype="html")
    return _tidy(msg)


def _tidy(msg: EmailMessage) -> EmailMessage:
    """Without the MIME-Version the email package repeats in every part (only the top
    level needs it)."""
    for part in msg.walk():
        if part is not msg:
            del part["MIME-Version"]
    return msg


def _message_id(address: str) -> str:
    """A fresh Message-ID on the domain of address (or on that domain itself)."""
    domain = domain_of(clean(address))
    try:
        domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        domain = ""
    if not _DOMAIN.fullmatch(domain) or domain.startswith("["):
        domain = "sealgate.invalid"
    return make_msgid(domain=domain)


def _message_ids(value: str) -> list[str]:
    """The message identifiers in an In-Reply-To or References value, in order, once each;
    bare identifiers (without angle brackets) are bracketed."""
    found = _MSG_ID.findall(value)
    if not found:
        found = [f"<{token}>" for token in value.split()
                 if "@" in token and _MSG_ID.fullmatch(f"<{token}>")]
    return list(dict.fromkeys(found))


def _reply_subject(subject: str) -> str:
    subject = clean(subject)
    return subject if re.match(r"re\s*:", subject, re.IGNORECASE) else f"Re: {subject}"


def _short_subject(subject: str) -> str:
    return clean(subject, _SUBJECT_MAX) or "(no subject)"


def _quoted_subject(subject: str) -> str:
    short = clean(subject, _SUBJECT_MAX)
    return f"“{short}”" if short else "(no subject)"


def _body_text(text: str) -> str:
    """The reply's text with "\n" line ends and no control characters but tabs."""
    text = str(text).replace("\r\n", "\n").replace("\r", "\n")
    return "".join(
        "\ufffd" if unicodedata.category(char) == "Cs"
        else char if char in "\n\t" or unicodedata.category(char) != "Cc" else ""
        for char in text)


def _attachment_type(content_type: str) -> tuple[str, str]:
    """The maintype and subtype, or application/octet-stream for anything that is not a
    plain leaf type (message/* and multipart/* cannot be carried as opaque bytes)."""
    value = str(content_type).split(";", 1)[0].strip().lower()
    if not _MIME_TYPE.fullmatch(value) or value.startswith(("message/", "multipart/")):
        return "application", "octet-stream"
    maintype, _, subtype = value.partition("/")
    return maintype, subtype


def _possessive(name: str) -> str:
    if not name:
        return "a"
    if name.endswith(("'s", "’s", "'", "’")):
        return name
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}" if number == 1 else f"{number} {unit}s"


def _policies(names: Sequence[str]) -> str:
    names = [clean(name, 100) for name in names if clean(name)]
    if not names:
        return "a data-leak prevention policy"
    return f"policy {names[0]}" if len(names) == 1 else f"policies {_list(names)}"


def _list(items: list[str], empty: str = "your recipients") -> str:
    items = [item for item in items if item]
    if not items:
        return empty
    if len(items) > _LISTED_RECIPIENTS:
        shown = items[:_LISTED_RECIPIENTS - 1]
        return f"{', '.join(shown)} and {len(items) - len(shown)} others"
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
