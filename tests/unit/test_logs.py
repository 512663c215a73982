"""Log lines as JSON or text, carrying the id of the message being handled."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from sealgate import config, logs
from sealgate.errors import ConfigError


@pytest.fixture
def root_logging() -> Iterator[None]:
    """`setup` reconfigures the root logger: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def emit(formatter: logging.Formatter, message: str, *args: object,
         exc: BaseException | None = None) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("sealgate.test.logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        if exc is None:
            logger.warning(message, *args)
        else:
            try:
                raise exc
            except BaseException:
                logger.exception(message, *args)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


def test_a_json_line_has_the_fields_and_the_message_id_while_it_is_set() -> None:
    with logs.message_id("3f0c9a55-2b7e-4c1e-9a51-7d6f0e8b1c2d"):
        line = emit(logs.JsonFormatter(), "deposited for %d recipient(s)", 2)
    assert line.endswith("\n") and line.count("\n") == 1
    record = json.loads(line)
    assert record["level"] == "WARNING"
    assert record["logger"] == "sealgate.test.logs"
    assert record["message"] == "deposited for 2 recipient(s)"
    assert record["message_id"] == "3f0c9a55-2b7e-4c1e-9a51-7d6f0e8b1c2d"
    moment = datetime.fromisoformat(record["time"])
    assert moment.utcoffset() == timedelta(0)
    without = json.loads(emit(logs.JsonFormatter(), "no message here"))
    assert "message_id" not in without


def test_a_traceback_stays_inside_the_one_json_line() -> None:
    line = emit(logs.JsonFormatter(), "it broke: %s", "quote \" and newline \n", exc=KeyError("x"))
    assert line.count("\n") == 1
    record = json.loads(line)
    assert record["message"] == "it broke: quote \" and newline \n"
    assert "KeyError: 'x'" in record["exception"]


def test_the_message_id_is_restored_after_the_block() -> None:
    logs.set_message_id("outer")
    try:
        with logs.message_id("inner"):
            assert logs.current_message_id.get() == "inner"
        assert logs.current_message_id.get() == "outer"
    finally:
        logs.set_message_id(None)


def test_text_lines_name_the_message_before_any_traceback() -> None:
    text = logs.TextFormatter("%(levelname)s %(message)s")
    assert emit(text, "plain") == "WARNING plain\n"
    with logs.message_id("m-1"):
        lines = emit(text, "failed", exc=ValueError("bad")).splitlines()
    assert lines[0] == "ERROR failed [message m-1]"
    assert lines[-1] == "ValueError: bad"


def test_setup_sends_json_to_stderr(root_logging: None,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("json", "sealgate-milter")
    with logs.message_id("<abc@example.org>"):
        logging.getLogger("sealgate.milter").info("protected message")
    logging.getLogger("sealgate.milter").debug("not at INFO")
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line) for line in lines] == [{
        **json.loads(lines[0]), "level": "INFO", "logger": "sealgate.milter",
        "message": "protected message", "message_id": "<abc@example.org>"}]


def test_setup_keeps_the_milters_text_format(root_logging: None,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("text", "sealgate-milter")
    logging.getLogger("sealgate.milter").info("listening")
    assert capsys.readouterr().err.rstrip().endswith(" sealgate-milter INFO listening")


def test_gunicorn_log_config_applies_and_prints_each_line_once(
        root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    logging.config.dictConfig(logs.gunicorn_config("json"))
    logging.getLogger("gunicorn.error").info("Booting worker")
    logging.getLogger("gunicorn.access").info("GET /metrics 200")
    logging.getLogger("sealgate.server").info("routed")
    captured = capsys.readouterr()
    assert [json.loads(line)["message"] for line in captured.err.splitlines()] == [
        "Booting worker", "routed"]
    assert [json.loads(line)["logger"] for line in captured.out.splitlines()] == [
        "gunicorn.access"]


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text, json"):
        logs.gunicorn_config("xml")


def test_the_configuration_takes_text_or_json_only(tmp_path: Path) -> None:
    assert config.load(tmp_path, {}).logging.format == "text"
    assert config.load(tmp_path, {"SEALGATE_LOGGING__FORMAT": "json"}).logging.format == "json"
    with pytest.raises(ConfigError, match="logging.format = 'xml'"):
        config.load(tmp_path, {"SEALGATE_LOGGING__FORMAT": "xml"})
