"""Real documents with given text, made by the libraries that real senders' tools resemble
(fpdf2, python-docx, openpyxl, python-pptx, msoffcrypto-tool), for the DLP extraction
tests and benchmarks. Test/bench support only: these libraries are dev dependencies."""

from __future__ import annotations

import io
import struct
import time
import zipfile
import zlib

_PASSWORD = "sealgate-lab"  # noqa: S105 - a fixture password, printed in no real document


def pdf(pages: list[str], *, user_password: str | None = None) -> bytes:
    """A text PDF, one string a page (core Helvetica, so the text must be Latin-1). With
    `user_password`, the content is AES-128 encrypted and opening it needs the password."""
    from fpdf import FPDF
    from fpdf.enums import EncryptionMethod

    doc = FPDF(format="A4")
    doc.set_auto_page_break(False)  # one given string is one page, whatever its length
    doc.set_font("Helvetica", size=7)
    for text in pages:
        doc.add_page()
        doc.multi_cell(0, 3, text)
    if user_password is not None:
        doc.set_encryption(owner_password=_PASSWORD, user_password=user_password,
                           encryption_method=EncryptionMethod.AES_128)
    return bytes(doc.output())


def encrypted_pdf(text: str) -> bytes:
    """A one-page PDF that cannot be read without its password."""
    return pdf([text], user_password=_PASSWORD)


def docx(body: str, header: str = "", footer: str = "", comment: str = "") -> bytes:
    """A Word document: `body` paragraphs (one a line), an optional header and footer, and an
    optional review comment anchored on the first paragraph."""
    import docx as python_docx

    document = python_docx.Document()
    paragraphs = [document.add_paragraph(line) for line in body.split("\n")]
    section = document.sections[0]
    if header:
        section.header.paragraphs[0].text = header
    if footer:
        section.footer.paragraphs[0].text = footer
    if comment:
        document.add_comment(paragraphs[0].runs, text=comment, author="Lab", initials="L")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def xlsx(rows: list[list[object]], comment: str = "", sheet: str = "Sheet1") -> bytes:
    """An Excel workbook with `rows` on one sheet; values keep their type (a number stays a
    number cell). `comment` becomes a note on A1."""
    from openpyxl import Workbook
    from openpyxl.comments import Comment

    workbook = Workbook()
    worksheet = workbook.active
    assert worksheet is not None
    worksheet.title = sheet
    for row in rows:
        worksheet.append(row)
    if comment:
        worksheet["A1"].comment = Comment(comment, "Lab")
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def pptx(slides: list[str], notes: str = "") -> bytes:
    """A PowerPoint deck, one text box a slide; `notes` are the speaker notes of slide 1."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    blank = deck.slide_layouts[6]
    for number, text in enumerate(slides):
        slide = deck.slides.add_slide(blank)
        box = slide.shapes.add_textbox(Inches(1), Inches(1), Inches(8), Inches(4))
        box.text_frame.text = text
        if number == 0 and notes:
            notes_frame = slide.notes_slide.notes_text_frame
            assert notes_frame is not None
            notes_frame.text = notes
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def encrypted_ooxml(document: bytes) -> bytes:
    """`document` (a DOCX/XLSX/PPTX) password-protected the way Office does it: an OLE
    compound file holding EncryptionInfo and EncryptedPackage (ECMA-376 agile)."""
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(document)).encrypt(_PASSWORD, out)
    return out.getvalue()


def zip_of(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP archive of `members` (name → content)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


def zip_bomb(inflated_bytes: int = 1 << 30) -> bytes:
    """A one-member ZIP whose member inflates to `inflated_bytes` zeros (about 1000:1)."""
    chunk = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate, as ZIP stores it
    # A full flush byte-aligns and forgets the history, so this block can simply be
    # repeated: compressing once instead of a gigabyte keeps the fixture fast.
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    count = inflated_bytes // len(chunk)
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    payload = block * count + compressor.flush()  # the final, empty block
    return _zip_raw("zeros.bin", payload, crc, count * len(chunk), method=8, flags=0)


def slow_pdf(pages: int = 200, strings_per_page: int = 1000) -> bytes:
    """A small PDF (tens of KB) that keeps a reader busy for many seconds: every page draws
    one shared content stream of `strings_per_page` lines, so the work grows with pages
    while the file does not. Written by hand: the point is a page count fpdf2 would take
    as long to lay out."""
    show = b"(SSN 078-05-1120 card 4111 1111 1111 1111 and more words to fill the line) Tj"
    lines = [b"BT /F1 1 Tf 10 14000 Td", show]
    for index in range(1, strings_per_page):
        lines += [b"-13930 -1.2 Td" if index % 200 == 0 else b"70 0 Td", show]
    stream = zlib.compress(b"\n".join([*lines, b"ET"]), 9)
    kids = b" ".join(b"%d 0 R" % (5 + page) for page in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream"
               % (len(stream), stream)]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 14400 14400] "
                b"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>"] * pages
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def zip_with_encrypted_member(name: str, content: bytes) -> bytes:
    """A ZIP whose one member is encrypted with traditional PKWARE encryption (ZipCrypto),
    which `zipfile` can read with the password but cannot write, so it is built here."""
    crc = zlib.crc32(content)
    keys = _ZipCryptoKeys(_PASSWORD.encode())
    # 12-byte header: random-ish bytes, the last one the CRC's high byte (the password check)
    header = struct.pack("<Q", time.monotonic_ns())[:8] + b"\0\0\0" + bytes([crc >> 24])
    payload = keys.encrypt(header + content)
    return _zip_raw(name, payload, crc, len(content), method=0, flags=0x1)


def zip_password() -> str:
    """The password of every encrypted fixture here (for tests that prove they are real)."""
    return _PASSWORD


class _ZipCryptoKeys:
    """APPNOTE.TXT 6.1: the three-key stream cipher of traditional PKWARE encryption."""

    def __init__(self, password: bytes) -> None:
        self.keys = [0x12345678, 0x23456789, 0x34567890]
        for byte in password:
            self._update(byte)

    def _update(self, byte: int) -> None:
        k0, k1, k2 = self.keys
        k0 = zlib.crc32(bytes([byte]), k0 ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
        k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k2 = zlib.crc32(bytes([k1 >> 24]), k2 ^ 0xFFFFFFFF) ^ 0xFFFFFFFF
        self.keys = [k0, k1, k2]

    def encrypt(self, plain: bytes) -> bytes:
        out = bytearray()
        for byte in plain:
            temp = (self.keys[2] | 2) & 0xFFFF
            out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
            self._update(byte)
        return bytes(out)


def _zip_raw(name: str, payload: bytes, crc: int, size: int, *, method: int, flags: int) -> bytes:
    """A one-member ZIP written field by field (APPNOTE.TXT 4.3), for what zipfile won't
    write: encrypted members, or a member fed pre-compressed bytes."""
    encoded = name.encode()
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 0x21,
                        crc, len(payload), size, len(encoded), 0) + encoded
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, flags, method, 0, 0x21,
                          crc, len(payload), size, len(encoded), 0, 0, 0, 0, 0, 0) + encoded
    offset = len(local) + len(payload)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), offset, 0)
    return local + payload + central + end
