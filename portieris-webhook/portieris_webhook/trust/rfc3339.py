"""Times exactly as Go's time.Parse(time.RFC3339, ...) reads them, as notary reads `expires`.

Go's layout parser is not RFC 3339: it takes a one-digit hour, a comma before
the fraction, any number of fraction digits (keeping nine) and zone offsets up
to 24:60; it refuses a space or lowercase `t`/`z`, missing seconds, offsets
without a colon and non-ASCII digits, several of which Python's
datetime.fromisoformat accepts. Trust data notary cannot read must not pass
here, nor the other way round.
"""

from __future__ import annotations

import calendar
import datetime

_ASCII_DIGITS = frozenset("0123456789")
_MIN = datetime.datetime.min.replace(tzinfo=datetime.UTC)
_MAX = datetime.datetime.max.replace(tzinfo=datetime.UTC)


class _Text:
    """What is left of the string being parsed."""

    def __init__(self, text: str) -> None:
        self.rest = text

    def digit_at(self, index: int) -> bool:
        return index < len(self.rest) and self.rest[index] in _ASCII_DIGITS

    def number(self, width: int, *, shorter: bool = False) -> int:
        """`width` ASCII digits (or one fewer, if `shorter` allows and the next is no digit)."""
        count = width
        if shorter and self.digit_at(0) and not self.digit_at(1):
            count = 1
        if not all(self.digit_at(i) for i in range(count)):
            raise ValueError(f"expected {width} digits at {self.rest!r}")
        value, self.rest = int(self.rest[:count]), self.rest[count:]
        return value

    def literal(self, text: str) -> None:
        if not self.rest.startswith(text):
            raise ValueError(f"expected {text!r} at {self.rest!r}")
        self.rest = self.rest[len(text) :]


def _in_range(value: int, low: int, high: int, what: str) -> int:
    if not low <= value <= high:
        raise ValueError(f"{what} {value} out of range")
    return value


def parse_go_rfc3339(text: str) -> datetime.datetime:
    """The aware UTC time Go reads from `text`, or ValueError where Go refuses it.

    Precision stops at microseconds; times Python cannot hold (year 0, or past
    year 9999 once the offset is applied) become its earliest or latest time.
    """
    s = _Text(text)
    year = s.number(4)
    s.literal("-")
    month = _in_range(s.number(2), 1, 12, "month")
    s.literal("-")
    day = s.number(2)
    s.literal("T")
    hour = _in_range(s.number(2, shorter=True), 0, 23, "hour")
    s.literal(":")
    minute = _in_range(s.number(2), 0, 59, "minute")
    s.literal(":")
    second = _in_range(s.number(2), 0, 59, "second")
    nanosecond = 0
    if s.rest[:1] in (".", ",") and s.digit_at(1):
        count = 1
        while s.digit_at(count):
            count += 1
        nanosecond = int(s.rest[1:count][:9].ljust(9, "0"))
        s.rest = s.rest[count:]
    offset = _offset(s)
    if s.rest:
        raise ValueError(f"extra text {s.rest!r}")
    last_day = 29 if month == 2 and calendar.isleap(year) else _days_in(month)
    _in_range(day, 1, last_day, "day")
    if year == 0:
        return _MIN
    local = datetime.datetime(
        year, month, day, hour, minute, second, nanosecond // 1000, tzinfo=datetime.UTC
    )
    try:
        return local - datetime.timedelta(seconds=offset)
    except OverflowError:
        return _MIN if offset > 0 else _MAX


def _days_in(month: int) -> int:
    return calendar.monthrange(2001, month)[1]  # any year that is not a leap year


def _offset(s: _Text) -> int:
    """Seconds east of UTC from `Z` or `±hh:mm` (Go allows hours up to 24, minutes up to 60)."""
    if s.rest.startswith("Z"):
        s.literal("Z")
        return 0
    sign = s.rest[:1]
    if sign not in ("+", "-"):
        raise ValueError(f"expected a zone at {s.rest!r}")
    s.literal(sign)
    hours = _in_range(s.number(2), 0, 24, "zone hour")
    s.literal(":")
    minutes = _in_range(s.number(2), 0, 60, "zone minute")
    seconds = (hours * 60 + minutes) * 60
    return -seconds if sign == "-" else seconds
