"""Attachment text extraction: planted strings are found wherever real tools put them, and
hostile input ends in a problem, promptly, never in an exception."""

from __future__ import annotations

import io
import os
import random
import re
import shutil
import threading
import zipfile

import pytest

from sealgate.dlp.extract import Extracted, ExtractLimits, Problem, extract
from sealgate.lab import documents

SSN = "078-05-1120"
CARD = "4111111111111111"
PLANT = f"SSN {SSN}"


def only(results: list[Extracted]) -> Extracted:
    assert len(results) == 1, results
    return results[0]


def text_of(result: Extracted) -> str:
    assert result.problem is None, (result.problem, result.detail)
    assert result.text is not None
    return result.text


def rezip(data: bytes, replace: dict[str, bytes]) -> bytes:
    """`data` (a ZIP) with some members' contents replaced."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    return documents.zip_of({**members, **replace})


@pytest.fixture(scope="session")
def bomb() -> bytes:
    return documents.zip_bomb()


# --- where text hides ----------------------------------------------------------------------

@pytest.mark.parametrize("where", ["body", "header", "footer", "comment"])
def test_docx_text_in_every_location(where: str) -> None:
    parts = {"body": "Quarterly report", "header": "", "footer": "", "comment": ""}
    parts[where] = (parts[where] + "\n" if where == "body" else "") + PLANT
    result = only(extract("report.docx", "", documents.docx(**parts)))
    assert result.part == "report.docx"
    assert PLANT in text_of(result)


def test_docx_paragraphs_and_tabs_are_separated() -> None:
    text = text_of(only(extract("r.docx", "", documents.docx("first\nsecond\tcell"))))
    assert "first\nsecond\tcell" in text


def test_xlsx_cell_as_text_as_number_and_comment() -> None:
    data = documents.xlsx([["Name", "SSN", "Card"], ["Ann", SSN, int(CARD)], ["half", 0.5]],
                          comment=f"note: {PLANT}", sheet="Payroll")
    text = text_of(only(extract("data.xlsx", "", data)))
    assert f"Ann\t{SSN}\t{CARD}" in text  # a row reads in order, tab-separated
    assert "note: " + PLANT in text
    assert "Payroll" in text
    assert "0.5" in text


def test_xlsx_number_written_with_an_exponent_reads_as_its_digits() -> None:
    """Excel writes big numbers as 4.111111111111111E+15; the digits must still appear."""
    data = documents.xlsx([[int(CARD), 12.0]])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml")
    assert f"<v>{CARD}</v>".encode() in sheet
    sheet = sheet.replace(f"<v>{CARD}</v>".encode(), b"<v>4.111111111111111E+15</v>")
    text = text_of(only(extract("x.xlsx", "", rezip(data, {"xl/worksheets/sheet1.xml": sheet}))))
    assert CARD in text
    assert "E+15" not in text
    assert "12.0" not in text and "12" in text


def test_xlsx_inline_string() -> None:
    data = documents.xlsx([["placeholder"]])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
    sheet = re.sub(r'<c r="A1"[^>]*>.*?</c>',
                   f'<c r="A1" t="inlineStr"><is><t>{PLANT}</t></is></c>', sheet)
    text = text_of(only(extract("x.xlsx", "", rezip(data, {"xl/worksheets/sheet1.xml":
                                                             sheet.encode()}))))
    assert PLANT in text and "placeholder" not in text


@pytest.mark.parametrize("where", ["slide", "notes"])
def test_pptx_slide_and_notes(where: str) -> None:
    slides = ["Welcome", PLANT if where == "slide" else "Agenda"]
    data = documents.pptx(slides, notes=PLANT if where == "notes" else "")
    text = text_of(only(extract("deck.pptx", "", data)))
    assert PLANT in text
    assert "Welcome" in text


def test_pdf_last_page_of_25() -> None:
    pages = [f"Page {number} of a long contract. " * 80 for number in range(1, 25)] + [PLANT]
    result = only(extract("doc.pdf", "application/pdf", documents.pdf(pages)))
    text = text_of(result)
    assert PLANT in text
    assert "Page 1 of" in text and "Page 24 of" in text


def test_pdf_is_sniffed_whatever_its_name_and_type() -> None:
    result = only(extract("scan.dat", "application/octet-stream", documents.pdf([PLANT])))
    assert PLANT in text_of(result)


@pytest.mark.parametrize(("encoding", "bom"), [
    ("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"),
    ("utf-16-be", b"\xfe\xff"), ("cp1252", b"")])
def test_csv_encodings(encoding: str, bom: bytes) -> None:
    content = f"name;ssn;note\nRené;{SSN};café €5\n"
    result = only(extract("export.csv", "text/csv", bom + content.encode(encoding)))
    assert text_of(result) == content


def test_text_by_content_type_and_by_look() -> None:
    assert PLANT in text_of(only(extract("noname", "text/plain", PLANT.encode())))
    assert PLANT in text_of(only(extract("query.sql", "application/octet-stream",
                                         f"-- {PLANT}\n".encode())))


def test_html_entities_scripts_and_blocks() -> None:
    html = ("<html><head><style>p { color: red }</style><script>var ssn = '999-99-9999';"
            "</script></head><body><p>SSN &#48;&#55;&#56;&#x2d;05&#8209;1120</p>"
            "<div>one</div><div>two</div><table><tr><td>a</td><td>b</td></tr></table>"
            "<p>&amp; caf&eacute;</p></body></html>")
    text = text_of(only(extract("page.htm", "", html.encode())))
    assert "SSN 078-05\u20111120" in text
    assert "999-99-9999" not in text and "color" not in text
    assert "one\n" in text and "\ntwo" in text
    assert "a\tb" in text.replace("\t\t", "\t")
    assert "& café" in text
    assert PLANT in text_of(only(extract("x", "text/html; charset=utf-8",
                                         f"<b>{PLANT}</b>".encode())))


def test_types_without_text() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    assert extract("logo.png", "image/png", png) == [Extracted("logo.png", None)]
    assert extract("x.bin", "application/octet-stream", bytes(range(256))) == [
        Extracted("x.bin", None)]


# --- archives ----------------------------------------------------------------------------

def test_zip_members_are_dispatched_with_their_paths() -> None:
    data = documents.zip_of({
        "inner/data.xlsx": documents.xlsx([[int(CARD)]]),
        "notes.txt": PLANT.encode(),
        "scan.pdf": documents.pdf([PLANT]),
        "logo.png": b"\x89PNG\r\n\x1a\n" + bytes(32),
        "folder/": b""})
    results = {result.part: result for result in extract("bundle.zip", "", data)}
    assert set(results) == {"bundle.zip/inner/data.xlsx", "bundle.zip/notes.txt",
                            "bundle.zip/scan.pdf", "bundle.zip/logo.png"}
    assert CARD in text_of(results["bundle.zip/inner/data.xlsx"])
    assert PLANT in text_of(results["bundle.zip/notes.txt"])
    assert PLANT in text_of(results["bundle.zip/scan.pdf"])
    assert results["bundle.zip/logo.png"] == Extracted("bundle.zip/logo.png", None)


def test_nested_zip_depth_two_is_read_and_three_is_a_limit() -> None:
    level2 = documents.zip_of({"deep.txt": PLANT.encode(),
                               "report.docx": documents.docx(PLANT),
                               "level3.zip": documents.zip_of({"deeper.txt": PLANT.encode()})})
    results = {r.part: r for r in extract("outer.zip", "", documents.zip_of({"l2.zip": level2}))}
    assert PLANT in text_of(results["outer.zip/l2.zip/deep.txt"])
    # a document is a file to its reader: read even at the deepest level
    assert PLANT in text_of(results["outer.zip/l2.zip/report.docx"])
    too_deep = results["outer.zip/l2.zip/level3.zip"]
    assert too_deep.problem is Problem.LIMIT and too_deep.text is None
    assert "outer.zip/l2.zip/level3.zip/deeper.txt" not in results


def test_zip_limits_can_be_tightened() -> None:
    data = documents.zip_of({"a.zip": documents.zip_of({"b.txt": PLANT.encode()})})
    assert only(extract("o.zip", "", data, ExtractLimits(max_depth=1))).problem is Problem.LIMIT


@pytest.mark.timeout(30)
def test_zip_bomb_by_ratio_is_a_prompt_limit(bomb: bytes) -> None:
    result = only(extract("bomb.zip", "application/zip", bomb))
    assert result.part == "bomb.zip/zeros.bin"
    assert result.problem is Problem.LIMIT
    assert "ratio" in result.detail


@pytest.mark.timeout(30)
def test_zip_bomb_by_volume_is_a_limit(bomb: bytes) -> None:
    results = extract("bomb.zip", "", bomb, ExtractLimits(max_ratio=10**6,
                                                         max_inflated_bytes=20 << 20))
    assert [(r.problem, r.part) for r in results] == [(Problem.LIMIT, "bomb.zip")]
    assert "inflates to more than" in results[0].detail


@pytest.mark.timeout(30)
@pytest.mark.parametrize("limits", [ExtractLimits(), ExtractLimits(max_depth=10),
                                    ExtractLimits(max_depth=10, max_ratio=10**9)],
                         ids=["depth", "ratio", "volume"])
def test_nested_bombs_42_style(bomb: bytes, limits: ExtractLimits) -> None:
    """8 bombs of 1 GiB, in 8 archives, in 8, in 8: 4 TiB from 8 KB. Whichever cap comes
    first (nesting, ratio, then total volume when the others are lifted) stops it."""
    level = documents.zip_of({f"{n}.zip": bomb for n in range(8)})
    for _ in range(3):
        level = documents.zip_of({f"{n}.zip": level for n in range(8)})
    results = extract("42.zip", "", level, limits)
    assert results and all(r.problem is Problem.LIMIT for r in results)
    assert all(r.text is None for r in results)


def test_small_highly_compressible_member_is_not_a_bomb() -> None:
    """Below the grace volume the ratio says nothing: 900 KB of blanks around an SSN."""
    content = " " * 450_000 + PLANT + " " * 450_000
    result = only(extract("a.zip", "", documents.zip_of({"blank.txt": content.encode()})))
    assert PLANT in text_of(result)


def test_too_many_members_is_a_limit_after_the_allowed_ones() -> None:
    data = documents.zip_of({f"m{n:03}.txt": f"{n} {PLANT}".encode() for n in range(600)})
    results = extract("many.zip", "", data)
    assert len(results) == 501
    assert all(PLANT in text_of(r) for r in results[:500])
    assert results[-1].part == "many.zip"
    assert results[-1].problem is Problem.LIMIT and "500" in results[-1].detail
    tight = extract("many.zip", "", data, ExtractLimits(max_members=3))
    assert [r.problem for r in tight] == [None, None, None, Problem.LIMIT]


def test_member_count_is_shared_with_nested_archives() -> None:
    inner = documents.zip_of({f"{n}.txt": b"x" for n in range(5)})
    data = documents.zip_of({"a.zip": inner, "b.zip": inner})
    results = extract("o.zip", "", data, ExtractLimits(max_members=8))
    assert results[-1].problem is Problem.LIMIT
    assert sum(r.problem is None for r in results) == 6  # 8 counted: a.zip, 5, b.zip, 1


def test_encrypted_zip_member_is_encrypted_and_others_are_read() -> None:
    encrypted = documents.zip_with_encrypted_member("secret.txt", PLANT.encode())
    with zipfile.ZipFile(io.BytesIO(encrypted)) as archive:  # the fixture is real ZipCrypto
        assert archive.read("secret.txt", pwd=documents.zip_password().encode()) == \
            PLANT.encode()
    assert only(extract("s.zip", "", encrypted)) == Extracted(
        "s.zip/secret.txt", None, Problem.ENCRYPTED, "password-protected archive member")
    outer = documents.zip_of({"s.zip": encrypted, "plain.txt": PLANT.encode()})
    results = {r.part: r for r in extract("o.zip", "", outer)}
    assert results["o.zip/s.zip/secret.txt"].problem is Problem.ENCRYPTED
    assert PLANT in text_of(results["o.zip/plain.txt"])


def test_damaged_member_is_unreadable_and_others_are_read() -> None:
    data = bytearray(documents.zip_of({"a.txt": PLANT.encode() * 50, "b.txt": PLANT.encode()},
                                      compression=zipfile.ZIP_DEFLATED))
    at = data.index(b"a.txt") + 5 + 10  # inside a.txt's compressed bytes
    data[at] ^= 0xFF
    results = {r.part: r for r in extract("d.zip", "", bytes(data))}
    assert results["d.zip/a.txt"].problem is Problem.UNREADABLE
    assert PLANT in text_of(results["d.zip/b.txt"])


@pytest.mark.timeout(30)
def test_deadline_covers_the_whole_attachment() -> None:
    slow = documents.slow_pdf()
    data = documents.zip_of({"1.pdf": slow, "2.pdf": slow, "3.txt": PLANT.encode()})
    results = extract("slow.zip", "", data, ExtractLimits(max_seconds=1))
    assert results[0].part == "slow.zip/1.pdf" and results[0].problem is Problem.LIMIT
    assert results[-1].part == "slow.zip" and results[-1].problem is Problem.LIMIT
    assert "slow.zip/3.txt" not in {r.part for r in results}


# --- OOXML and OLE ----------------------------------------------------------------------

def test_encrypted_ooxml_is_encrypted() -> None:
    data = documents.encrypted_ooxml(documents.docx(PLANT))
    assert data.startswith(b"\xd0\xcf\x11\xe0")
    assert only(extract("report.docx", "", data)) == Extracted(
        "report.docx", None, Problem.ENCRYPTED, "password-protected Office document")


def test_legacy_office_is_unreadable() -> None:
    # the same compound file with its stream renamed is no longer an encrypted package
    data = documents.encrypted_ooxml(documents.xlsx([[PLANT]]))
    renamed = data.replace("EncryptedPackage".encode("utf-16-le"),
                           "EncryptedPackagf".encode("utf-16-le"))
    assert renamed != data
    assert only(extract("old.xls", "", renamed)) == Extracted(
        "old.xls", None, Problem.UNREADABLE, "legacy Office format not supported")
    assert only(extract("old.doc", "application/msword", b"not even a compound file")) \
        .problem is Problem.UNREADABLE


def test_truncated_docx_is_unreadable() -> None:
    data = documents.docx(PLANT)
    result = only(extract("r.docx", "", data[: len(data) // 2]))
    assert result.problem is Problem.UNREADABLE and result.text is None


def test_damaged_docx_part_keeps_the_text_of_the_others() -> None:
    data = documents.docx("body", header=PLANT)
    broken = rezip(data, {"word/document.xml": b"<w:document><w:body"})
    result = only(extract("r.docx", "", broken))
    assert result.problem is Problem.UNREADABLE
    assert result.text is not None and PLANT in result.text


def test_xml_entity_bomb_is_refused() -> None:
    laughs = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "078-05-1120">'
              b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
              b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
              b'<w:document xmlns:w="urn:w"><w:body><w:p><w:r><w:t>&c;</w:t></w:r></w:p>'
              b'</w:body></w:document>')
    data = rezip(documents.docx("body"), {"word/document.xml": laughs})
    result = only(extract("r.docx", "", data))
    assert result.problem is Problem.UNREADABLE
    assert SSN not in (result.text or "")


def test_document_embedded_in_a_document_is_read() -> None:
    data = rezip(documents.docx("cover"),
                 {"word/embeddings/Microsoft_Excel_Worksheet.xlsx":
                  documents.xlsx([[int(CARD)]])})
    results = {r.part: r for r in extract("r.docx", "", data)}
    assert "cover" in text_of(results["r.docx"])
    assert CARD in text_of(results["r.docx/word/embeddings/Microsoft_Excel_Worksheet.xlsx"])


def test_ooxml_parts_count_against_the_caps() -> None:
    data = documents.docx("x" * 200_000)
    result = only(extract("r.docx", "", data, ExtractLimits(max_inflated_bytes=50_000)))
    assert result.problem is Problem.LIMIT


# --- PDF --------------------------------------------------------------------------------

def test_encrypted_pdf_is_encrypted() -> None:
    assert only(extract("locked.pdf", "application/pdf", documents.encrypted_pdf(PLANT))) == \
        Extracted("locked.pdf", None, Problem.ENCRYPTED, "password-protected PDF")


@pytest.mark.parametrize("cut", [0.5, 0.1])
def test_truncated_pdf_is_unreadable(cut: float) -> None:
    data = documents.pdf([PLANT] * 3)
    result = only(extract("t.pdf", "", data[: int(len(data) * cut)]))
    assert result.problem is Problem.UNREADABLE
    assert result.detail == "damaged or unsupported PDF"


@pytest.mark.timeout(30)
def test_pdf_that_takes_too_long_is_a_limit_with_partial_text() -> None:
    result = only(extract("slow.pdf", "", documents.slow_pdf(), ExtractLimits(pdf_seconds=1)))
    assert result.problem is Problem.LIMIT
    assert result.detail == "PDF took too long to read"
    assert result.text is not None and SSN in result.text  # what came out before the kill


@pytest.mark.timeout(30)
def test_pdf_over_the_memory_limit_is_a_limit() -> None:
    result = only(extract("big.pdf", "", documents.pdf([PLANT]),
                          ExtractLimits(pdf_memory_bytes=8 << 20)))
    assert result == Extracted("big.pdf", None, Problem.LIMIT,
                               "PDF needs more memory than allowed")


def test_pdf_text_over_the_volume_cap_is_a_limit() -> None:
    result = only(extract("d.pdf", "", documents.pdf([PLANT * 100] * 5),
                          ExtractLimits(max_inflated_bytes=2000)))
    assert result.problem is Problem.LIMIT
    assert result.text is not None and len(result.text) <= 2000


def test_missing_pdftotext_is_a_clear_unreadable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    result = only(extract("d.pdf", "", documents.pdf([PLANT])))
    assert result.problem is Problem.UNREADABLE and "poppler-utils" in result.detail


def test_concurrent_pdf_extraction() -> None:
    """The milter is threaded: parallel calls each get their own document's text."""
    failures: list[str] = []

    def work(number: int) -> None:
        for _ in range(3):
            text = only(extract("d.pdf", "", documents.pdf([f"doc {number} {PLANT}"]))).text
            if f"doc {number} {PLANT}" not in (text or ""):
                failures.append(f"{number}: {text!r}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# --- anything at all ----------------------------------------------------------------------

NAMES = ["x.pdf", "x.docx", "x.xlsx", "x.pptx", "x.zip", "x.doc", "x.html", "x.csv", "x.bin"]


@pytest.mark.timeout(120)
def test_random_and_mutated_bytes_never_raise() -> None:
    rng = random.Random(1120)
    seeds = [documents.pdf([PLANT]), documents.docx(PLANT, header="h"),
             documents.xlsx([[PLANT, 1]]), documents.pptx([PLANT]),
             documents.zip_of({"a.txt": PLANT.encode(), "b.zip": documents.zip_of({"c": b"d"})}),
             documents.encrypted_ooxml(documents.docx(PLANT))]
    samples = [os.urandom(n) for n in (0, 1, 7, 512, 4096)]
    for seed in seeds:
        for _ in range(8):
            mutated = bytearray(seed)
            for _ in range(rng.randint(1, 20)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            samples.append(bytes(mutated))
        samples.append(seed[: rng.randrange(len(seed))])
    magics = [b"%PDF-1.7\n", b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"]
    samples += [magic + os.urandom(2000) for magic in magics]
    for data in samples:
        for name in rng.sample(NAMES, 3):
            results = extract(name, "application/octet-stream", data)
            assert results
            for result in results:
                assert isinstance(result, Extracted)
                assert result.part.startswith(name)
                assert len(result.detail) < 80 and "Traceback" not in result.detail
                if result.problem is None and result.text is None:
                    continue
                assert result.problem is None or isinstance(result.problem, Problem)
