"""The pattern language of `spec.repositories[].name`: its parts, and `*` matching.

How patterns select a policy is written once, in `policy/matching.py`; this
module only cuts a pattern into parts and matches one part against text.
"""

from __future__ import annotations

from dataclasses import dataclass

WILDCARD = "*"


@dataclass(frozen=True)
class Pattern:
    """A pattern cut like an image reference: `repository[:tag][@digest]`.

    The tag follows the first `:` of the last path component, so
    `reg.io:5000/app:v*` is repository `reg.io:5000/app`, tag `v*`.
    """

    text: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def wildcards(self) -> int:
        return self.text.count(WILDCARD)

    @property
    def covers_every_tag(self) -> bool:
        """No tag part, or one of `*` alone: the pattern speaks for every tag of a repository."""
        return self.tag is None or set(self.tag) == {WILDCARD}

    @property
    def specificity(self) -> int:
        """Length minus wildcards, a pattern without a tag counted as if it ended in `:*`."""
        return len(self.text) - self.wildcards + (1 if self.tag is None else 0)


def split_pattern(text: str) -> Pattern:
    """Cut `text` into its parts; ValueError says what is malformed."""
    if any(ch.isspace() for ch in text):
        raise ValueError("must not contain whitespace")
    name, at, digest = text.partition("@")
    if at and (not digest or "@" in digest):
        raise ValueError("must be repository[:tag][@digest], with one non-empty digest after @")
    head, slash, last = name.rpartition("/")
    last, colon, tag = last.partition(":")
    repository = head + slash + last
    if colon and not tag:
        raise ValueError("has an empty tag after ':'")
    if not all(repository.split("/")):
        raise ValueError("has an empty repository path component")
    return Pattern(text, repository, tag if colon else None, digest if at else None)


def glob_match(pattern: str, text: str) -> bool:
    """True if `pattern` matches all of `text`; `*` matches any run of characters, even none.

    A regular expression built from a pattern (`a.*a.*b`) backtracks: several
    `*` against a long name take exponential time, on the event loop. Here the
    pattern is cut at its `*`s into literal pieces: the first piece must start
    the text, the last must end it, and each piece in between is found at its
    leftmost place after the previous one. The leftmost place is never wrong
    (it leaves the most text for the pieces after it), so nothing is retried:
    one `str.find` per piece, at most O(len(text) * len(piece)) each.
    """
    if WILDCARD not in pattern:
        return pattern == text
    first, *middle, last = pattern.split(WILDCARD)
    end = len(text) - len(last)
    if end < len(first) or not text.startswith(first) or not text.endswith(last):
        return False
    position = len(first)
    for piece in middle:
        found = text.find(piece, position, end)
        if found < 0:
            return False
        position = found + len(piece)
    return True
