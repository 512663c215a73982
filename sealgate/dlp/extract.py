"""Attachment text extraction for the DLP detectors: bytes in, text out, per part.

Hostile input is the normal case here: every attachment comes from outside, so nothing in
this module raises on bad input, every container is read under caps that are counted as
the bytes come out (never trusted from headers), and PDF, the one format parsed by a large
native library, is read in a child process with memory, CPU and wall-clock limits.

PDF goes to poppler's `pdftotext` (Debian's poppler-utils), one process a document: it was
measured at about 20 ms for a 25-page text PDF including the isolation, against about 80 ms
for a fresh Python child running pypdfium2 and about 24 ms for a child forked from a warm
pypdfium2 worker, which would be one more long-lived process to look after.
"""

from __future__ import annotations

import codecs
import enum
import io
import logging
import math
import os
import re
import selectors
import shutil
import signal
import subprocess
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from html.parser import HTMLParser
from typing import NoReturn
from xml.etree.ElementTree import Element, ParseError

from defusedxml.ElementTree import iterparse

_log = logging.getLogger(__name__)


class Problem(enum.StrEnum):
    ENCRYPTED = "encrypted"
    UNREADABLE = "unreadable"  # corrupt, unparseable or unsupported
    LIMIT = "limit"  # a cap was exceeded; any text given is partial


@dataclass(frozen=True)
class Extracted:
    """The text of one part of an attachment. `text` None with no problem: a type that
    carries no text (image, audio, unknown binary). `detail` is short, for people, and never
    holds content."""

    part: str
    text: str | None
    problem: Problem | None = None
    detail: str = ""


@dataclass(frozen=True)
class ExtractLimits:
    """Caps for one top-level attachment (members of archives share them)."""

    max_members: int = 500
    max_inflated_bytes: int = 100 * 1024 * 1024
    max_ratio: int = 100  # inflated : compressed, per member
    max_depth: int = 2  # archives (OOXML documents included) within archives
    max_seconds: float = 10.0
    pdf_memory_bytes: int = 512 * 1024 * 1024
    pdf_seconds: float = 10.0


# A small member may legitimately compress far beyond max_ratio (a run of blanks, a
# repetitive XML part); the ratio only says "bomb" once there is real volume behind it.
_RATIO_GRACE_BYTES = 1024 * 1024
_CHUNK = 64 * 1024

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_ZIP_EXTENSIONS = {".zip", ".docx", ".docm", ".dotx", ".xlsx", ".xlsm", ".xltx", ".pptx",
                   ".pptm", ".potx", ".ppsx"}
_LEGACY_EXTENSIONS = {".doc", ".dot", ".xls", ".xlt", ".ppt", ".pps", ".msg"}
_TEXT_EXTENSIONS = {".txt", ".csv", ".tsv", ".log", ".json", ".xml"}
_HTML_EXTENSIONS = {".htm", ".html"}
_TEXT_TYPES = {"application/json", "application/xml", "application/csv"}
_HTML_TYPES = {"text/html", "application/xhtml+xml"}
_ZIP_TYPES = {"application/zip", "application/x-zip-compressed"}
_NO_TEXT_TYPES = ("image/", "audio/", "video/", "font/")
# Documents embedded in an OOXML document (an XLSX table pasted into a DOCX): read them.
_EMBEDDED_EXTENSIONS = _ZIP_EXTENSIONS - {".zip"} | _TEXT_EXTENSIONS | {".pdf"}


def extract(name: str, content_type: str, data: bytes,
            limits: ExtractLimits = ExtractLimits()) -> list[Extracted]:
    """The text of attachment `name` (and of every member of it, for archives), each part
    with the problem that kept it from being read in full, if any. Never raises on input."""
    return _Job(limits).dispatch(name, content_type, data, depth=0)


class _Limit(Exception):
    """A cap was exceeded for the part being read."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Job:
    """One top-level attachment: its limits and what is left of its shared budget."""

    def __init__(self, limits: ExtractLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.max_seconds
        self.member_count = 0
        self.inflated = 0
        # Set once a cap shared by the whole attachment is spent: every loop stops then.
        self.stopped = False

    def stop(self, detail: str) -> NoReturn:
        self.stopped = True
        raise _Limit(detail)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check_time(self) -> None:
        if self.stopped or self.remaining() <= 0:
            self.stop(f"took longer than {self.limits.max_seconds:g} seconds")

    def count_member(self) -> None:
        self.member_count += 1
        if self.member_count > self.limits.max_members:
            self.stop(f"more than {self.limits.max_members} archive members")

    def count_inflated(self, size: int) -> None:
        self.inflated += size
        if self.inflated > self.limits.max_inflated_bytes:
            self.stop(f"inflates to more than {self.limits.max_inflated_bytes} bytes")

    # --- dispatch ----------------------------------------------------------------------

    def dispatch(self, part: str, content_type: str, data: bytes, depth: int) -> list[Extracted]:
        kind = _kind(part, content_type, data)
        try:
            if kind == "pdf":
                return [_pdf(part, data, self)]
            if kind == "zip":
                return self.archive(part, data, depth)
            if kind == "ole":
                return [_ole(part, data)]
            if kind == "html":
                return [Extracted(part, _html_text(_decode(data), self).strip())]
            if kind == "text":
                return [Extracted(part, _decode(data))]
            return [Extracted(part, None)]
        except _Limit as exc:
            return [Extracted(part, None, Problem.LIMIT, exc.detail)]
        except Exception as exc:  # hostile input must not take the caller down
            _log.warning("reading a %s part failed: %s", kind, type(exc).__name__)
            return [Extracted(part, None, Problem.UNREADABLE, f"could not read this {kind}")]

    # --- ZIP archives and OOXML documents -----------------------------------------------

    def archive(self, part: str, data: bytes, depth: int) -> list[Extracted]:
        """`depth`: how many archives enclose this one. An OOXML document is read even at
        the deepest level (to its reader it is a file, not an archive); what is embedded
        in it is one level deeper."""
        if depth > self.limits.max_depth:
            raise _Limit(f"archives nested more than {self.limits.max_depth} deep")
        source = _CountingBytes(data)
        try:
            archive = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
            return [Extracted(part, None, Problem.UNREADABLE, "damaged or not a ZIP archive")]
        with archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
            names = {info.filename for info in infos}
            if "[Content_Types].xml" in names:
                for prefix, reader in _OOXML_READERS.items():
                    if any(name.startswith(prefix) for name in names):
                        return _Ooxml(self, part, archive, source, depth).read(reader)
            if depth == self.limits.max_depth:
                raise _Limit(f"archives nested more than {self.limits.max_depth} deep")
            return self.read_members(part, archive, source, infos, depth)

    def read_members(self, part: str, archive: zipfile.ZipFile, source: _CountingBytes,
                     infos: list[zipfile.ZipInfo], depth: int) -> list[Extracted]:
        results: list[Extracted] = []
        for info in infos:
            if self.stopped:
                break
            member = f"{part}/{info.filename}"
            try:
                self.check_time()
                self.count_member()
                content = self.read_member(archive, source, info)
            except _Limit as exc:
                # a cap of the whole attachment is charged to the archive, not the member
                results.append(Extracted(part if self.stopped else member, None,
                                         Problem.LIMIT, exc.detail))
                continue
            except _MemberEncrypted:
                results.append(Extracted(member, None, Problem.ENCRYPTED,
                                         "password-protected archive member"))
                continue
            except _MEMBER_ERRORS:
                results.append(Extracted(member, None, Problem.UNREADABLE,
                                         "damaged archive member"))
                continue
            results.extend(self.dispatch(member, "", content, depth + 1))
        return results or [Extracted(part, None)]

    def read_member(self, archive: zipfile.ZipFile, source: _CountingBytes,
                    info: zipfile.ZipInfo) -> bytes:
        """A member's bytes, read in bounded chunks against the caps: the inflated size and
        ratio are what actually comes out, whatever the headers claim."""
        if info.flag_bits & 0x1:
            raise _MemberEncrypted
        out = bytearray()
        with archive.open(info) as stream:
            start = source.consumed
            while chunk := stream.read(_CHUNK):
                out += chunk
                self.count_inflated(len(chunk))
                self.check_time()
                compressed = max(source.consumed - start, 1)
                if len(out) > _RATIO_GRACE_BYTES and len(out) > self.limits.max_ratio * compressed:
                    raise _Limit(f"compression ratio above {self.limits.max_ratio}")
        return bytes(out)


class _MemberEncrypted(Exception):
    pass


_MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
                  RuntimeError, ValueError)


class _CountingBytes(io.BytesIO):
    """Counts bytes read from the archive, to measure each member's real compression ratio
    as it inflates (zipfile reads compressed data through here as it needs it)."""

    consumed = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.consumed += len(data)
        return data


def _kind(part: str, content_type: str, data: bytes) -> str:
    """Content first (a renamed file is still what it is), then extension, then type."""
    if data.startswith(_ZIP_MAGICS):
        return "zip"
    if data.startswith(_OLE_MAGIC):
        return "ole"
    if data.find(b"%PDF-", 0, 1024) != -1:  # readers accept junk before the header
        return "pdf"
    extension = os.path.splitext(part.rpartition("/")[2].lower())[1]
    if extension == ".pdf":
        return "pdf"
    if extension in _ZIP_EXTENSIONS:
        return "zip"
    if extension in _LEGACY_EXTENSIONS:
        return "ole"
    if extension in _HTML_EXTENSIONS:
        return "html"
    if extension in _TEXT_EXTENSIONS:
        return "text"
    media = content_type.partition(";")[0].strip().lower()
    if media == "application/pdf":
        return "pdf"
    if media in _ZIP_TYPES:
        return "zip"
    if media in _HTML_TYPES:
        return "html"
    if media.startswith("text/") or media in _TEXT_TYPES:
        return "text"
    if media.startswith(_NO_TEXT_TYPES):
        return "none"
    # An unlabelled file that is plainly text (.md, .sql, .rtf, no extension) still leaks.
    return "text" if _looks_like_text(data) else "none"


_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")


def _looks_like_text(data: bytes) -> bool:
    if not data or _CONTROL.search(data, 0, 8192):
        return False
    try:
        data[:8192].decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > 8188  # only a multi-byte character cut at the sample's end
    return True


# --- plain text and HTML ------------------------------------------------------------------

def _decode(data: bytes) -> str:
    """A byte-order mark says the encoding; without one, UTF-8 if valid, else Windows-1252
    (what legacy Windows tools write)."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"),
                       (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
                       (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(codec, "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


_BLOCK_TAGS = {"address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
               "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
               "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section",
               "table", "title", "tr", "ul"}
_SKIP_TAGS = {"script", "style", "template"}


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities arrive decoded in handle_data
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append("\t")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def _html_text(html: str, job: _Job) -> str:
    parser = _HtmlText()
    # fed in slices so that the deadline is seen even on pathological markup
    for start in range(0, len(html), 256 * 1024):
        job.check_time()
        parser.feed(html[start:start + 256 * 1024])
    parser.close()
    return "".join(parser.parts)


# --- OLE compound files (legacy Office, encrypted OOXML) ----------------------------------

_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le") + b"\0\0"


def _ole(part: str, data: bytes) -> Extracted:
    if _cfb_has_stream(data, _ENCRYPTED_PACKAGE):
        return Extracted(part, None, Problem.ENCRYPTED, "password-protected Office document")
    return Extracted(part, None, Problem.UNREADABLE, "legacy Office format not supported")


def _cfb_has_stream(data: bytes, name: bytes) -> bool:
    """Whether the compound file's directory names a stream `name` (UTF-16LE with its NUL).
    Directory entries are 128 bytes, in sectors of 512 or 4096 after a 512-byte header, so
    every entry starts at a multiple of 128: a name there, with the matching length field
    and the stream type, is a directory entry and not stray content."""
    at = data.find(name, 512)
    while at != -1:
        entry = data[at:at + 128]
        if (at % 128 == 0 and len(entry) == 128
                and int.from_bytes(entry[64:66], "little") == len(name) and entry[66] == 2):
            return True
        at = data.find(name, at + 1)
    return False


# --- OOXML: DOCX, XLSX, PPTX --------------------------------------------------------------

def _natural(name: str) -> list[str | int]:
    """slide2 before slide10."""
    return [int(piece) if piece.isdigit() else piece for piece in re.split(r"(\d+)", name)]


def _in_order(names: list[str], patterns: list[re.Pattern[str]]) -> list[str]:
    return [name for pattern in patterns for name in names if pattern.fullmatch(name)]


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


# the parts that hold text, in reading order
_DOCX_PARTS = [re.compile(rf"word/{part}\.xml") for part in
               (r"header\d*", "document", r"footer\d*", "footnotes", "endnotes", "comments")]
_XLSX_SHEETS = [re.compile(r"xl/worksheets/[^/]+\.xml")]
_XLSX_OTHER_TEXT = [re.compile(rf"xl/{part}\.xml") for part in
                    ("comments[^/]*", "comments/[^/]+", "threadedComments/[^/]+",
                     "drawings/[^/]+")]
_PPTX_PARTS = [re.compile(rf"ppt/{part}\.xml") for part in
               (r"slides/slide\d+", r"notesSlides/notesSlide\d+", "comments/[^/]+")]
_EMBEDDED = re.compile(r"(word|xl|ppt)/embeddings/[^/]+")

# elements whose text is document text, and elements that end a line or a cell, in the
# WordprocessingML, SpreadsheetML and DrawingML vocabularies (matched by local name)
_TEXT_ELEMENTS = {"t", "delText", "text"}
_LINE_ELEMENTS = {"p", "br", "cr", "tr", "si", "comment", "cm", "threadedComment"}
_CELL_ELEMENTS = {"tab", "tc"}


class _Ooxml:
    def __init__(self, job: _Job, part: str, archive: zipfile.ZipFile, source: _CountingBytes,
                 depth: int) -> None:
        self.job = job
        self.part = part
        self.archive = archive
        self.source = source
        self.depth = depth
        self.pieces: list[str] = []
        self.problem: Problem | None = None
        self.detail = ""
        self.embedded: list[Extracted] = []

    def read(self, reader: Callable[[_Ooxml, list[str]], None]) -> list[Extracted]:
        names = sorted((info.filename for info in self.archive.infolist()), key=_natural)
        try:
            reader(self, names)
            for name in names:
                if (_EMBEDDED.fullmatch(name)
                        and os.path.splitext(name.lower())[1] in _EMBEDDED_EXTENSIONS):
                    data = self.member(name)
                    if data is not None:
                        self.embedded += self.job.dispatch(f"{self.part}/{name}", "", data,
                                                           self.depth + 1)
        except _Limit as exc:
            self.problem, self.detail = Problem.LIMIT, exc.detail
        text = "".join(self.pieces).strip("\n")
        if self.problem is Problem.ENCRYPTED:
            return [Extracted(self.part, None, self.problem, self.detail)]
        return [Extracted(self.part, text or (None if self.problem else ""), self.problem,
                          self.detail), *self.embedded]

    def member(self, name: str) -> bytes | None:
        """A part's bytes, or None (with the problem noted) if it cannot be read."""
        info = self.archive.getinfo(name)
        self.job.check_time()
        self.job.count_member()
        try:
            return self.job.read_member(self.archive, self.source, info)
        except _MemberEncrypted:
            self.problem, self.detail = Problem.ENCRYPTED, "password-protected document part"
        except _MEMBER_ERRORS:
            self.damaged()
        return None

    def damaged(self) -> None:
        if self.problem is None:
            self.problem, self.detail = Problem.UNREADABLE, "part of the document is damaged"

    def elements(self, name: str, events: tuple[str, ...] = ("end",)) -> Iterator[
            tuple[str, Element]]:
        """Parse events of one part (no DTDs, no entities); a damaged part is noted and
        skipped, so that the rest of the document is still read."""
        data = self.member(name)
        if data is None:
            return
        try:
            for count, (event, element) in enumerate(
                    iterparse(io.BytesIO(data), events=events, forbid_dtd=True)):
                if count % 4096 == 0:
                    self.job.check_time()
                yield event, element
        except (ParseError, ValueError):  # defusedxml's refusals are ValueErrors
            self.damaged()

    def text_of(self, name: str) -> None:
        """Running text of a WordprocessingML / DrawingML / comments part."""
        for _event, element in self.elements(name):
            tag = _local(element.tag)
            if tag in _TEXT_ELEMENTS and element.text:
                self.pieces.append(element.text)
            elif tag in _LINE_ELEMENTS:
                self.pieces.append("\n")
            elif tag in _CELL_ELEMENTS:
                self.pieces.append("\t")
        self.pieces.append("\n")

    def docx(self, names: list[str]) -> None:
        for name in _in_order(names, _DOCX_PARTS):
            self.text_of(name)

    def pptx(self, names: list[str]) -> None:
        for name in _in_order(names, _PPTX_PARTS):
            self.text_of(name)

    def xlsx(self, names: list[str]) -> None:
        if "xl/workbook.xml" in names:
            sheets = [element.get("name", "") for _event, element
                      in self.elements("xl/workbook.xml") if _local(element.tag) == "sheet"]
            self.pieces.append("\n".join(sheets) + "\n")
        shared: list[str] = []
        if "xl/sharedStrings.xml" in names:
            shared = [_rich_text(element) for _event, element
                      in self.elements("xl/sharedStrings.xml") if _local(element.tag) == "si"]
        for name in _in_order(names, _XLSX_SHEETS):
            self.sheet(name, shared)
        for name in _in_order(names, _XLSX_OTHER_TEXT):
            self.text_of(name)

    def sheet(self, name: str, shared: list[str]) -> None:
        """Cell values row by row, tab-separated: shared and inline strings, formula results,
        and numbers written out in full (a card number stored as a number must still read
        as its digits)."""
        rows: Element | None = None
        for event, element in self.elements(name, ("start", "end")):
            tag = _local(element.tag)
            if event == "start":
                if tag == "sheetData":
                    rows = element
                continue
            if tag == "c":
                value = _cell_text(element, shared)
                if value:
                    self.pieces.append(value + "\t")
            elif tag == "row":
                self.pieces.append("\n")
                if rows is not None:
                    rows.clear()  # rows already read: keep memory flat on big sheets


_OOXML_READERS: dict[str, Callable[[_Ooxml, list[str]], None]] = {
    "word/": _Ooxml.docx, "xl/": _Ooxml.xlsx, "ppt/": _Ooxml.pptx}


def _rich_text(element: Element) -> str:
    """The text of a shared or inline string: plain <t>, or rich-text runs <r><t>; the
    phonetic guide (<rPh>) repeats text and is left out."""
    pieces: list[str] = []
    for child in element:
        tag = _local(child.tag)
        if tag == "t":
            pieces.append(child.text or "")
        elif tag == "r":
            pieces += [grand.text or "" for grand in child if _local(grand.tag) == "t"]
    return "".join(pieces)


def _cell_text(cell: Element, shared: list[str]) -> str:
    kind = cell.get("t", "n")
    value = next((child.text or "" for child in cell if _local(child.tag) == "v"), "")
    if kind == "s":
        return shared[int(value)] if value.isdigit() and int(value) < len(shared) else ""
    if kind == "inlineStr":
        inline = next((child for child in cell if _local(child.tag) == "is"), None)
        return _rich_text(inline) if inline is not None else ""
    if kind == "n":
        return _number(value)
    if kind == "b":
        return ""
    return value  # str (formula result), e (error), d (ISO date)


def _number(value: str) -> str:
    """4.111111111111111E+15 → 4111111111111111; 12.0 → 12; 0.5 → 0.5."""
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return value
    # bounded so that a hostile 1E+999999999 cannot make a gigantic string
    if not number.is_finite() or not -30 <= number.adjusted() <= 30:
        return value
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


# --- PDF ----------------------------------------------------------------------------------

# What poppler and the dynamic loader print when RLIMIT_AS stops them.
_OUT_OF_MEMORY = (b"Out of memory", b"bad_alloc", b"failed to map segment",
                  b"annot allocate memory")


def _pdf(part: str, data: bytes, job: _Job) -> Extracted:
    binary = shutil.which("pdftotext")
    if binary is None:
        return Extracted(part, None, Problem.UNREADABLE,
                         "PDF reader missing: install poppler-utils (pdftotext)")
    seconds = min(job.limits.pdf_seconds, job.remaining())
    if seconds <= 0:
        job.stop(f"took longer than {job.limits.max_seconds:g} seconds")
    run = _run_limited([binary, "-enc", "UTF-8", "-eol", "unix", "-", "-"], data,
                       seconds=seconds, memory=job.limits.pdf_memory_bytes,
                       max_output=job.limits.max_inflated_bytes - job.inflated)
    job.inflated += len(run.stdout)
    text = run.stdout.decode("utf-8", "replace").replace("\f", "\n").strip("\n")
    if run.timed_out:
        return Extracted(part, text or None, Problem.LIMIT, "PDF took too long to read")
    if run.overflowed:
        return Extracted(part, text or None, Problem.LIMIT, "PDF text larger than allowed")
    if any(marker in run.stderr for marker in _OUT_OF_MEMORY):
        return Extracted(part, text or None, Problem.LIMIT, "PDF needs more memory than allowed")
    if run.returncode == -signal.SIGXCPU:
        return Extracted(part, text or None, Problem.LIMIT, "PDF took too long to read")
    if run.returncode == 0:
        return Extracted(part, text)
    if b"Incorrect password" in run.stderr:
        return Extracted(part, None, Problem.ENCRYPTED, "password-protected PDF")
    if run.returncode < 0:
        return Extracted(part, text or None, Problem.UNREADABLE, "PDF reader crashed")
    return Extracted(part, text or None, Problem.UNREADABLE, "damaged or unsupported PDF")


@dataclass(frozen=True)
class _Run:
    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool
    overflowed: bool


_MAX_STDERR = 64 * 1024


def _run_limited(argv: list[str], stdin: bytes, *, seconds: float, memory: int,
                 max_output: int) -> _Run:
    """Run `argv` with `stdin`, under an address-space and CPU limit set in the child and a
    wall-clock deadline with kill; stdout beyond `max_output` stops it too. No disk: the
    document and its text only ever travel through pipes."""
    cpu = math.ceil(seconds) + 1
    # util-linux's prlimit sets the limits and execs the parser: no Python runs between fork
    # and exec (preexec_fn is unsafe in the threaded milter, and copies a big process). No
    # core file either: it would hold the document.
    argv = ["prlimit", f"--as={memory}", f"--cpu={cpu}:{cpu + 1}", "--core=0", "--", *argv]
    deadline = time.monotonic() + seconds
    stdout, stderr = bytearray(), bytearray()
    timed_out = overflowed = False
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"})  # no secrets for a parser
    assert process.stdin and process.stdout and process.stderr
    try:
        with selectors.DefaultSelector() as selector:
            pending = memoryview(stdin)
            os.set_blocking(process.stdin.fileno(), False)
            selector.register(process.stdin, selectors.EVENT_WRITE)
            selector.register(process.stdout, selectors.EVENT_READ, stdout)
            selector.register(process.stderr, selectors.EVENT_READ, stderr)
            while len(selector.get_map()) > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                for key, _mask in selector.select(left):
                    if key.fileobj is process.stdin:
                        try:
                            pending = pending[os.write(key.fd, pending[:_CHUNK]):]
                        except BrokenPipeError:  # it stopped reading: its exit code says why
                            pending = pending[:0]
                        if not pending:
                            selector.unregister(process.stdin)
                            process.stdin.close()
                        continue
                    chunk = os.read(key.fd, _CHUNK)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    buffer: bytearray = key.data
                    if buffer is stderr:
                        stderr += chunk[:max(0, _MAX_STDERR - len(stderr))]
                    else:
                        stdout += chunk
                        if len(stdout) > max_output:
                            del stdout[max_output:]
                            overflowed = True
                            break
                if overflowed:
                    break
    finally:
        if timed_out or overflowed:
            process.kill()
        for stream in (process.stdin, process.stdout, process.stderr):
            stream.close()
        returncode = _wait(process, deadline)
    return _Run(returncode, bytes(stdout), bytes(stderr), timed_out, overflowed)


def _wait(process: subprocess.Popen[bytes], deadline: float) -> int:
    """Its exit code; one that outlives its pipes and deadline is killed."""
    try:
        return process.wait(timeout=max(0.0, deadline - time.monotonic()) + 0.5)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
