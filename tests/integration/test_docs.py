"""The documents' commands, run: every shell block of README.md and docs/*.md that can run
without a cluster runs here, against the real registry, notary server, lookaside signature
store and cosign; every link between those pages resolves; and the chart README's "Values"
table names values the chart has, and every one of them (issue 26, "Keep them true").

Marking. A fenced block is marked by an HTML comment on the line right above its fence:

- ``<!-- doc-test: run [exit=N] [expect="TEXT"]... -->`` above a ``sh`` block: the block runs
  with ``bash -euo pipefail`` in the page's work directory; it must exit N (default 0) and
  print every TEXT (on standard output or error, after the placeholders below are replaced);
- ``<!-- doc-test: file PATH -->`` above any block: its text is written to PATH in the work
  directory, for the blocks after it (a policy that a ``verify`` then reads);
  ``<!-- doc-test: file PATH invalid -->`` for a policy shown in order to show it refused
  (tests/chart/test_chart_sigstore.py checks every other policy a page shows is valid);
- ``<!-- doc-test: output -->`` above a ``text`` block: what the last block run printed
  holds these lines in this order, ``...`` standing for any text within a line;
- ``<!-- doc-test: cluster -->``: needs a Kubernetes cluster or a StarlingX controller;
- ``<!-- doc-test: skip REASON -->``: not run here, for the reason given (``make`` targets,
  which are tests or builds of their own).

``<!-- doc-test: after PAGE -->`` anywhere in a page runs PAGE's blocks first, in the same
work directory (a page that goes on from the README's quick start). Blocks run in the order
of the page. Every ``sh`` block of README.md and docs/*.md must carry one of the block
markers, except the README's opening ``make demo``/``make test`` (``make test`` runs this
test), so a new command is either run here or says why it cannot be.

Placeholders. Before a block runs or is written, the documents' example addresses are
replaced by the fixtures' (`PLACEHOLDERS`): ``registry.example.com`` by the test registry's
``127.0.0.1:PORT``, ``https://notary.example.com:4443`` by the notary server's URL and
``https://sigstore.example.com/signatures`` by the lookaside store's URL. The environment
trusts only the test CA, through ``SSL_CERT_FILE`` (which the webhook's outbound TLS reads,
as any OpenSSL client does), ``PATH`` starts with the virtual environment's ``bin`` (for
``portieris-webhook``) and the project's kubectl and helm, and ``HOME`` is empty.

What the reader is told to bring is in the work directory before a page runs (`Workspace`):
``release-signer.pub`` (the certificate of the notary delegation key ``targets/releases``),
``release-gpg.asc`` (the armoured public key that simple-signed ``team-a/batch``) and
``cosign.pub`` (the cosign key that signed ``team-a/tools``); the registry holds
``team-a/web:1.0`` (signed in notary by ``targets/releases``), ``team-a/web:1.1`` (pushed,
never signed), ``team-a/batch:1.0`` (simple-signed into the store) and ``team-a/tools:1.0``
(signed with cosign, no transparency log). The repository's ``helm-charts/`` and ``examples/``
are linked into it, as a reader in a clone has them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.e2e.controlplane import binaries
from tests.fixtures.cosign import Cosign
from tests.fixtures.gpg import GpgHome, LookasideStore, SimpleSigner
from tests.fixtures.notary import NotaryServer, NotarySigner, make_delegation_key
from tests.fixtures.registry import Registry

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
CHART_README = REPO_ROOT / "helm-charts" / "portieris" / "README.md"
PAGES = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]
"""The pages whose shell blocks must be marked, and whose links must resolve."""

SHELLS = frozenset({"sh", "bash", "shell"})
MARKER = re.compile(r"^<!-- doc-test: (.*?) -->\s*$")
FENCE = re.compile(r"^(```+)([\w-]*)[^\n]*$")
BLOCK_TIMEOUT = 60


# --- reading the pages -------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    """1-based line of the opening fence."""
    lang: str
    text: str
    marker: str | None
    """What the doc-test comment right above the fence says, if there is one."""

    @property
    def where(self) -> str:
        return f"{os.path.relpath(self.page, REPO_ROOT)}:{self.line}"

    @property
    def action(self) -> str | None:
        return self.marker.split(None, 1)[0] if self.marker else None

    @property
    def arguments(self) -> list[str]:
        assert self.marker is not None
        return shlex.split(self.marker)[1:]


def blocks(page: Path) -> list[Block]:
    """Every fenced block of `page`, with the doc-test marker right above it."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, lang = opening.groups()
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != fence:
            end += 1
        above = MARKER.match(lines[index - 1]) if index else None
        text = "\n".join(lines[index + 1 : end]) + "\n"
        found.append(Block(page, index + 1, lang, text, above.group(1) if above else None))
        index = end + 1
    return found


def page_prerequisites(page: Path) -> list[Path]:
    """The pages named by `<!-- doc-test: after PAGE -->` (relative to the repository)."""
    return [
        REPO_ROOT / name
        for name in re.findall(r"^<!-- doc-test: after (\S+) -->\s*$", page.read_text(), re.M)
    ]


# --- the fixtures the pages run against --------------------------------------------------


@dataclass
class Workspace:
    """The signed images, the files the reader brings, the placeholders and the environment."""

    seed: Path
    placeholders: dict[str, str]
    env: dict[str, str]

    def substitute(self, text: str) -> str:
        for placeholder, value in self.placeholders.items():
            text = text.replace(placeholder, value)
        return text

    def fresh(self, directory: Path) -> Path:
        """A work directory with the reader's files, and the repository's `helm-charts/` and
        `examples/` where a reader in a clone has them."""
        shutil.copytree(self.seed, directory)
        for name in LINKED:
            (directory / name).symlink_to(REPO_ROOT / name)
        return directory


LINKED = ("helm-charts", "examples")


def placeholders(registry: Registry, notary: NotaryServer, store: LookasideStore) -> dict[str, str]:
    """The documents' example addresses, replaced by the fixtures' (longest first)."""
    return {
        "https://notary.example.com:4443": notary.url,
        "https://sigstore.example.com/signatures": store.url,
        "registry.example.com": registry.host,
    }


def tool_path() -> str:
    """portieris-webhook (this interpreter's environment), then the project's kubectl and helm."""
    bins = binaries()
    dirs = [str(Path(sys.executable).parent), os.path.dirname(bins.kubectl)]
    dirs += [os.path.dirname(bins.helm), "/usr/bin", "/bin"]
    return os.pathsep.join(dict.fromkeys(dirs))


@pytest.fixture(scope="module")
def workspace(
    registry: Registry,
    notary_server: NotaryServer,
    lookaside_store: LookasideStore,
    gpg_home: GpgHome,
    cosign: Cosign,
    test_ca_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Workspace:
    seed = tmp_path_factory.mktemp("doc-seed")
    # Notary v1: team-a/web:1.0 signed by the delegation targets/releases; 1.1 never signed.
    web = registry.push_image("team-a/web", "1.0")
    registry.push_image("team-a/web", "1.1")
    signer = NotarySigner(notary_server, tmp_path_factory.mktemp("doc-notary"))
    delegation = make_delegation_key("releases")
    signer.sign(web.name, web.tag, web.size, web.hex, key=delegation)
    (seed / "release-signer.pub").write_bytes(delegation.cert_pem)
    # Simple signing: team-a/batch:1.0 signed into the lookaside store.
    batch = registry.push_image("team-a/batch", "1.0")
    key = gpg_home.new_key("Releases", "releases@example.com")
    store_signer = SimpleSigner(
        gpg_home, lookaside_store, registry, tmp_path_factory.mktemp("doc-simple")
    )
    store_signer.sign(batch, key.fingerprint)
    (seed / "release-gpg.asc").write_text(key.public_armored)
    # Cosign: team-a/tools:1.0 signed with a key, no transparency log.
    tools = registry.push_image("team-a/tools", "1.0")
    pair = cosign.generate_key_pair(tmp_path_factory.mktemp("doc-cosign"))
    cosign.sign(tools.digest_ref, pair.private_path)
    (seed / "cosign.pub").write_bytes(pair.public_pem)

    home = tmp_path_factory.mktemp("doc-home")
    env = {
        "PATH": tool_path(),
        "HOME": str(home),
        "SSL_CERT_FILE": str(test_ca_file),
        "LANG": "C.UTF-8",
        "KUBECONFIG": str(home / "no-cluster"),
    }
    return Workspace(seed, placeholders(registry, notary_server, lookaside_store), env)


# --- running a page ----------------------------------------------------------------------


def run_block(block: Block, workspace: Workspace, directory: Path, printed: str) -> str:
    """Run, write or compare one block; what a run printed (for an `output` block after it)."""
    if block.action == "file":
        path, *flags = block.arguments
        assert flags in ([], ["invalid"]), f"{block.where}: {block.marker}"
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(workspace.substitute(block.text))
        return printed
    if block.action == "output":
        shown = workspace.substitute(block.text).strip("\n").splitlines()
        pattern = r"\n(?:.*\n)*?".join(
            r"[ \t]*" + ".*?".join(map(re.escape, line.strip().split("..."))) + r"[ \t]*"
            for line in shown
        )
        assert re.search(pattern, printed), f"{block.where}: not what was printed:\n{printed}"
        return printed
    assert block.action == "run", block.where
    expected_exit, expected = 0, []
    for argument in block.arguments:
        name, _, value = argument.partition("=")
        if name == "exit":
            expected_exit = int(value)
        elif name == "expect":
            expected.append(workspace.substitute(value))
        else:
            raise AssertionError(f"{block.where}: unknown doc-test argument {argument!r}")
    script = workspace.substitute(block.text)
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=directory,
        env=workspace.env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
        check=False,
    )
    output = proc.stdout + proc.stderr
    report = f"{block.where} ran:\n{script}\nexit {proc.returncode}, output:\n{output}"
    assert proc.returncode == expected_exit, report
    for text in expected:
        assert text in output, f"{text!r} not printed\n{report}"
    return output


def run_page(page: Path, workspace: Workspace, directory: Path) -> int:
    """Run `page`'s marked blocks (after its prerequisites'); how many ran or were written."""
    count, printed = 0, ""
    for before in page_prerequisites(page):
        count += run_page(before, workspace, directory)
    for block in blocks(page):
        if block.action in ACTED_ON:
            printed = run_block(block, workspace, directory, printed)
            count += 1
    return count


ACTED_ON = ("run", "file", "output")


def runnable(page: Path) -> bool:
    return any(block.action in ACTED_ON for block in blocks(page))


@pytest.mark.parametrize(
    "page",
    [page for page in [*PAGES, CHART_README] if runnable(page)],
    ids=lambda page: str(page.relative_to(REPO_ROOT)),
)
def test_the_marked_blocks_of_a_page_run_as_documented(
    page: Path, workspace: Workspace, tmp_path: Path
) -> None:
    assert run_page(page, workspace, workspace.fresh(tmp_path / "work"))


# --- every shell block is marked ---------------------------------------------------------

OPENING = (README, 3)
"""README.md's opening `make demo` / `make test`: `.ci/run` runs `make test` itself."""


def test_every_shell_block_is_run_or_says_why_not() -> None:
    unmarked, unknown = [], []
    for page in PAGES:
        for block in blocks(page):
            if block.lang not in SHELLS or (block.page, block.line) == OPENING:
                continue
            if block.marker is None:
                unmarked.append(block.where)
            elif block.action not in ("run", "cluster", "skip"):
                unknown.append(f"{block.where}: {block.marker}")
    assert unmarked == [], "shell blocks without a <!-- doc-test: ... --> marker"
    assert unknown == []


def test_the_readme_opens_with_the_two_commands() -> None:
    """`.ci/run` and the project's rules read the README's first block."""
    first = blocks(README)[0]
    assert (first.line, first.lang) == (OPENING[1], "sh")
    assert [line.split()[:2] for line in first.text.splitlines()] == [
        ["make", "demo"],
        ["make", "test"],
    ]


def test_what_a_page_runs_after_exists() -> None:
    for page in PAGES:
        for before in page_prerequisites(page):
            assert before.is_file(), f"{page}: doc-test after {before}"


# --- links between the pages -------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`+[^`\n]*`+")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")


def prose(page: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line outside fenced blocks, inline code removed."""
    fence = None
    for number, line in enumerate(page.read_text().splitlines(), 1):
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
            continue
        if fence is not None:
            if line.rstrip() == fence:
                fence = None
            continue
        yield number, INLINE_CODE.sub("", line)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, markup and punctuation dropped, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = text.replace("`", "").lower()
    kept = "".join(
        ch
        for ch in text
        if ch in " -_" or unicodedata.category(ch)[0] in "LN"  # letters, digits
    )
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    fence = None
    for line in page.read_text().splitlines():
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
            continue
        if fence is not None:
            if line.rstrip() == fence:
                fence = None
            continue
        found.update(HTML_ANCHOR.findall(line))
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> Iterator[tuple[int, str]]:
    for number, line in prose(page):
        for target in LINK.findall(line):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                yield number, target


def test_slug_follows_github() -> None:
    assert (
        slug("Troubleshooting: why was my pod denied?") == "troubleshooting-why-was-my-pod-denied"
    )
    assert slug("`keySecretNamespace` and the `sigstore` part") == (
        "keysecretnamespace-and-the-sigstore-part"
    )
    assert slug("Install on Kubernetes (helm)") == "install-on-kubernetes-helm"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_every_internal_link_resolves_to_a_file_and_anchor(page: Path) -> None:
    broken = []
    for number, target in links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(REPO_ROOT)}:{number}: {target}"
        if not resolved.exists():
            broken.append(f"{where}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{where}: no heading with anchor #{anchor}")
        elif anchor and resolved.suffix != ".md":
            broken.append(f"{where}: an anchor into a file that is not Markdown")
    assert broken == []


def test_the_pages_link_each_other() -> None:
    """No page is an orphan: README.md links every docs/ page, and each links back."""
    named = {(README.parent / target.partition("#")[0]).resolve() for _, target in links(README)}
    for page in PAGES[1:]:
        assert page.resolve() in named, f"README.md does not link {page.name}"
        back = {(page.parent / t.partition("#")[0]).resolve() for _, t in links(page)}
        assert README.resolve() in back, f"{page.name} does not link README.md"


# --- the chart's documented values -------------------------------------------------------

CHART = REPO_ROOT / "helm-charts" / "portieris"


def documented_values() -> list[str]:
    """The values the chart README's "Values" table names, in full (`.runAsGroup` after
    `securityContext.runAsUser` is `securityContext.runAsGroup`)."""
    section = CHART_README.read_text().split("\n## Values\n", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for row in re.findall(r"^\| (`.*?) \|", section, re.M):
        previous = ""
        for name in re.findall(r"`([^`]+)`", row):
            if name.startswith(".") and previous:
                name = previous.rsplit(".", 1)[0] + name
            names.append(name)
            previous = name
    return names


def schema_has(schema: dict[str, object], path: str) -> bool:
    """Whether `path` (dotted; a key may hold dots itself) is a property of the schema."""
    if not path:
        return True
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return False
    for key in sorted(properties, key=len, reverse=True):
        if path == key or path.startswith(key + "."):
            return schema_has(properties[key], path[len(key) + 1 :])
    return False


def test_every_value_the_chart_readme_names_is_a_value_of_the_chart() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    names = documented_values()
    assert len(names) > 20, names
    assert [name for name in names if not schema_has(schema, name)] == []


def test_every_value_of_the_chart_is_in_the_chart_readme() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    named = {name.split(".", 1)[0] for name in documented_values()} | set(documented_values())
    assert [key for key in defaults if key not in named] == []
