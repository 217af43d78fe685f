"""Logging that request data cannot forge: one record is always one line.

Object names, images and messages in an AdmissionReview come from whoever sends
it (mutating webhooks run before the API server validates names), so a newline
in a pod name would otherwise start a line that reads like a record of its own.
The formatter escapes every character that is not printable in the message, and
indents the lines of a traceback so none of them can pass for a new record.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TRACEBACK_INDENT = "    | "


def printable(text: str) -> str:
    """`text` with line breaks, control and other non-printable characters escaped (`\\n`)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class OneLineFormatter(logging.Formatter):
    """Formats a record as one escaped line, plus an indented traceback if there is one."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)
        self._second = -1
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """As logging.Formatter does, the date and time down to the second formatted once a
        second rather than for every record (a busy webhook logs thousands a second)."""
        if datefmt or not self.default_msec_format:
            return super().formatTime(record, datefmt)
        return self._time_text(record.created, record.msecs)

    def _time_text(self, created: float, msecs: float) -> str:
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return (self.default_msec_format or "%s,%03d") % (self._second_text, msecs)

    def line(self, name: str, levelname: str, message: str, created: float) -> str:
        """What `format` makes of a record of `name` and `levelname` with `message` (no
        arguments, no traceback) created at `created`, when the format is FORMAT."""
        msecs = int((created - int(created)) * 1000)
        return printable(f"{self._time_text(created, msecs)} {levelname} {name}: {message}")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = printable(self.formatMessage(record))
        # Not record.exc_text: another handler may have cached it unindented.
        if record.exc_info:
            text += "\n" + _indented(self.formatException(record.exc_info))
        elif record.exc_text:
            text += "\n" + _indented(record.exc_text)
        if record.stack_info:
            text += "\n" + _indented(self.formatStack(record.stack_info))
        return text


def _indented(text: str) -> str:
    return "\n".join(TRACEBACK_INDENT + printable(line) for line in text.rstrip("\n").split("\n"))


class EventSummary:
    """Events a client can cause at will, logged without letting it flood the log.

    The first `burst` events since the last summary are logged in full; the others
    are only counted, and `flush` (called periodically) logs the counts in one line.
    """

    def __init__(self, logger: logging.Logger, title: str, burst: int = 0) -> None:
        self.logger, self.title, self.burst = logger, title, burst
        self.totals: Counter[str] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._logged = 0

    def count(self, kind: str) -> bool:
        """Count one event; True if it is among the few to log in full."""
        self.totals[kind] += 1
        if self._logged < self.burst:
            self._logged += 1
            return True
        self._unlogged[kind] += 1
        return False

    def record(self, kind: str, detail: str) -> None:
        if self.count(kind):
            self.logger.warning("%s", detail)

    def flush(self, suffix: str = "") -> None:
        if self._unlogged:
            counts = ", ".join(f"{kind}={n}" for kind, n in sorted(self._unlogged.items()))
            self.logger.warning("%s: %s%s", self.title, counts, suffix)
        self._unlogged.clear()
        self._logged = 0


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes records in batches instead of one write per record.

    Records below WARNING wait at most `delay` seconds (a daemon thread flushes them) or
    until `max_pending` characters are waiting; a WARNING or worse writes at once, with
    everything before it, and so does the exit (logging flushes handlers at shutdown). A
    webhook logging one line per admission so makes one write a batch, not one per line.
    """

    def __init__(self, stream: TextIO, delay: float = 0.1, max_pending: int = 64 * 1024):
        super().__init__(stream)
        self.delay = delay
        self.max_pending = max_pending
        self._pending: list[str] = []
        self._size = 0
        self._stopped = threading.Event()
        self._flusher = threading.Thread(target=self._flush_every, name="log-flush", daemon=True)
        self._flusher.start()

    def emit(self, record: logging.LogRecord) -> None:  # called holding the handler's lock
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)
        self._size += len(line)
        if record.levelno >= logging.WARNING or self._size >= self.max_pending:
            self._write()

    def add_line(self, line: str) -> None:
        """A line formatted already (info_line), written as an INFO record would be."""
        with self.lock:  # type: ignore[union-attr]
            self._pending.append(line + self.terminator)
            self._size += len(line) + len(self.terminator)
            if self._size >= self.max_pending:
                self._write()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def close(self) -> None:
        self._stopped.set()
        self.flush()
        super().close()

    def _write(self) -> None:
        if self._pending:
            text, self._pending, self._size = "".join(self._pending), [], 0
            try:
                self.stream.write(text)
                self.stream.flush()
            except Exception:  # a closed or broken stream loses the batch, never the process
                pass

    def _flush_every(self) -> None:
        while not self._stopped.wait(self.delay):
            self.flush()


def info_line(logger: logging.Logger, message: str) -> None:
    """Log `message` at INFO on `logger`: straight into the batch of the handler `configure`
    installed when that is where the record would go and nothing else would see it (a
    LogRecord and its trip through the logging machinery cost more than a cached admission
    decision), else as any record; the line is the same either way."""
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _only_handler(logger)
    if handler is None:
        logger.info("%s", message)
        return
    formatter = handler.formatter
    assert isinstance(formatter, OneLineFormatter)
    handler.add_line(formatter.line(logger.name, "INFO", message, time.time()))


def _only_handler(logger: logging.Logger) -> BatchingStreamHandler | None:
    """The handler `configure` installed, if records of `logger` reach it and nothing else:
    no filters or other handlers on the way, the handler formatting FORMAT."""
    node: logging.Logger | None = logger
    while node is not None:
        if node.filters or (node.handlers and node is not logging.root) or node.disabled:
            return None
        if not node.propagate and node is not logging.root:
            return None
        node = node.parent
    handlers = logging.root.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if (
        type(handler) is not BatchingStreamHandler
        or handler.filters
        or handler.level > logging.INFO
        or not isinstance(handler.formatter, OneLineFormatter)
        or handler.formatter._fmt != FORMAT
        or handler.formatter.datefmt is not None
    ):
        return None
    return handler


def one_line_handler(stream: TextIO) -> BatchingStreamHandler:
    """The handler `serve` logs through: records in batches, one line each in FORMAT."""
    handler = BatchingStreamHandler(stream)
    handler.setFormatter(OneLineFormatter(FORMAT))
    return handler


def configure(level: str, stream: TextIO | None = None) -> None:
    """Log records at `level` and above to `stream` (standard error), one line each.

    FORMAT shows no source location, thread or process, so records do not collect them
    (the logging HOWTO's "Optimization"): the caller's frame is not looked up per record.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if logging.root.handlers:  # configured already: basicConfig would change nothing
        return
    handler = one_line_handler(stream or sys.stderr)
    logging.basicConfig(level=getattr(logging, level, logging.INFO), handlers=[handler])


@contextlib.contextmanager
def logging_to(stream: TextIO, level: str = "INFO") -> Iterator[None]:
    """Within the block, log as `serve` does (`configure`) but to `stream`, in place of the
    root logger's handlers (the benchmarks write the decision log to a file this way);
    after it, the handler is closed and the root logger is as it was."""
    root = logging.root
    handlers, previous_level = root.handlers[:], root.level
    root.handlers[:] = []
    configure(level, stream)
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(previous_level)
