"""Log records cannot be forged by the data they carry: one record, one line (plus an indented traceback)."""

import contextlib
import io
import logging
import re
import time

import pytest

from portieris_webhook.kits import logs
from portieris_webhook.kits.logs import (
    FORMAT,
    TRACEBACK_INDENT,
    BatchingStreamHandler,
    OneLineFormatter,
    info_line,
    printable,
)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain pod-name.1", "plain pod-name.1"),
        ("x\nINFO forged", "x\\nINFO forged"),
        ("a\r\nb", "a\\r\\nb"),
        ("tab\there", "tab\\there"),
        ("\x1b[2Kclear", "\\x1b[2Kclear"),
        ("line\u2028sep\x85nel\u2029para", "line\\u2028sep\\x85nel\\u2029para"),
        ("\x00nul", "\\x00nul"),
        ("ünïcödé 名前", "ünïcödé 名前"),
    ],
)
def test_printable_escapes_what_could_break_a_line(text, shown):
    assert printable(text) == shown


def _emit(message, *args, exc=None):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter(FORMAT))
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        if exc is None:
            logger.warning(message, *args)
        else:
            try:
                raise exc
            except type(exc):
                logger.exception(message, *args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_a_record_with_request_data_is_one_line():
    out = _emit("object=%s image=%s", "Pod/x\n2026-01-01 INFO forged", "a\u2028b")
    assert out.count("\n") == 1 and out.endswith("\n")
    assert "object=Pod/x\\n2026-01-01 INFO forged image=a\\u2028b" in out


def test_a_traceback_is_indented_so_no_line_passes_for_a_record():
    out = _emit("failed on %s", "img\nx", exc=RuntimeError("bad\nERROR forged\rmore"))
    first, *rest = out.rstrip("\n").split("\n")
    assert "ERROR tests.logs: failed on img\\nx" in first
    assert rest and all(line.startswith(TRACEBACK_INDENT) for line in rest)
    assert any("ERROR forged\\rmore" in line for line in rest)


@pytest.mark.parametrize(
    "times",
    [
        [1_700_000_000.0, 1_700_000_000.999, 1_700_000_001.0, 1_700_000_000.5],
        [0.001, 86_399.9995, 86_400.0004, 1_000_000_000.123456],
    ],
)
def test_the_time_of_each_record_is_what_logging_writes(times):
    ours, reference = OneLineFormatter(FORMAT), logging.Formatter(FORMAT)
    for created in times:
        record = logging.LogRecord("tests.logs", logging.INFO, __file__, 1, "m", (), None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert ours.formatTime(record) == reference.formatTime(record)
        assert ours.formatTime(record, "%H:%M") == reference.formatTime(record, "%H:%M")


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def batching_logger(stream, **kwargs):
    handler = BatchingStreamHandler(stream, **kwargs)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"batching-{id(handler)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger, handler


def test_info_records_are_written_in_one_batch_within_the_delay():
    stream = CountingStream()
    logger, _handler = batching_logger(stream, delay=0.05)
    for n in range(100):
        logger.info("admission %d", n)
    assert stream.writes == 0
    deadline = time.monotonic() + 5
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.writes == 1
    assert stream.getvalue().splitlines() == [f"INFO admission {n}" for n in range(100)]


def test_a_warning_is_written_at_once_after_what_waited_before_it():
    stream = CountingStream()
    logger, _handler = batching_logger(stream, delay=60)
    logger.info("first")
    logger.warning("second")
    assert stream.getvalue().splitlines() == ["INFO first", "WARNING second"]


def test_closing_the_handler_writes_what_waits_and_stops_its_flusher():
    stream = CountingStream()
    logger, handler = batching_logger(stream, delay=60)
    logger.info("last words")
    handler.close()
    handler._flusher.join(timeout=5)
    assert stream.getvalue() == "INFO last words\n"
    assert not handler._flusher.is_alive()


def test_a_full_batch_is_written_without_waiting_and_the_rest_at_flush():
    stream = CountingStream()
    logger, handler = batching_logger(stream, delay=60, max_pending=100)
    for n in range(30):
        logger.info("line %02d", n)  # 13 characters each: a write every 8 lines
    assert stream.writes == 3 and len(stream.getvalue().splitlines()) == 24
    handler.flush()
    assert stream.getvalue().splitlines()[-1] == "INFO line 29"


@contextlib.contextmanager
def root_with_batching_handler():
    """The root logger as `configure` leaves it: one batching handler formatting FORMAT
    (set inside the test: pytest adds its own handlers around each test)."""
    stream = io.StringIO()
    handler = BatchingStreamHandler(stream, delay=60)
    handler.setFormatter(OneLineFormatter(FORMAT))
    saved = logging.root.handlers, logging.root.level
    logging.root.handlers, logging.root.level = [handler], logging.INFO
    try:
        yield stream, handler
    finally:
        logging.root.handlers, logging.root.level = saved


def test_an_info_line_reads_exactly_as_the_same_record_logged_the_usual_way():
    logger = logging.getLogger("portieris_webhook.decision")
    message = "namespace=ns object=Pod/x\\nforged result=allow images=1: image=a:1"
    with root_with_batching_handler() as (stream, handler):
        assert logs._only_handler(logger) is handler  # the direct way is taken
        info_line(logger, message + "\nINFO forged")
        logger.info("%s", message + "\nINFO forged")
        handler.flush()
    fast, usual = stream.getvalue().splitlines()
    assert fast.partition(" INFO ")[2] == usual.partition(" INFO ")[2]
    assert fast.partition(" INFO ")[2] == f"portieris_webhook.decision: {message}\\nINFO forged"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", fast.partition(" INFO ")[0])


def test_an_info_line_goes_through_logging_when_anything_else_would_see_the_record():
    logger = logging.getLogger("portieris_webhook.decision")
    seen = []
    with root_with_batching_handler() as (stream, handler):
        other = logging.Handler()
        other.emit = seen.append  # type: ignore[method-assign]
        logging.root.addHandler(other)
        assert logs._only_handler(logger) is None
        info_line(logger, "seen by both")
        handler.flush()
    assert [r.getMessage() for r in seen] == ["seen by both"]
    assert stream.getvalue().endswith("portieris_webhook.decision: seen by both\n")


def test_an_info_line_below_the_level_is_not_written():
    logger = logging.getLogger("portieris_webhook.quiet")
    logger.setLevel(logging.WARNING)
    try:
        with root_with_batching_handler() as (stream, handler):
            info_line(logger, "not shown")
            handler.flush()
    finally:
        logger.setLevel(logging.NOTSET)
    assert stream.getvalue() == ""


def test_logging_to_a_stream_logs_as_serve_does_and_then_leaves_the_root_as_it_was():
    """What the benchmarks use: serve's handler (logs.configure) writing to a file."""
    logger = logging.getLogger("portieris_webhook.decision")
    saved = logging.root.handlers[:], logging.root.level
    stream = io.StringIO()
    with logs.logging_to(stream):
        [handler] = logging.root.handlers
        assert logs._only_handler(logger) is handler  # as `configure` leaves it
        info_line(logger, "to the file")
    assert stream.getvalue().endswith(" INFO portieris_webhook.decision: to the file\n")
    assert (logging.root.handlers, logging.root.level) == saved
