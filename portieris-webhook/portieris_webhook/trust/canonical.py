"""Canonical JSON: the bytes notary signs for a document's `signed` object.

Notary (docker/go/canonical/json, a fork of Go 1.5 encoding/json) writes keys
sorted, no insignificant whitespace, integers only, and escapes strings the
way Go does: control characters, `<`, `>`, `&`, U+2028 and U+2029 as `\\uXXXX`.
The OLPC/securesystemslib form differs only in string escaping (just `"` and
`\\`). Both are exact, unambiguous encodings of the same value, so a signature
over either proves the signer signed this value; `candidates` yields both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from portieris_webhook.trust.errors import MetadataError

_GO_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


_GO_ESCAPED = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029]')
"""Every character Go's encoder escapes: the short escapes, other controls, HTML and U+2028/9."""


def _go_escape(match: re.Match[str]) -> str:
    char = match.group()
    return _GO_SHORT_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _go_string(text: str) -> str:
    return '"' + _GO_ESCAPED.sub(_go_escape, text) + '"'


def _olpc_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _encode(value: Any, go: bool, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, str):
        out.append(_go_string(value) if go else _olpc_string(value))
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, go, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for index, key in enumerate(sorted(value)):
            if not isinstance(key, str):
                raise MetadataError(f"canonical JSON: object key {key!r} is not a string")
            if index:
                out.append(",")
            out.append(_go_string(key) if go else _olpc_string(key))
            out.append(":")
            _encode(value[key], go, out)
        out.append("}")
    else:
        # Floats have no canonical form; notary metadata never contains them.
        raise MetadataError(f"canonical JSON: cannot encode a {type(value).__name__} ({value!r})")


def encode_canonical(value: Any, *, go_escaping: bool = False) -> bytes:
    """Canonical JSON bytes of `value` (OLPC escaping unless `go_escaping`)."""
    out: list[str] = []
    _encode(value, go_escaping, out)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate such as "\ud800" has no UTF-8 form
        raise MetadataError(
            f"canonical JSON: text that is not valid Unicode ({exc.reason})"
        ) from exc


def candidates(value: Any) -> Iterator[bytes]:
    """The byte strings a notary signature over `value` may cover: Go form, then OLPC if different."""
    go_form = encode_canonical(value, go_escaping=True)
    yield go_form
    if b"\\" not in go_form:
        return  # no string needed escaping in either form, so they are the same bytes
    olpc_form = encode_canonical(value)
    if olpc_form != go_form:
        yield olpc_form
