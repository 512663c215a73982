"""Log lines as plain text or as one JSON object per line, the same for the milter and the
server; and the id of the message being handled, carried into every line logged meanwhile so
that one message can be followed from the milter to the server to the portal."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")
current_message_id: ContextVar[str | None] = ContextVar("sealgate_message_id", default=None)
# The milter names the message it is working on in every call to the server (a trace id it
# makes at end of message), and the server's lines for that call carry the same id.
TRACE_HEADER = "X-Sealgate-Trace"
_TRACE = re.compile(r"^[0-9a-f]{32}$")


def trace_from(value: str | None) -> str | None:
    """A trace id as the milter makes them, or None for anything else."""
    return value if value is not None and _TRACE.match(value) else None


def set_message_id(message_id: str | None) -> None:
    """The message this thread of work is about from now on (None: no message)."""
    current_message_id.set(message_id)


@contextmanager
def message_id(value: str | None) -> Iterator[None]:
    """The message this block of work is about; the one before is back afterwards."""
    token = current_message_id.set(value)
    try:
        yield
    finally:
        current_message_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, the message id
    when one is set, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        found = current_message_id.get()
        if found is not None:
            line["message_id"] = found
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The given text format, with ` [message <id>]` appended when a message id is set."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        found = current_message_id.get()
        if found is None:
            return text
        first, newline, rest = text.partition("\n")  # after the message, before a traceback
        return f"{first} [message {found}]{newline}{rest}"


def formatter(style: str, text_format: str) -> logging.Formatter:
    if style == "json":
        return JsonFormatter()
    if style == "text":
        return TextFormatter(text_format)
    raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {style!r}")


def setup(style: str, program: str) -> None:
    """Log INFO and above to stderr in the chosen format (a process's own set-up, at start)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(style, f"%(asctime)s {program} %(levelname)s %(message)s"))
    root = logging.getLogger()
    for previous in list(root.handlers):
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def gunicorn_config(style: str) -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: its own error and access lines and the application's, all
    in the chosen format (errors and the application's lines on stderr, access on stdout)."""
    text = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"
    chosen: dict[str, Any] = (
        {"()": JsonFormatter} if style == "json" else {"()": TextFormatter, "fmt": text})
    formatter(style, text)  # a wrong style fails here, with its message
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"sealgate": chosen},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "sealgate",
                       "stream": "ext://sys.stderr"},
            "stdout": {"class": "logging.StreamHandler", "formatter": "sealgate",
                       "stream": "ext://sys.stdout"},
        },
        "root": {"level": "INFO", "handlers": ["stderr"]},
        # Not also through the root: each line once.
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        },
    }
