"""Config files (--config-file, --config-dir) read as the command-line arguments they stand for.

oslo.config looks a key up under the option's attribute name only (`ca_file`): a key spelt
like the option (`ca-file`) or misspelt is ignored without a word, and an ignored
`pinned-trust-root` means trusting the first root seen. So each file is read here, with
oslo.config's own INI grammar, and replaced on the command line by the arguments it
stands for; every key must be an option of the command, in either spelling.

Why arguments: oslo.config applies a file's values for command-line options "as if they
had appeared on the command line" where the file is named (its
`_parse_cli_opts_from_config_file`), and every option here is a command-line option. Writing
them there keeps exactly that precedence (later arguments and files override earlier ones,
a repeatable option collects them all) without reaching into oslo.config's private parser.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Callable, Iterable, Iterator, Sequence

from oslo_config import cfg, iniparser

from portieris_webhook.errors import ConfigurationError

SECTION = "DEFAULT"
"""The one section: every option is in oslo.config's DEFAULT group."""


@dataclasses.dataclass(frozen=True)
class Entry:
    section: str | None
    """None for a key before any section header (oslo.config refuses it too)."""
    key: str
    value: str


class _Reader(iniparser.BaseParser):
    """oslo.config's INI grammar (quotes, `=` or `:`, indented continuation lines joined by
    newlines, repeated keys), keeping every entry in file order."""

    def __init__(self) -> None:
        self.section: str | None = None
        self.entries: list[Entry] = []

    def new_section(self, section: str) -> None:
        self.section = section

    def assignment(self, key: str, value: list[str]) -> None:
        self.entries.append(Entry(self.section, key, "\n".join(value)))


def read(path: str) -> list[Entry]:
    """The entries of the INI file at `path`, as oslo.config would parse them."""
    reader = _Reader()
    try:
        with open(path, encoding="utf-8") as handle:
            reader.parse(handle.readlines())
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc.strerror}") from exc
    except (iniparser.ParseError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"config file {path}: {exc}") from exc
    return reader.entries


def files_in(directory: str) -> list[str]:
    """The `*.conf` files of a --config-dir in name order, as oslo.config reads them."""
    if not os.path.isdir(directory):
        raise ConfigurationError(f"cannot read config directory {directory}: not a directory")
    return sorted(glob.glob(os.path.join(glob.escape(directory), "*.conf")))


def arguments(path: str, entries: Iterable[Entry], opts: Iterable[cfg.Opt]) -> Iterator[str]:
    """The command-line arguments that `entries` of the file at `path` stand for.

    Raises ConfigurationError, naming the key and the file, for anything that is not a
    valid value of an option in `opts` in the DEFAULT section."""
    by_dest = {opt.dest: opt for opt in opts}
    for entry in entries:
        if entry.section != SECTION:
            where = "before any section" if entry.section is None else f"in [{entry.section}]"
            raise ConfigurationError(
                f"config file {path}: {entry.key!r} is {where}; options go in [{SECTION}]"
            )
        opt = by_dest.get(entry.key.replace("-", "_"))
        if opt is None:
            raise ConfigurationError(
                f"config file {path}: {entry.key!r} is not an option of this command (see --help)"
            )
        if opt.positional:
            raise ConfigurationError(
                f"config file {path}: {entry.key!r} is given on the command line, "
                "not in a config file"
            )
        yield _argument(path, entry, opt)


def _argument(path: str, entry: Entry, opt: cfg.Opt) -> str:
    # Checked here so that a bad value names its file; argparse would not.
    try:
        value = opt.type(entry.value)
    except ValueError as exc:
        raise ConfigurationError(
            f"config file {path}: invalid value {entry.value!r} for {entry.key!r}: {exc}"
        ) from exc
    if isinstance(opt, cfg.BoolOpt):
        return f"--{opt.name}" if value else f"--no{opt.name}"
    # One `--name=value` argument, so a value that starts with "-" stays a value.
    return f"--{opt.name}={entry.value}"


FLAGS: dict[str, Callable[[str], list[str]]] = {
    "--config-file": lambda path: [path],
    "--config-dir": files_in,
}


def expand(argv: Sequence[str], opts: Sequence[cfg.Opt]) -> list[str]:
    """`argv` with each `--config-file PATH` and `--config-dir DIR` (also written
    `--flag=value`) replaced by the arguments of the file or files it names.

    Arguments after `--` are left alone, as argparse takes them all as positional."""
    expanded: list[str] = []
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            return [*expanded, arg, *rest]
        flag, equals, value = arg.partition("=")
        if flag not in FLAGS or not (equals or rest):
            expanded.append(arg)
            continue
        named = os.path.expanduser(value if equals else rest.pop(0))
        for path in FLAGS[flag](named):
            expanded.extend(arguments(path, read(path), opts))
    return expanded
