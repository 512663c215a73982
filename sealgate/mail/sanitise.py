"""Making a message's HTML body safe to show in the secure-message portal.

Pure. The sanitising itself is nh3 (ammonia): an allow-list of tags, attributes, URL schemes and
CSS properties, built once at import. The only Python on the hot path is nh3's attribute_filter
hook, which decides what an image may load (cid: parts, a few data: image types, remote images
only on request) and refuses CSS values that could load or run something. A cheap linear scan of
the input names what was neutralised, for logging; it is never relied on for safety.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from urllib.parse import unquote

import nh3

__all__ = ["LINK_REL", "LINK_TARGET", "SafeHtml", "plain_text_to_html", "sanitise"]

LINK_REL = "noopener noreferrer nofollow"
"""Links open away from the portal and tell the destination nothing about it."""
LINK_TARGET = "_blank"


@dataclass(frozen=True)
class SafeHtml:
    """A sanitised fragment plus what was taken out, so the portal can offer remote images.

    ``blocked_remote`` counts what ``allow_remote=True`` would restore (remote ``<img src>`` and
    ``background`` attributes); CSS ``url()`` is always dropped and only named in ``removed``.
    ``removed`` comes from a fixed vocabulary and is for logs: never attacker text.
    """

    html: str
    blocked_remote: int
    removed: tuple[str, ...]


# --- the nh3 configuration, built once ---------------------------------------------------

_TAGS = frozenset({
    "p", "br", "div", "span", "hr", "pre", "code", "blockquote",
    "table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption", "colgroup", "col",
    "ul", "ol", "li", "dl", "dt", "dd",
    "h1", "h2", "h3", "h4", "h5", "h6",
    "b", "strong", "i", "em", "u", "s", "strike", "sub", "sup", "small", "big", "font", "center",
    "a", "img", "abbr", "address", "cite", "q", "mark", "del", "ins", "figure", "figcaption",
})

# Removed together with everything inside: executable, foreign-namespace (the mutation-XSS
# playground), interactive or head-only content whose text means nothing out of context.
_CLEAN_CONTENT_TAGS = frozenset({
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "param",
    "svg", "math", "template", "noscript", "noembed", "noframes", "title",
    "form", "input", "button", "select", "textarea", "option", "optgroup", "datalist",
})

# No id/name/class: they could collide with, or be styled by, the portal page itself.
_GENERIC_ATTRIBUTES = frozenset({
    "align", "valign", "width", "height", "colspan", "rowspan", "bgcolor", "color", "face",
    "size", "border", "cellpadding", "cellspacing", "dir", "lang", "title", "alt", "style",
})
_BACKGROUND_TAGS = ("table", "tr", "td", "th")
_ATTRIBUTES: dict[str, frozenset[str]] = {
    "*": _GENERIC_ATTRIBUTES,
    "a": frozenset({"href"}),
    "img": frozenset({"src"}),
    **{tag: frozenset({"background"}) for tag in _BACKGROUND_TAGS},
}

# nh3 applies these to src as well as href, so cid: and data: must pass here; the attribute
# filter then narrows each attribute to what it may really hold.
_URL_SCHEMES = frozenset({"http", "https", "mailto", "cid", "data"})

_SIDES = ("top", "right", "bottom", "left")
# Nothing here can load a resource (no background-image, border-image, list-style-image) or
# escape the message's box (no position, z-index, transform).
_CSS_PROPERTIES = frozenset({
    "color", "background-color",
    "font", "font-family", "font-size", "font-style", "font-variant", "font-weight",
    "font-stretch",
    "text-align", "text-decoration", "text-decoration-color", "text-decoration-line",
    "text-decoration-style", "text-indent", "text-transform", "text-overflow", "text-shadow",
    "line-height", "vertical-align", "display", "white-space", "word-break", "overflow-wrap",
    "list-style-type", "direction", "letter-spacing", "width", "height", "max-width", "min-width",
    "margin", *(f"margin-{s}" for s in _SIDES),
    "padding", *(f"padding-{s}" for s in _SIDES),
    "border", "border-color", "border-style", "border-width", "border-collapse",
    "border-spacing", "border-radius",
    *(f"border-{s}" for s in _SIDES),
    *(f"border-{s}-{p}" for s in _SIDES for p in ("color", "style", "width")),
    *(f"border-{v}-{h}-radius" for v in ("top", "bottom") for h in ("left", "right")),
})


@dataclass
class _Run:
    """Per-call state the module-level attribute filter reads and writes."""

    part_url: Callable[[str], str | None]
    allow_remote: bool
    blocked_remote: int = 0
    removed: set[str] = field(default_factory=set)
    error: BaseException | None = None


# The Cleaner is shared, so the per-call state travels in a ContextVar: each thread (and each
# nested call) sees its own run.
_RUN: ContextVar[_Run | None] = ContextVar("sealgate_sanitise_run", default=None)

# WHATWG URL parsing ignores these, so "jav\tascript:" is javascript:.
_URL_STRIP = "".join(chr(c) for c in range(0x21)) + "\x7f"
_URL_IGNORED = re.compile(r"[\t\n\r]")
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
_DATA_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif|webp)(?:;[^,]*)?,", re.IGNORECASE)

# Anything the per-declaration checks below could object to; most styles have none of it.
_CSS_SUSPECT = re.compile(r"[(\\\"']|expression|javascript|margin[^;:]*:[^;]*-")  # lower-cased
_CSS_FUNCTION = re.compile(r"([a-z0-9_-]*)\s*\(")
_CSS_SAFE_FUNCTIONS = frozenset({"rgb", "rgba", "hsl", "hsla", "calc"})
_CSS_REMOTE_URL = re.compile(r"url\s*\(\s*['\"]?\s*(?:https?:)?//")


def _normalise_url(value: str) -> str:
    return _URL_IGNORED.sub("", value.strip(_URL_STRIP))


def _scheme(url: str) -> str | None:
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else None


def _filter_href(url: str, run: _Run) -> str | None:
    if url.startswith("//"):
        return "https:" + url
    scheme = _scheme(url)
    if scheme in ("http", "https", "mailto"):
        return url
    if scheme is None:
        run.removed.add("relative URL")
    else:
        run.removed.add(f"{scheme}: URL" if scheme in ("data", "cid") else "disallowed URL")
    return None


def _filter_image(url: str, run: _Run, what: str) -> str | None:
    """cid: through part_url, a few raster data: types, remote only when allowed; else nothing."""
    scheme = "remote" if url.startswith("//") else _scheme(url)
    if scheme == "cid":
        content_id = unquote(url[4:].strip()).strip("<>").strip()
        rewritten = run.part_url(content_id) if content_id else None
        if rewritten is None:
            run.removed.add("unresolved cid image")
        return rewritten
    if scheme == "data":
        if _DATA_IMAGE.match(url):
            return url
        run.removed.add("data: URL")
        return None
    if scheme in ("http", "https", "remote"):
        if run.allow_remote:
            return url
        run.blocked_remote += 1
        run.removed.add(f"remote {what}")
        return None
    run.removed.add("relative URL" if scheme is None else "disallowed URL")
    return None


def _filter_style(value: str, run: _Run) -> str | None:
    """Drop declarations that could load or run something; nh3 then drops unlisted properties.

    nh3 keeps an allowed property's value as written (even ``width: expression(...)``) and
    decodes CSS escapes when it re-serialises, so values are checked here, before that: no
    backslashes, no functions but colour/calc ones, no unbalanced quotes, no negative margins
    (which could pull the message over the portal's own controls).
    """
    if not _CSS_SUSPECT.search(value.lower()):
        return value
    kept = []
    for declaration in value.split(";"):
        lowered = declaration.lower()
        if not lowered.strip():
            continue
        functions = _CSS_FUNCTION.findall(lowered)
        if functions and not _CSS_SAFE_FUNCTIONS.issuperset(functions):
            if _CSS_REMOTE_URL.search(lowered) or "url" in functions:
                run.removed.add("CSS url()")
            else:
                run.removed.add("unsafe CSS")
            continue
        if ("\\" in lowered or lowered.count('"') % 2 or lowered.count("'") % 2
                or "expression" in lowered or "javascript" in lowered):
            run.removed.add("unsafe CSS")
            continue
        if lowered.lstrip().startswith("margin") and "-" in lowered.partition(":")[2]:
            run.removed.add("negative margin")
            continue
        kept.append(declaration)
    return ";".join(kept) if kept else None


_FILTERED_ATTRIBUTES = frozenset({"style", "href", "src", "background"})


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """nh3's hook: has already applied the attribute and scheme allow-lists; narrows further."""
    if attribute not in _FILTERED_ATTRIBUTES:
        return value
    run = _RUN.get()
    if run is None:  # pragma: no cover - only reachable if the Cleaner were used directly
        return None
    try:
        if attribute == "style":
            return _filter_style(value, run)
        if tag == "a" and attribute == "href":
            return _filter_href(_normalise_url(value), run)
        if tag == "img" and attribute == "src":
            return _filter_image(_normalise_url(value), run, "image")
        if attribute == "background":
            return _filter_image(_normalise_url(value), run, "background")
    except Exception as exc:  # nh3 would swallow it; report it to our caller instead
        if run.error is None:
            run.error = exc
        return None
    return value


_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags=_CLEAN_CONTENT_TAGS,
    attributes=_ATTRIBUTES,
    attribute_filter=_attribute_filter,
    strip_comments=True,
    link_rel=LINK_REL,
    set_tag_attribute_values={"a": {"target": LINK_TARGET}},
    url_schemes=_URL_SCHEMES,
    filter_style_properties=_CSS_PROPERTIES,
)

# --- reporting: a linear scan of the input, for logs only --------------------------------

_TAG_NAME = re.compile(r"<([a-z][a-z0-9:-]*)")  # lower-cased
# On lower-cased input; the literal "on" first lets the regex engine skip ahead quickly.
_EVENT_HANDLER = re.compile(r"on(?<=[\s/\"']on)[a-z]+\s*=")
# On lower-cased input: the start of an attribute value, letters and colons possibly
# interleaved with tabs/newlines or written as character references. Possessive, so linear.
_VALUE_START = re.compile(r"=[\x00-\x20\"']*+((?:[a-z:\t\n\r]|&[#a-z0-9]++;?)++)")
_REPORTED_TAGS = _CLEAN_CONTENT_TAGS | {"meta", "link", "base"}
_SCRIPT_SCHEMES = frozenset({"javascript", "vbscript", "livescript"})


def _describe_input(html: str, removed: set[str]) -> None:
    """Name, from a fixed vocabulary, the dangerous things present in the input."""
    lowered = html.lower()
    removed.update(_REPORTED_TAGS.intersection(_TAG_NAME.findall(lowered)))
    if "<!--" in html:
        removed.add("comment")
    if _EVENT_HANDLER.search(lowered):
        removed.add("event handler")
    for start in set(_VALUE_START.findall(lowered)):
        if "&" in start:
            start = html_lib.unescape(start)
        scheme, colon, _ = _normalise_url(start).partition(":")
        if colon and scheme in _SCRIPT_SCHEMES:
            removed.add(f"{scheme}: URL")


def sanitise(
    html: str, *, part_url: Callable[[str], str | None], allow_remote: bool = False
) -> SafeHtml:
    """Sanitise an email's HTML body for display in the portal.

    ``part_url`` maps a Content-ID (without ``cid:`` or ``<>``) to the portal URL of that
    inline part, or None if there is no such part; its result is trusted as is. An exception
    it raises is re-raised here (nh3 would otherwise swallow it and just drop the image).
    """
    run = _Run(part_url=part_url, allow_remote=allow_remote)
    token = _RUN.set(run)
    try:
        cleaned = _CLEANER.clean(html)
    finally:
        _RUN.reset(token)
    if run.error is not None:
        raise run.error
    _describe_input(html, run.removed)
    return SafeHtml(html=cleaned, blocked_remote=run.blocked_remote,
                    removed=tuple(sorted(run.removed)))


# --- text/plain bodies -------------------------------------------------------------------

_TEXT_URL = re.compile(r"\bhttps?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING_PUNCTUATION = frozenset(".,;:!?'\"*_")
_PAIRS = {")": "(", "]": "[", "}": "{"}


def _trim_url(url: str) -> str:
    """Leave sentence punctuation and unbalanced closing brackets outside the link."""
    surplus = {close: url.count(close) - url.count(open_) for close, open_ in _PAIRS.items()}
    end = len(url)
    while end:
        last = url[end - 1]
        if last in _TRAILING_PUNCTUATION:
            end -= 1
        elif surplus.get(last, 0) > 0:
            surplus[last] -= 1
            end -= 1
        else:
            break
    return url[:end]


def plain_text_to_html(text: str) -> str:
    """Escape a text/plain body and make its http(s) URLs clickable; layout kept by pre-wrap."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")
    parts: list[str] = []
    position = 0
    for match in _TEXT_URL.finditer(text):
        url = _trim_url(match.group(0))
        if "://" not in url or url.endswith("://"):
            continue
        start = match.start()
        escaped = html_lib.escape(url, quote=True)
        parts.append(html_lib.escape(text[position:start], quote=False))
        parts.append(f'<a href="{escaped}" target="{LINK_TARGET}" rel="{LINK_REL}">'
                     f"{escaped}</a>")
        position = start + len(url)
    parts.append(html_lib.escape(text[position:], quote=False))
    return ('<div style="white-space:pre-wrap;overflow-wrap:anywhere">'
            + "".join(parts) + "</div>")
