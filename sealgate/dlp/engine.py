"""Finding identifiers in text. Candidates come from one pass of a compiled multi-pattern
engine (Hyperscan) when it is installed, else from Python's `re`; every candidate then goes
through the same validation and context rules, so both engines give the same findings.

Detectors that are only meaningful after a keyword (an account number, a passport number)
are gated: the engine looks for their keywords and searches just the few characters after
each one, instead of testing every number in the text."""

from __future__ import annotations

import enum
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sealgate.dlp.detectors import BUILTIN, DISQUALIFIERS, Detector
from sealgate.dlp.findings import Confidence, Finding, mask

try:  # the compiled engine is optional: a pure-Python path gives the same findings
    import hyperscan
except ImportError:  # pragma: no cover - depends on the platform
    hyperscan = None  # type: ignore[assignment]

KEYWORD_REACH = 50  # characters before a candidate in which a keyword supports it
DISQUALIFIER_REACH = 30  # ... in which a word such as "order" or "phone" disqualifies it
GATED_REACH = 48  # characters after a gating keyword in which its value must start
GATED_BEFORE = 14  # ... or before it, as in "S44635802 (passport)"
TRAILING_REACH = 30  # characters after a candidate in which a keyword still supports it


class Engine(enum.StrEnum):
    HYPERSCAN = "hyperscan"
    RE = "re"  # one `re` pass per distinct pattern
    ALTERNATION = "alternation"  # one `re` pass over all patterns joined: the benchmark's baseline


def best_engine() -> Engine:
    return Engine.HYPERSCAN if hyperscan is not None else Engine.RE


def _words(words: Iterable[str]) -> str:
    """Any of the words, whole: a word boundary at each end that is a letter or digit (so
    "mr#" matches in "MR# 123", and "dl" not in "handle"). Written as a trie, so `re` tests
    one branch per position instead of every word; both engines accept the syntax."""
    trie: dict[str, Any] = {}
    for word in set(words):
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # the end of a word

    def branch(node: dict[str, Any], last: str) -> str:
        options = []
        for char, child in sorted(node.items()):
            if char == "":
                options.append(r"\b" if last.isalnum() else "")
            else:
                start = r"\b" if not last and char.isalnum() else ""  # a word's first letter
                options.append(start + re.escape(char) + branch(child, char))
        if len(options) == 1:
            return options[0]
        # The end of a word sorts first; try longer words before it.
        options = options[1:] + options[:1] if "" in node else options
        return "(?:" + "|".join(options) + ")"

    return branch(trie, "")


@dataclass(frozen=True)
class _Probe:
    """One pattern the candidate pass looks for, and the detectors it serves: either the
    candidate pattern of ungated detectors, or the keywords of gated ones."""

    pattern: str
    caseless: bool
    detectors: tuple[Detector, ...]
    gate: bool
    words: tuple[str, ...] = ()  # a gate's keywords
    # (detector, its validator) pairs, looked up once: the scan loop runs per candidate.
    checks: tuple[tuple[Detector, Callable[[str], bool]], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "checks", tuple((d, d.valid) for d in self.detectors))


class Scanner:
    def __init__(self, detectors: Sequence[Detector] = BUILTIN, engine: Engine | None = None):
        self.engine = engine or best_engine()
        if self.engine is Engine.HYPERSCAN and hyperscan is None:
            raise RuntimeError("the hyperscan package is not installed")
        self.probes = _probes(detectors)
        self._values = {d: re.compile(d.pattern, re.IGNORECASE if d.caseless else 0)
                        for d in detectors}
        # Cues are looked up in the text lower-cased as ASCII bytes (one byte per character,
        # like the Hyperscan input): several times faster than a case-blind `re` on the str.
        self._support = {d.type: re.compile(_words(d.keywords).encode()) for d in detectors}
        self._disqualifiers = re.compile(_words(DISQUALIFIERS).encode())
        self._disqualifier_length = max(len(word) for word in DISQUALIFIERS)
        if self.engine is Engine.HYPERSCAN:
            self._databases = _hyperscan_databases(self.probes)
            # Hyperscan needs scratch space per concurrent scan: one per thread.
            self._scratch = threading.local()
        elif self.engine is Engine.RE:
            self._patterns = [re.compile(p.pattern, re.IGNORECASE if p.caseless else 0)
                              for p in self.probes]
        else:
            self._alternation = re.compile("|".join(
                f"(?P<p{index}>{_inline_flags(p)})" for index, p in enumerate(self.probes)))

    def scan(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        data = text.encode("ascii", "replace")
        probes = self.probes
        for index, start, end in self._candidates(text, data):
            probe = probes[index]
            if probe.gate:
                for detector in probe.detectors:
                    finding = self._gated(detector, text, data, start, end)
                    if finding is not None:
                        found.append(finding)
                continue
            value = text[start:end]
            for detector, valid in probe.checks:
                # The validator first, in the loop: it refuses most candidates, cheaply.
                if valid(value):
                    finding = self._judge(detector, text, data, value, start)
                elif detector.runs_on:
                    shorter = _shrunk(detector, value)
                    finding = None if shorter is None else \
                        self._judge(detector, text, data, shorter, start)
                else:
                    continue
                if finding is not None:
                    found.append(finding)
        return _without_overlaps(found)

    # -- candidates --------------------------------------------------------------------------

    def _candidates(self, text: str, data: bytes) -> Iterable[tuple[int, int, int]]:
        if self.engine is Engine.HYPERSCAN:
            return self._hyperscan_candidates(data)
        if self.engine is Engine.RE:
            return [(index, m.start(), m.end()) for index, pattern in enumerate(self._patterns)
                    for m in pattern.finditer(text)]
        return [(int(m.lastgroup[1:]), m.start(), m.end())  # type: ignore[index]
                for m in self._alternation.finditer(text)]

    def _hyperscan_candidates(self, data: bytes) -> Iterable[tuple[int, int, int]]:
        # `data` has one byte per character, so Hyperscan's offsets are valid in the str;
        # everything it looks for is ASCII, and a non-ASCII character is a separator anyway.
        found: list[tuple[int, int, int]] = []
        push = found.append

        def on_match(index: int, start: int, end: int, _flags: int, _context: Any) -> None:
            push((index, start, end))

        scratches = getattr(self._scratch, "spaces", None)
        if scratches is None:
            scratches = self._scratch.spaces = [hyperscan.Scratch(d) for d in self._databases]
        for database, scratch in zip(self._databases, scratches, strict=True):
            database.scan(data, match_event_handler=on_match, scratch=scratch)
        # Leftmost-start matching reports each end of a variable-length match; like `re`,
        # keep the longest from each start (ends arrive in order, so the last one).
        longest = {(index, start): end for index, start, end in found}
        return [(index, start, end) for (index, start), end in longest.items()]

    # -- judging candidates ----------------------------------------------------------------------

    def _judge(self, detector: Detector, text: str, data: bytes, value: str,
               start: int) -> Finding | None:
        """A valid candidate: is it part of something longer, and what do the words around
        it say?"""
        end = start + len(value)
        if _inside_longer_number(text, start, end) or \
                (" " in value and _more_groups_around(text, start, end)):
            return None
        confidence = self._context(detector, data, start, end)
        if confidence is None:
            return None
        return Finding(detector.type, start, end, confidence, mask(value))

    def _gated(self, detector: Detector, text: str, data: bytes, keyword_start: int,
               keyword_end: int) -> Finding | None:
        """The value right after the keyword ("MRN: 00123456"), with no word between them
        that says it is something else; else right before it ("S44635802 (passport)")."""
        values = self._values[detector]
        match = values.search(text, keyword_end, keyword_end + GATED_REACH)
        if match is not None and self._disqualifiers.search(
                _lowered(data, keyword_end, match.start()), 1) is not None:
            match = None
        if match is None:
            before = [m for m in values.finditer(text, max(0, keyword_start - GATED_BEFORE),
                                                 keyword_start)
                      if not any(ch.isalnum() for ch in text[m.end():keyword_start])]
            match = before[-1] if before else None
        if match is None or _continues_as_number(text, match.end()):
            return None
        value = match.group()
        if not detector.valid(value):
            return None
        return Finding(detector.type, match.start(), match.end(), detector.with_keyword,
                       mask(value))

    def _context(self, detector: Detector, data: bytes, start: int,
                 end: int) -> Confidence | None:
        """The nearest cue before the candidate decides: a supporting keyword raises it, a
        disqualifying word close by drops it to low. With no cue before, a keyword just
        after ("021000021 is the routing number") supports it too. One look at the text
        around the candidate, lower-cased; the short list of supporting words first, since
        most candidates have none."""
        first = max(0, start - KEYWORD_REACH)
        window = _lowered(data, first, end + TRAILING_REACH)
        at, after = start - first + 1, end - first + 1  # the candidate within the window
        support = -1
        trailing = None
        for cue in self._support[detector.type].finditer(window, 1):
            if cue.start() >= after:
                trailing = cue
                break
            if cue.end() <= at:
                support = cue.end()
        disqualified = -1
        if detector.alone is not Confidence.LOW or support >= 0 or trailing is not None:
            reach = max(1, at - DISQUALIFIER_REACH - self._disqualifier_length)
            for cue in self._disqualifiers.finditer(window, reach, at):
                if at - cue.end() <= DISQUALIFIER_REACH:
                    disqualified = cue.end()
        if disqualified > support:
            return Confidence.LOW if detector.alone is not None else None
        if support >= 0:
            return detector.with_keyword
        if trailing is not None and self._disqualifiers.search(
                window, after, trailing.start()) is None:
            return detector.with_keyword
        return detector.alone


def _lowered(data: bytes, start: int, end: int) -> bytes:
    """data[start:end] in lower case, with the byte before it kept in front (search from 1)
    so that a word boundary at the window's edge is judged on the real text."""
    return data[start - 1:end].lower() if start > 0 else b" " + data[:end].lower()


def _probes(detectors: Sequence[Detector]) -> list[_Probe]:
    by_pattern: dict[tuple[str, bool, bool], list[Detector]] = {}
    for detector in detectors:
        if detector.alone is None:
            key = (_words(detector.keywords), True, True)
        else:
            key = (detector.pattern, detector.caseless, False)
        by_pattern.setdefault(key, []).append(detector)
    return [_Probe(pattern, caseless, tuple(found), gate,
                   tuple(sorted({w for d in found for w in d.keywords})) if gate else ())
            for (pattern, caseless, gate), found in by_pattern.items()]


def _inline_flags(probe: _Probe) -> str:
    return f"(?i:{probe.pattern})" if probe.caseless else probe.pattern


def _hyperscan_databases(probes: Sequence[_Probe]) -> list[Any]:
    """The candidate patterns in one database, the gates' keywords in another, one by one
    under their gate's id: Hyperscan's literal matcher finds plain words several times faster
    than an alternation of them, and the two scanned apart cost less than together."""
    databases = []
    for gates in (False, True):
        expressions: list[bytes] = []
        ids: list[int] = []
        flags: list[int] = []
        for index, probe in enumerate(probes):
            if probe.gate is not gates:
                continue
            for pattern in ([_bounded(w) for w in probe.words] if gates else [probe.pattern]):
                expressions.append(pattern.encode("ascii"))
                ids.append(index)
                flags.append(hyperscan.HS_FLAG_SOM_LEFTMOST |
                             (hyperscan.HS_FLAG_CASELESS if probe.caseless else 0))
        if expressions:
            database = hyperscan.Database()
            database.compile(expressions=expressions, ids=ids, elements=len(expressions),
                             flags=flags)
            databases.append(database)
    return databases


def _bounded(word: str) -> str:
    """The word whole: a word boundary at each end that is a letter or digit."""
    return (r"\b" if word[0].isalnum() else "") + re.escape(word) + \
        (r"\b" if word[-1].isalnum() else "")


def _inside_longer_number(text: str, start: int, end: int) -> bool:
    """Part of a bigger token: 2026-03-14-123456789, v10.123456789, /tickets/123456789/,
    $123456789."""
    before = text[start - 2:start] if start >= 2 else ""
    return (len(before) == 2 and before[1] in "-./:" and before[0].isalnum()) or \
        _continues_as_number(text, end) or (start > 0 and text[start - 1] in "$€£")


def _continues_as_number(text: str, end: int) -> bool:
    after = text[end:end + 2]
    return len(after) == 2 and after[0] in "-./:" and after[1].isalnum()


def _more_groups_around(text: str, start: int, end: int) -> bool:
    """A spaced number with another group of digits right beside it is part of something
    longer (an IBAN, an account in groups), not a card or an SSN of its own."""
    return (text[end:end + 1] == " " and text[end + 1:end + 2].isdigit()) or \
        (start >= 2 and text[start - 1] == " " and text[start - 2].isdigit())


def _shrunk(detector: Detector, value: str) -> str | None:
    """The candidate without its last space-separated group, for a layout that ran on into
    the next word (an IBAN in groups followed by "THEN ...")."""
    if " " not in value:
        return None
    shorter = value.rpartition(" ")[0]
    return shorter if detector.valid(shorter) else None


def _without_overlaps(findings: list[Finding]) -> list[Finding]:
    """Where findings overlap, the most confident (then the most specific, then the longest)
    keeps the span. Overlaps are rare and local: sort once, then settle each run of
    overlapping findings on its own."""
    if len(findings) < 2:
        return findings
    findings.sort(key=lambda f: f.start)
    kept: list[Finding] = []
    cluster = [findings[0]]
    reach = findings[0].end
    for finding in findings[1:]:
        if finding.start < reach:
            cluster.append(finding)
            reach = max(reach, finding.end)
            continue
        kept += _settle(cluster)
        cluster, reach = [finding], finding.end
    kept += _settle(cluster)
    return kept


def _settle(cluster: list[Finding]) -> list[Finding]:
    if len(cluster) == 1:
        return cluster
    ordered = sorted(cluster, key=lambda f: (-f.confidence.rank,
                                             -_PRIORITY.get(f.type, 0), f.start - f.end))
    kept: list[Finding] = []
    for finding in ordered:
        if all(finding.end <= other.start or finding.start >= other.end for other in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: f.start)


_PRIORITY = {d.type: d.priority for d in BUILTIN}


_default: Scanner | None = None


def scan_text(text: str) -> list[Finding]:
    """Every built-in identifier in `text`, with its offsets, confidence and masked value."""
    global _default
    if _default is None:
        _default = Scanner()
    return _default.scan(text)
