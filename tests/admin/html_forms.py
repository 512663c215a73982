"""A console form as a browser would submit it: every field's value as the page shows it
(checked boxes only, the selected options, textareas' text), so a test changes only what an
administrator would change and sends the rest as it was."""

from __future__ import annotations

from html.parser import HTMLParser

Fields = dict[str, list[str]]


class _FormReader(HTMLParser):
    def __init__(self, action: str | None, form_id: str | None) -> None:
        super().__init__(convert_charrefs=True)
        self.action, self.form_id = action, form_id
        self.inside = False
        self.found = False
        self.fields: Fields = {}
        self._select: str | None = None
        self._select_first: str | None = None
        self._select_chosen = False
        self._textarea: str | None = None
        self._text: list[str] = []

    def _add(self, name: str, value: str) -> None:
        self.fields.setdefault(name, []).append(value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "form" and not self.found:
            matches = (self.form_id is not None and values.get("id") == self.form_id) or (
                self.action is not None and values.get("action") == self.action)
            self.inside = self.found = matches
            return
        if not self.inside:
            return
        name = values.get("name")
        if tag == "input" and name:
            kind = values.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in values:
                    self._add(name, values.get("value", "on") or "on")
            elif kind not in ("submit", "button", "file", "reset", "image"):
                self._add(name, values.get("value", ""))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []
        elif tag == "select" and name:
            self._select, self._select_first, self._select_chosen = name, None, False
        elif tag == "option" and self._select is not None:
            value = values.get("value", "")
            if self._select_first is None:
                self._select_first = value
            if "selected" in values and not self._select_chosen:
                self._add(self._select, value)
                self._select_chosen = True

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea" and self._textarea is not None:
            # A browser drops the one line end that follows <textarea>.
            self._add(self._textarea, "".join(self._text).removeprefix("\n")
                      .removeprefix("\r\n"))
            self._textarea = None
        elif tag == "select" and self._select is not None:
            if not self._select_chosen and self._select_first is not None:
                self._add(self._select, self._select_first)
            self._select = None


def form_fields(page: bytes, action: str | None = None, form_id: str | None = None) -> Fields:
    reader = _FormReader(action, form_id)
    reader.feed(page.decode("utf-8"))
    assert reader.found, f"no form {form_id or action} on the page"
    return reader.fields


def single(fields: Fields, **changes: str | list[str] | None) -> Fields:
    """The fields with some changed (None: the field is left out, e.g. an unticked box)."""
    result = dict(fields)
    for name, value in changes.items():
        key = name.replace("__", "-")  # detectors__0__name → detectors-0-name
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value if isinstance(value, list) else [value]
    return result
