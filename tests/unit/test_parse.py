from __future__ import annotations

from email.message import EmailMessage

import pytest

from sealgate.mail.parse import MimeError, parse


def test_bodies_attachments_and_inline_images() -> None:
    message = EmailMessage()
    message["From"] = "Dr Who <who@example.org>"
    message["Subject"] = "Résultats"
    message.set_content("plain text")
    message.add_alternative('<p>html <img src="cid:logo1"></p>', subtype="html")
    message.get_payload()[1].add_related(b"\x89PNG", maintype="image", subtype="png",  # type: ignore[index]
                                         cid="<logo1>")
    message.add_attachment(b"%PDF-1.7", maintype="application", subtype="pdf",
                           filename="résultats.pdf")
    parsed = parse(message.as_bytes())
    assert parsed.subject == "Résultats" and parsed.sender_name == "Dr Who"
    assert parsed.text == "plain text\n"
    assert parsed.html is not None and "cid:logo1" in parsed.html
    by_type = {a.content_type: a for a in parsed.attachments}
    assert by_type["application/pdf"].filename == "résultats.pdf"
    assert by_type["application/pdf"].data == b"%PDF-1.7"
    assert by_type["image/png"].content_id == "logo1"


def test_a_multipart_without_its_boundary_is_refused() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\nno boundary anywhere\r\n"
    with pytest.raises(MimeError, match="no valid boundary"):
        parse(raw)


def test_nesting_is_bounded() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for depth in range(40):
        raw += (f"--b{depth}\r\nContent-Type: multipart/mixed; "
                f"boundary=b{depth + 1}\r\n\r\n").encode()
    with pytest.raises(MimeError, match="nested"):
        parse(raw)


def test_unknown_charset_still_yields_text() -> None:
    raw = (b"Content-Type: text/plain; charset=x-no-such-charset\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\nhello \xe9\r\n")
    parsed = parse(raw)
    assert parsed.text is not None and parsed.text.startswith("hello")
