"""Our reading of `expires` against the real Go parser notary uses (time.Parse with RFC3339).

A tiny Go program is built with the local Go toolchain and asked about every
string of a corpus: the hand-written cases of the unit tests and a few
thousand seeded mutations of valid times. It must accept exactly what Go
accepts, at the same instant (to the microsecond).
"""

from __future__ import annotations

import datetime
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from portieris_webhook.trust.rfc3339 import parse_go_rfc3339

from tests.unit.trust.test_notary_grammar import ACCEPTED, REFUSED

pytestmark = pytest.mark.integration

GO = shutil.which("go") or next(
    (p for p in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go") if os.access(p, os.X_OK)), None
)

PROGRAM = """
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		var value string
		if err := json.Unmarshal(in.Bytes(), &value); err != nil {
			fmt.Println("bad-input")
			continue
		}
		t, err := time.Parse(time.RFC3339, value)
		if err != nil {
			fmt.Println("refused")
		} else {
			fmt.Println(t.Unix(), t.Nanosecond()/1000)
		}
	}
}
"""

SEEDS = ["2030-01-01T00:00:00Z", "2030-01-01T00:00:00.123+01:00", "2024-02-29T5:04:05,5-23:60"]
ALPHABET = "0123456789-:TtZz.,+ W\u2212\uff10"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
EARLIEST = datetime.datetime.min.replace(tzinfo=datetime.UTC)
LATEST = datetime.datetime.max.replace(tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def go_parse(tmp_path_factory: pytest.TempPathFactory):
    if GO is None:
        pytest.skip("no Go toolchain to compare with")
    workdir: Path = tmp_path_factory.mktemp("gotime")
    (workdir / "main.go").write_text(PROGRAM)
    env = dict(os.environ, GO111MODULE="off", GOFLAGS="")
    subprocess.run([GO, "build", "-o", "gotime", "main.go"], cwd=workdir, env=env, check=True)

    def parse(texts: list[str]) -> list[tuple[int, int] | None]:
        lines = "".join(json.dumps(t) + "\n" for t in texts)
        out = subprocess.run(
            [workdir / "gotime"], input=lines, capture_output=True, text=True, check=True
        ).stdout.splitlines()
        assert len(out) == len(texts) and "bad-input" not in out
        return [None if line == "refused" else _pair(line) for line in out]

    return parse


def _pair(line: str) -> tuple[int, int]:
    seconds, micros = line.split()
    return int(seconds), int(micros)


def mutations(count: int, seed: int = 8) -> list[str]:
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        text = list(rng.choice(SEEDS))
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(len(text) + 1)
            action = rng.choice(("replace", "insert", "delete"))
            if action == "insert" or where == len(text):
                text.insert(where, rng.choice(ALPHABET))
            elif action == "replace":
                text[where] = rng.choice(ALPHABET)
            else:
                del text[where]
        found.append("".join(text))
    return found


def ours(text: str) -> datetime.datetime | None:
    try:
        return parse_go_rfc3339(text)
    except ValueError:
        return None


def agrees(mine: datetime.datetime | None, go: tuple[int, int] | None) -> bool:
    if mine is None or go is None:
        return mine is None and go is None
    go_time_seconds = go[0]
    if mine == EARLIEST:
        return go_time_seconds <= (EARLIEST - EPOCH) // datetime.timedelta(seconds=1)
    if mine == LATEST:
        return go_time_seconds >= (LATEST - EPOCH) // datetime.timedelta(seconds=1)
    delta = mine - EPOCH
    return (delta // datetime.timedelta(seconds=1), mine.microsecond) == go


def test_hand_written_cases_agree_with_go(go_parse):
    corpus = [text for text, _ in ACCEPTED] + REFUSED
    answers = go_parse(corpus)

    disagreements = [
        (text, ours(text), go)
        for text, go in zip(corpus, answers, strict=True)
        if not agrees(ours(text), go)
    ]
    assert disagreements == []


def test_mutated_times_agree_with_go(go_parse):
    corpus = mutations(4000)
    answers = go_parse(corpus)

    disagreements = [
        (text, ours(text), go)
        for text, go in zip(corpus, answers, strict=True)
        if not agrees(ours(text), go)
    ]
    assert disagreements == []
    accepted = sum(go is not None for go in answers)
    assert 100 < accepted < len(corpus) - 100, "the corpus should hold both kinds"
